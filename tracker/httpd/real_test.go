package httpd

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pixelrelay/config"
	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
	"pixelrelay/tracker/token"
)

// realFixture is the server over real HTTP with the real bbolt store and
// the real keyring.
type realFixture struct {
	t    *testing.T
	srv  *Server
	ts   *httptest.Server
	st   *store.Store
	keys *token.Keyring
	cfg  atomic.Pointer[config.Config]

	sentPixels int          // pixel requests made
	handled    atomic.Int64 // pixel requests fully handled
}

func newRealFixture(t *testing.T, edit func(*config.Config)) *realFixture {
	t.Helper()
	dir := t.TempDir()
	kr, err := token.OpenKeyring(filepath.Join(dir, "secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenStore(filepath.Join(dir, "pixelrelay.db"), store.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &realFixture{t: t, st: st, keys: kr}
	cfg := config.Default()
	cfg.DataDir = dir
	if edit != nil {
		edit(cfg)
	}
	f.cfg.Store(cfg)
	f.srv = New(Options{Config: f.cfg.Load, Store: st, Keys: kr, Version: "test", Log: quiet})
	f.srv.pixelDone = func() { f.handled.Add(1) }
	f.ts = httptest.NewServer(f.srv.Handler())
	t.Cleanup(f.ts.Close)
	return f
}

// sent adds a copy that was delivered a minute ago and returns its token.
func (f *realFixture) sent(rcpt string) (id, tok string) {
	f.t.Helper()
	id, tok, err := f.keys.Mint()
	if err != nil {
		f.t.Fatal(err)
	}
	now := time.Now()
	if err := f.st.Add([]record.Copy{{TrackingID: id, QueueID: "q", Recipient: rcpt, From: "me@example.com",
		Subject: "Hello", MessageID: "<m@example.com>", QueuedAt: now.Add(-2 * time.Minute)}}); err != nil {
		f.t.Fatal(err)
	}
	if err := f.st.Update(id, record.StatusSent, "", now.Add(-time.Minute)); err != nil {
		f.t.Fatal(err)
	}
	return id, tok
}

func (f *realFixture) do(method, path, ua string, hdr ...string) (*http.Response, []byte) {
	f.t.Helper()
	req, _ := http.NewRequest(method, f.ts.URL+path, nil)
	req.Header.Set("User-Agent", ua)
	if strings.HasPrefix(path, "/o/") {
		f.sentPixels++
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// settle waits for in-flight pixel handlers, then for the store's writer.
func (f *realFixture) settle() {
	f.t.Helper()
	// Handlers flush the pixel before enqueuing: wait for them to finish,
	// then flush the writer (a Flush is ordered after earlier Enqueues).
	deadline := time.Now().Add(10 * time.Second)
	for f.handled.Load() < int64(f.sentPixels) {
		if time.Now().After(deadline) {
			f.t.Fatalf("%d of %d pixel requests handled", f.handled.Load(), f.sentPixels)
		}
		time.Sleep(time.Millisecond)
	}
	if err := f.st.Flush(); err != nil {
		f.t.Fatal(err)
	}
}

func (f *realFixture) opens(query string) []store.Open {
	f.t.Helper()
	resp, body := f.do("GET", "/api/opens?"+query, "cli", "Authorization", "Bearer "+f.keys.AdminKey())
	if resp.StatusCode != 200 {
		f.t.Fatalf("opens: %d %s", resp.StatusCode, body)
	}
	var r OpensResponse
	if err := json.Unmarshal(body, &r); err != nil {
		f.t.Fatal(err)
	}
	return r.Opens
}

const uaTB = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.5.0"

func TestRealStoreEndToEnd(t *testing.T) {
	f := newRealFixture(t, nil)
	id, tok := f.sent("Bob@Example.com")

	// A HEAD records nothing (and from another client than the reader's
	// it does not make the reader a scanner).
	resp, body := f.do("HEAD", "/o/"+tok+".gif", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36")
	checkPixel(t, resp, body, true)
	resp, body = f.do("GET", "/o/"+strings.ToUpper(tok)+".gif", uaTB)
	checkPixel(t, resp, body, false)
	// Same id, IP and UA within the dedup window: pixel, no second open.
	resp, body = f.do("GET", "/o/"+tok+".gif", uaTB)
	checkPixel(t, resp, body, false)
	// A forged token never reaches the store.
	resp, body = f.do("GET", "/o/"+strings.Repeat("b", token.Len)+".gif", uaTB)
	checkPixel(t, resp, body, false)
	// A Gmail proxy fetch: a second, human, open with proxy gmail.
	f.do("GET", "/o/"+tok+".gif", "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)")
	// A scanner.
	f.do("GET", "/o/"+tok+".gif", "curl/8.5.0")
	f.settle()

	opens := f.opens("id=" + id)
	if len(opens) != 3 {
		t.Fatalf("%d opens, want 3: %+v", len(opens), opens)
	}
	byUA := map[string]store.Open{}
	for _, o := range opens {
		byUA[o.UserAgent] = o
	}
	tb := byUA[uaTB]
	if tb.TrackingID != id || tb.Recipient != "Bob@Example.com" || tb.Subject != "Hello" || tb.IP != "127.0.0.1" ||
		tb.Bot || !tb.First || tb.SentAt == nil {
		t.Errorf("thunderbird open %+v", tb)
	}
	if o := byUA["curl/8.5.0"]; !o.Bot || o.BotType != "scanner" || o.First {
		t.Errorf("curl open %+v", o)
	}
	for _, o := range opens {
		if strings.Contains(o.UserAgent, "GoogleImageProxy") && (o.Bot || o.Proxy != "gmail") {
			t.Errorf("gmail open %+v", o)
		}
	}
	for i := 1; i < len(opens); i++ {
		if opens[i].OpenedAt.After(opens[i-1].OpenedAt) {
			t.Errorf("not newest first: %v then %v", opens[i-1].OpenedAt, opens[i].OpenedAt)
		}
	}
	if got := f.opens("to=bob@EXAMPLE.com"); len(got) != 3 {
		t.Errorf("by recipient, any case: %d opens", len(got))
	}

	// Raw key names against CONTRACT.md, from the real store's output.
	_, body = f.do("GET", "/api/opens?id="+id, "cli", "Authorization", "Bearer "+f.keys.AdminKey())
	var raw struct{ Opens []json.RawMessage }
	json.Unmarshal(body, &raw)
	for _, o := range raw.Opens {
		checkFields(t, "OPEN", keysOf(t, o), contractOpen, "country", "city")
	}
	_, body = f.do("GET", "/api/messages", "cli", "Authorization", "Bearer "+f.keys.AdminKey())
	var msgs struct{ Messages []json.RawMessage }
	json.Unmarshal(body, &msgs)
	if len(msgs.Messages) != 1 {
		t.Fatalf("messages: %s", body)
	}
	checkFields(t, "MESSAGE", keysOf(t, msgs.Messages[0]), contractMessage)
	var m store.Message
	json.Unmarshal(msgs.Messages[0], &m)
	if m.OpensTotal != 3 || m.OpensHuman != 2 || m.FirstHumanOpen == nil || m.Status != "sent" {
		t.Errorf("message %+v", m)
	}
	_, body = f.do("GET", "/api/messages?unopened=true", "cli", "Authorization", "Bearer "+f.keys.AdminKey())
	if strings.TrimSpace(string(body)) != `{"messages":[]}` {
		t.Errorf("unopened: %s", body)
	}
}

// TestRealStoreIPLimit: the 101st open from one IP in an hour still gets
// the pixel, and is not stored.
func TestRealStoreIPLimit(t *testing.T) {
	f := newRealFixture(t, nil) // ip_hourly_limit = 100 by default
	toks := make([]string, 101)
	for i := range toks {
		_, toks[i] = f.sent(fmt.Sprintf("r%d@example.com", i))
	}
	for i, tok := range toks {
		resp, body := f.do("GET", "/o/"+tok+".gif", uaTB)
		if resp.StatusCode != 200 || len(body) != 43 {
			t.Fatalf("fetch %d: %d, %d bytes", i+1, resp.StatusCode, len(body))
		}
	}
	f.settle()
	if got := f.opens("limit=500"); len(got) != 100 {
		t.Errorf("%d opens stored, want 100", len(got))
	}

	// A hot reload raising the limit applies to the next fetch.
	next := *f.cfg.Load()
	next.Tracking.IPHourlyLimit = 1000
	f.cfg.Store(&next)
	_, tok := f.sent("late@example.com")
	f.do("GET", "/o/"+tok+".gif", uaTB)
	f.settle()
	if got := f.opens("to=late@example.com"); len(got) != 1 {
		t.Errorf("after raising the limit: %d opens, want 1", len(got))
	}
}

func TestRealStorePurgeAndStatus(t *testing.T) {
	f := newRealFixture(t, nil)
	_, tok := f.sent("bob@example.com")
	f.do("GET", "/o/"+tok+".gif", uaTB)
	f.settle()
	auth := []string{"Authorization", "Bearer " + f.keys.AdminKey()}
	resp, body := f.do("POST", "/api/purge?older_than=1d", "cli", auth...)
	var res PurgeResponse
	if err := json.Unmarshal(body, &res); err != nil || resp.StatusCode != 200 || res.Deleted != 0 {
		t.Errorf("purge 1d: %d %s", resp.StatusCode, body)
	}
	resp, body = f.do("GET", "/api/status", "cli", auth...)
	var st StatusResponse
	if err := json.Unmarshal(body, &st); err != nil || resp.StatusCode != 200 || st.Database.Opens != 1 || st.Database.Copies != 1 {
		t.Errorf("status: %d %s", resp.StatusCode, body)
	}
	var raw struct {
		Database map[string]json.RawMessage `json:"database"`
	}
	json.Unmarshal(body, &raw)
	for _, k := range []string{"dropped", "limiter_refused"} {
		if string(raw.Database[k]) != "0" {
			t.Errorf("status: database.%s = %s, want 0 (present, nothing lost): %s", k, raw.Database[k], body)
		}
	}
}

// An id no copy has is a 404 on both routes that take one; a known copy
// without opens (or filtered out) is an empty list.
func TestUnknownIDIsNotFound(t *testing.T) {
	f := newRealFixture(t, nil)
	id, _ := f.sent("bob@example.com")
	auth := []string{"Authorization", "Bearer " + f.keys.AdminKey()}
	for _, tc := range []struct {
		path string
		code int
		want string
	}{
		{"/api/opens?id=aaaaaaaaaaaaaaaa", 404, `{"error":"no tracked copy has the id aaaaaaaaaaaaaaaa"}`},
		{"/api/messages?id=AAAAAAAAAAAAAAAA", 404, `{"error":"no tracked copy has the id aaaaaaaaaaaaaaaa"}`},
		{"/api/opens?id=" + id, 200, `{"opens":[]}`},
		{"/api/messages?id=" + id + "&unopened=true&since=1h", 200, `"tracking_id":"` + id + `"`},
		{"/api/opens?to=nobody@example.com", 200, `{"opens":[]}`},
	} {
		resp, body := f.do("GET", tc.path, "cli", auth...)
		if resp.StatusCode != tc.code || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s: %d %s, want %d with %s", tc.path, resp.StatusCode, body, tc.code, tc.want)
		}
	}
}

// A purge is logged once: one start and one result, by the store (the
// server logged its own pair as well).
func TestPurgeLoggedOnce(t *testing.T) {
	dir := t.TempDir()
	var logs syncLog
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	kr, err := token.OpenKeyring(filepath.Join(dir, "secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenStore(filepath.Join(dir, "pixelrelay.db"), store.Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := config.Default()
	cfg.DataDir = dir
	srv := New(Options{Config: func() *config.Config { return cfg }, Store: st, Keys: kr, Log: log})
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	for range 2 {
		req, _ := http.NewRequest("POST", ts.URL+"/api/purge?older_than=1d", nil)
		req.Header.Set("Authorization", "Bearer "+kr.AdminKey())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("purge: %d", resp.StatusCode)
		}
	}
	var starts, ends int
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec struct{ Msg string }
		json.Unmarshal([]byte(line), &rec)
		switch {
		case strings.Contains(rec.Msg, "purge") && strings.Contains(rec.Msg, "start"):
			starts++
		case strings.Contains(rec.Msg, "purge") && strings.Contains(rec.Msg, "done"):
			ends++
		}
	}
	if starts != 2 || ends != 2 {
		t.Errorf("two purges logged %d starts and %d results, want 2 and 2:\n%s", starts, ends, logs.String())
	}
}

type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
