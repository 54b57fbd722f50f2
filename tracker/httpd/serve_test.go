package httpd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"pixelrelay/config"
)

func TestServeAndShutdown(t *testing.T) {
	st := newFakeStore()
	keys := &fakeKeys{admin: "secret-admin-key", version: 1}
	s := New(Options{Config: config.Default, Store: st, Keys: keys, Log: quiet})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()

	url := "http://" + l.Addr().String()
	var resp *http.Response
	for i := 0; i < 100; i++ { // Serve starts asynchronously
		if resp, err = http.Get(url + "/healthz"); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz %d", resp.StatusCode)
	}

	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv.ReadHeaderTimeout != ReadHeaderTimeout || srv.ErrorLog == nil || srv.ReadTimeout != ReadTimeout || srv.WriteTimeout != WriteTimeout ||
		srv.IdleTimeout != IdleTimeout || srv.MaxHeaderBytes != MaxHeaderBytes {
		t.Errorf("server limits not set: %+v", srv)
	}

	// /api/status reports the address actually listened on.
	req, _ := http.NewRequest("GET", url+"/api/status", nil)
	req.Header.Set("Authorization", "Bearer secret-admin-key")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"http_listen":"`+l.Addr().String()+`"`) {
		t.Errorf("status: %s", body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve returned %v after Shutdown", err)
	}
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Error("still serving after Shutdown")
	}
	// Serve after Shutdown returns at once.
	l2, _ := net.Listen("tcp", "127.0.0.1:0")
	if err := s.Serve(l2); err != nil {
		t.Errorf("Serve after Shutdown: %v", err)
	}
}

// TestHeaderLimit: oversized request headers are refused by the server.
func TestHeaderLimit(t *testing.T) {
	s := New(Options{Config: config.Default, Store: newFakeStore(), Keys: &fakeKeys{}, Log: quiet})
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go s.Serve(l)
	defer s.Shutdown(context.Background())
	req, _ := http.NewRequest("GET", "http://"+l.Addr().String()+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 2*MaxHeaderBytes))
	var resp *http.Response
	var err error
	for i := 0; i < 100; i++ {
		if resp, err = http.DefaultClient.Do(req); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d, want 431", resp.StatusCode)
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRecordErrorsAreRateLimited(t *testing.T) {
	var logs syncBuffer
	now := t0
	st := newFakeStore()
	st.recordErr = errors.New("disk full")
	keys := &fakeKeys{tokens: map[string]string{"tok": "id1"}}
	st.add(recordCopy("id1"))
	s := New(Options{Config: config.Default, Store: st, Keys: keys, Log: slog.New(slog.NewTextHandler(&logs, nil)),
		Now: func() time.Time { return now }})
	get := func() {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("GET", "/o/tok.gif", nil))
		if rec.Code != 200 || rec.Body.Len() != 43 {
			t.Fatalf("pixel: %d %d bytes", rec.Code, rec.Body.Len())
		}
	}
	for i := 0; i < 5; i++ {
		get()
	}
	if n := strings.Count(logs.String(), "open not recorded"); n != 1 {
		t.Errorf("%d log lines for 5 errors within 10s, want 1:\n%s", n, logs.String())
	}
	now = now.Add(11 * time.Second)
	get()
	out := logs.String()
	if n := strings.Count(out, "open not recorded"); n != 2 || !strings.Contains(out, "suppressed=4") || !strings.Contains(out, "total=6") {
		t.Errorf("after 11s:\n%s", out)
	}
	if s.RecordErrors() != 6 {
		t.Errorf("RecordErrors = %d", s.RecordErrors())
	}
}

func FuzzPixelPath(f *testing.F) {
	for _, p := range []string{"/o/abc.gif", "/o/", "/o/.gif", "/o/a/b.gif", "/o/" + strings.Repeat("z", 80) + ".GIF", "/o/\x00.gif"} {
		f.Add(p)
	}
	st := newFakeStore()
	keys := &fakeKeys{tokens: map[string]string{"abc": "id1"}}
	st.add(recordCopy("id1"))
	s := New(Options{Config: config.Default, Store: st, Keys: keys, Log: quiet})
	f.Fuzz(func(t *testing.T, p string) {
		if !strings.HasPrefix(p, "/o/") {
			p = "/o/" + p
		}
		r := &http.Request{Method: "GET", URL: mustURL(p), Header: http.Header{}, RemoteAddr: "192.0.2.1:1"}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, r)
		if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), gif) {
			t.Fatalf("%q: %d %x", p, rec.Code, rec.Body.Bytes())
		}
		if tok, ok := tokenOf(p); ok && (len(tok) > maxTokenLen || strings.Contains(tok, "/")) {
			t.Fatalf("%q: token %q accepted", p, tok)
		}
	})
}

func FuzzForwardedFor(f *testing.F) {
	f.Add("1.2.3.4, 10.0.0.1", "10.0.0.9:80")
	f.Add("[2001:db8::1]:80,,  ,x", "[2001:db8::2]:1")
	f.Add("", "garbage")
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
	f.Fuzz(func(t *testing.T, xff, remote string) {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{"X-Forwarded-For": {xff}}}
		cl := clientOf(r, trusted)
		peer := peerAddr(remote)
		if !inPrefixes(peer, trusted) && cl.ip != peer {
			t.Fatalf("untrusted peer %v: got %v from XFF %q", peer, cl.ip, xff)
		}
		if cl.ip.IsValid() && cl.ip != peer && !strings.Contains(xff, cl.ip.String()) && !strings.Contains(strings.ToLower(xff), strings.ToLower(cl.ip.String())) {
			// Hops may be written in another form (e.g. with a port or leading zeros), so only
			// check that the answer parses back from some hop.
			found := false
			for _, hop := range strings.Split(xff, ",") {
				if ip, ok := parseHop(strings.TrimSpace(hop)); ok && ip == cl.ip {
					found = true
				}
			}
			if !found {
				t.Fatalf("client %v is neither the peer nor a hop of %q", cl.ip, xff)
			}
		}
	})
}

// TestLongPurgeOutlivesTimeouts: a purge that takes longer than the
// server's read and write timeouts still answers.
func TestLongPurgeOutlivesTimeouts(t *testing.T) {
	st := newFakeStore()
	st.purgeWait = make(chan struct{})
	s := New(Options{Config: config.Default, Store: st, Keys: &fakeKeys{admin: "k"}, Log: quiet})
	s.timeouts.ReadTimeout = 100 * time.Millisecond
	s.timeouts.WriteTimeout = 100 * time.Millisecond
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go s.Serve(l)
	defer s.Shutdown(context.Background())
	time.AfterFunc(400*time.Millisecond, func() { close(st.purgeWait) })
	req, _ := http.NewRequest("POST", "http://"+l.Addr().String()+"/api/purge", nil)
	req.Header.Set("Authorization", "Bearer k")
	// One attempt: the listener exists, so the connection is accepted even
	// before Serve runs.
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"deleted":3`) {
		t.Errorf("long purge: %d %s", resp.StatusCode, body)
	}
}
