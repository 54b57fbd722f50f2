package httpd

import (
	"bytes"
	"errors"
	"fmt"
	gifpkg "image/gif"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"pixelrelay/config"
	"pixelrelay/tracker/record"
	"pixelrelay/tracker/token"
)

var quiet = slog.New(slog.DiscardHandler)

// fixture is a server over real HTTP with a real keyring and a fake store.
type fixture struct {
	t     *testing.T
	srv   *Server
	ts    *httptest.Server
	st    *fakeStore
	keys  *token.Keyring
	cfg   atomic.Pointer[config.Config]
	clock atomic.Pointer[time.Time]
	done  chan struct{} // one value per pixel request handled
}

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func newFixture(t *testing.T, edit func(*config.Config)) *fixture {
	t.Helper()
	kr, err := token.OpenKeyring(filepath.Join(t.TempDir(), "secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, st: newFakeStore(), keys: kr}
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	if edit != nil {
		edit(cfg)
	}
	f.cfg.Store(cfg)
	now := t0
	f.clock.Store(&now)
	f.srv = New(Options{
		Config:  f.cfg.Load,
		Store:   f.st,
		Keys:    kr,
		Version: "test",
		Log:     quiet,
		Now:     func() time.Time { return *f.clock.Load() },
	})
	f.done = make(chan struct{}, 1024)
	f.srv.pixelDone = func() { f.done <- struct{}{} }
	f.ts = httptest.NewServer(f.srv.Handler())
	t.Cleanup(f.ts.Close)
	return f
}

// mint makes a token for a copy sent an hour before t0.
func (f *fixture) mint() (id, tok string) {
	f.t.Helper()
	id, tok, err := f.keys.Mint()
	if err != nil {
		f.t.Fatal(err)
	}
	f.st.add(record.Copy{TrackingID: id, Recipient: "bob@example.com", SentAt: t0.Add(-time.Hour), Status: record.StatusSent})
	return id, tok
}

func (f *fixture) get(method, path string, hdr ...string) (*http.Response, []byte) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.ts.URL+path, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.5.0")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	if strings.HasPrefix(path, "/o/") {
		// The pixel is flushed before the open is stored: wait for the
		// handler to finish.
		select {
		case <-f.done:
		case <-time.After(10 * time.Second):
			f.t.Fatal("pixel handler did not finish")
		}
	}
	return resp, body
}

func TestGIFIsATransparentPixel(t *testing.T) {
	if len(gif) != 43 {
		t.Fatalf("gif is %d bytes, want 43", len(gif))
	}
	if !bytes.HasPrefix(gif, []byte("GIF89a")) {
		t.Fatalf("not GIF89a: %q", gif[:6])
	}
	img, err := gifpkg.Decode(bytes.NewReader(gif))
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	if b.Dx() != 1 || b.Dy() != 1 {
		t.Fatalf("size %v, want 1x1", b)
	}
	if _, _, _, a := img.At(b.Min.X, b.Min.Y).RGBA(); a != 0 {
		t.Fatalf("pixel alpha %d, want 0 (transparent)", a)
	}
}

func checkPixel(t *testing.T, resp *http.Response, body []byte, head bool) {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d, want 200", resp.StatusCode)
	}
	want := map[string]string{
		"Content-Type":   "image/gif",
		"Content-Length": "43",
		"Cache-Control":  "no-store, no-cache, must-revalidate, private",
		"Pragma":         "no-cache",
		"Expires":        "0",
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if head {
		if len(body) != 0 {
			t.Errorf("HEAD returned %d body bytes", len(body))
		}
		return
	}
	if !bytes.Equal(body, gif) {
		t.Errorf("body is not the pixel: %x", body)
	}
}

func TestPixel(t *testing.T) {
	f := newFixture(t, nil)
	id, tok := f.mint()
	flip := []byte(tok)
	flip[20] ^= 1 // a different base32 letter: damaged
	forged := strings.Repeat("a", token.Len)

	rows := []struct {
		name   string
		method string
		path   string
		record bool
	}{
		{"genuine", "GET", "/o/" + tok + ".gif", true},
		{"genuine upper case", "GET", "/o/" + strings.ToUpper(tok) + ".gif", true},
		{"upper-case extension", "GET", "/o/" + tok + ".GIF", true},
		{"with query", "GET", "/o/" + tok + ".gif?utm=x", true},
		{"HEAD records nothing", "HEAD", "/o/" + tok + ".gif", false},
		{"damaged", "GET", "/o/" + string(flip) + ".gif", false},
		{"forged", "GET", "/o/" + forged + ".gif", false},
		{"truncated", "GET", "/o/" + tok[:40] + ".gif", false},
		{"too long", "GET", "/o/" + tok + tok + ".gif", false},
		{"no extension", "GET", "/o/" + tok, false},
		{"png", "GET", "/o/" + tok + ".png", false},
		{"empty", "GET", "/o/", false},
		{"nested", "GET", "/o/x/" + tok + ".gif", false},
		{"garbage", "GET", "/o/%00%ff.gif", false},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			before := len(f.st.hitList())
			resp, body := f.get(row.method, row.path)
			checkPixel(t, resp, body, row.method == "HEAD")
			hits := f.st.hitList()
			got := len(hits) - before
			if row.record && got != 1 {
				t.Fatalf("recorded %d opens, want 1", got)
			}
			if !row.record && got != 0 {
				t.Fatalf("recorded %d opens, want 0", got)
			}
			if row.record {
				h := hits[len(hits)-1]
				if h.TrackingID != id || h.IP != "127.0.0.1" || !h.At.Equal(t0) || h.Bot || h.Proxy != "" ||
					!strings.Contains(h.UserAgent, "Thunderbird") {
					t.Errorf("hit = %+v", h)
				}
			}
		})
	}
}

func TestPixelClassifies(t *testing.T) {
	f := newFixture(t, nil)
	_, tok := f.mint()
	rows := []struct {
		ua, botType, proxy string
		hdr                []string
	}{
		{ua: "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)", proxy: "gmail"},
		{ua: "curl/8.5.0", botType: "scanner"},
		{ua: "Mozilla/5.0", botType: "apple_mpp"},
		{ua: "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", botType: "prefetch", hdr: []string{"Sec-Purpose", "prefetch"}},
	}
	for _, row := range rows {
		resp, body := f.get("GET", "/o/"+tok+".gif", append([]string{"User-Agent", row.ua}, row.hdr...)...)
		checkPixel(t, resp, body, false)
		hits := f.st.hitList()
		h := hits[len(hits)-1]
		if h.UserAgent != row.ua || h.BotType != row.botType || h.Bot != (row.botType != "") || h.Proxy != row.proxy {
			t.Errorf("%q: hit %+v, want bot_type %q proxy %q", row.ua, h, row.botType, row.proxy)
		}
	}

	// Within the prefetch window of delivery: a prefetch.
	id2, tok2, _ := f.keys.Mint()
	f.st.add(record.Copy{TrackingID: id2, SentAt: t0.Add(-3 * time.Second), Status: record.StatusSent})
	f.get("GET", "/o/"+tok2+".gif")
	hits := f.st.hitList()
	if h := hits[len(hits)-1]; h.TrackingID != id2 || h.BotType != "prefetch" {
		t.Errorf("fetch 3s after delivery: %+v, want prefetch", h)
	}
}

func TestPixelStoreTrouble(t *testing.T) {
	f := newFixture(t, nil)
	_, tok := f.mint()

	// A genuine token of a copy the store does not know: pixel, no record.
	_, unknown, _ := f.keys.Mint()
	resp, body := f.get("GET", "/o/"+unknown+".gif")
	checkPixel(t, resp, body, false)
	if n := len(f.st.hitList()); n != 0 {
		t.Fatalf("unknown copy recorded %d opens", n)
	}

	f.st.mu.Lock()
	f.st.recordErr = errors.New("disk full")
	f.st.mu.Unlock()
	for i := 0; i < 3; i++ {
		resp, body := f.get("GET", "/o/"+tok+".gif")
		checkPixel(t, resp, body, false)
	}
	_, tok2 := f.mint()
	f.st.mu.Lock()
	f.st.recordErr, f.st.copyErr = nil, errors.New("read tx failed")
	f.st.mu.Unlock()
	resp, body = f.get("GET", "/o/"+tok2+".gif")
	checkPixel(t, resp, body, false)
	if got := f.srv.RecordErrors(); got != 4 {
		t.Errorf("RecordErrors = %d, want 4", got)
	}
}

func TestPixelMethods(t *testing.T) {
	f := newFixture(t, nil)
	_, tok := f.mint()
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		resp, _ := f.get(m, "/o/"+tok+".gif")
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: status %d Allow %q", m, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
	if n := len(f.st.hitList()); n != 0 {
		t.Errorf("recorded %d opens", n)
	}
}

func TestHealthz(t *testing.T) {
	f := newFixture(t, nil)
	resp, body := f.get("GET", "/healthz")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || strings.TrimSpace(string(body)) != `{"status":"ok"}` {
		t.Errorf("healthz: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if resp, _ := f.get("POST", "/healthz"); resp.StatusCode != 405 {
		t.Errorf("POST /healthz: %d", resp.StatusCode)
	}
	if resp, _ := f.get("GET", "/nope"); resp.StatusCode != 404 {
		t.Errorf("GET /nope: %d", resp.StatusCode)
	}
}

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("198.51.100.7/32"),
	}
	rows := []struct {
		name    string
		remote  string
		hdr     http.Header
		want    string
		country string
	}{
		{name: "direct", remote: "203.0.113.9:5555", want: "203.0.113.9"},
		{name: "direct v6", remote: "[2a00:1450::1]:443", want: "2a00:1450::1"},
		{name: "mapped v4", remote: "[::ffff:203.0.113.9]:1", want: "203.0.113.9"},
		{name: "spoofed XFF from untrusted peer", remote: "203.0.113.9:1", hdr: http.Header{"X-Forwarded-For": {"1.2.3.4"}}, want: "203.0.113.9"},
		{name: "spoofed CF from untrusted peer", remote: "203.0.113.9:1", hdr: http.Header{"Cf-Connecting-Ip": {"1.2.3.4"}, "Cf-Ipcountry": {"FR"}}, want: "203.0.113.9"},
		{name: "trusted, one hop", remote: "10.1.1.1:1", hdr: http.Header{"X-Forwarded-For": {"192.0.2.1"}}, want: "192.0.2.1"},
		{name: "trusted, client spoofs left part", remote: "10.1.1.1:1", hdr: http.Header{"X-Forwarded-For": {"6.6.6.6, 192.0.2.1"}}, want: "192.0.2.1"},
		{name: "trusted chain", remote: "10.1.1.1:1", hdr: http.Header{"X-Forwarded-For": {"6.6.6.6, 192.0.2.1, 10.2.2.2, 198.51.100.7"}}, want: "192.0.2.1"},
		{name: "several XFF lines", remote: "10.1.1.1:1", hdr: http.Header{"X-Forwarded-For": {"6.6.6.6", "192.0.2.1, 10.2.2.2"}}, want: "192.0.2.1"},
		{name: "all hops trusted", remote: "10.1.1.1:1", hdr: http.Header{"X-Forwarded-For": {"10.9.9.9, 10.2.2.2"}}, want: "10.9.9.9"},
		{name: "hop with port", remote: "10.1.1.1:1", hdr: http.Header{"X-Forwarded-For": {"192.0.2.1:4711"}}, want: "192.0.2.1"},
		{name: "v6 hop", remote: "[2001:db8::5]:1", hdr: http.Header{"X-Forwarded-For": {"2a00:1450::1"}}, want: "2a00:1450::1"},
		{name: "garbage hop stops the walk", remote: "10.1.1.1:1", hdr: http.Header{"X-Forwarded-For": {"192.0.2.1, nonsense, 10.2.2.2"}}, want: "10.2.2.2"},
		{name: "garbage only", remote: "10.1.1.1:1", hdr: http.Header{"X-Forwarded-For": {"nonsense"}}, want: "10.1.1.1"},
		{name: "empty hops", remote: "10.1.1.1:1", hdr: http.Header{"X-Forwarded-For": {" , 192.0.2.1 ,"}}, want: "192.0.2.1"},
		{name: "cloudflare", remote: "10.1.1.1:1", hdr: http.Header{"Cf-Connecting-Ip": {"192.0.2.44"}, "Cf-Ipcountry": {"DE"}}, want: "192.0.2.44", country: "DE"},
		{name: "XFF before CF", remote: "10.1.1.1:1", hdr: http.Header{"X-Forwarded-For": {"192.0.2.1"}, "Cf-Connecting-Ip": {"192.0.2.44"}}, want: "192.0.2.1"},
		{name: "trusted, no headers", remote: "10.1.1.1:1", want: "10.1.1.1"},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: row.remote, Header: row.hdr}
			if r.Header == nil {
				r.Header = http.Header{}
			}
			cl := clientOf(r, trusted)
			if cl.ip.String() != row.want || cl.country != row.country {
				t.Errorf("got %s %q, want %s %q", cl.ip, cl.country, row.want, row.country)
			}
		})
	}
}

// TestTrustedProxiesFromConfig: http.trusted_proxies is read from the
// config in force, and a hot reload changes it.
func TestTrustedProxiesFromConfig(t *testing.T) {
	f := newFixture(t, func(c *config.Config) { c.HTTP.TrustedProxies = []string{"127.0.0.1"} })
	_, tok := f.mint()
	f.get("GET", "/o/"+tok+".gif", "X-Forwarded-For", "192.0.2.1", "Cf-Ipcity", "Berlin")
	hits := f.st.hitList()
	if h := hits[len(hits)-1]; h.IP != "192.0.2.1" || h.City != "Berlin" {
		t.Errorf("behind trusted proxy: %+v", h)
	}
	next := *f.cfg.Load()
	next.HTTP.TrustedProxies = nil
	f.cfg.Store(&next)
	f.get("GET", "/o/"+tok+".gif", "X-Forwarded-For", "192.0.2.1", "Cf-Ipcity", "Berlin")
	hits = f.st.hitList()
	if h := hits[len(hits)-1]; h.IP != "127.0.0.1" || h.City != "" {
		t.Errorf("after reload without trusted proxies: %+v", h)
	}
}

func TestAppleRangesFileFromConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "apple.txt")
	if err := os.WriteFile(file, []byte("# test egress\n127.0.0.0/8\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *config.Config) { c.Tracking.AppleRangesFile = file })
	_, tok := f.mint()
	f.get("GET", "/o/"+tok+".gif", "User-Agent", uaAppleMail)
	hits := f.st.hitList()
	if h := hits[len(hits)-1]; h.BotType != "apple_mpp" || h.Reason != "network: Apple tracking.apple_ranges_file 127.0.0.0/8" {
		t.Errorf("fetch from a listed range: %+v", h)
	}
	// A reload to a file that cannot be read keeps serving with the built-in range.
	next := *f.cfg.Load()
	next.Tracking.AppleRangesFile = filepath.Join(t.TempDir(), "missing.txt")
	f.cfg.Store(&next)
	f.get("GET", "/o/"+tok+".gif", "User-Agent", uaAppleMail)
	hits = f.st.hitList()
	if h := hits[len(hits)-1]; h.BotType != "" {
		t.Errorf("after reload without the file: %+v", h)
	}
}

// TestPixelDoesNotWaitForTheStore: the pixel reaches the client while the
// store is still busy with the open.
func TestPixelDoesNotWaitForTheStore(t *testing.T) {
	st := newFakeStore()
	st.block = make(chan struct{})
	st.add(recordCopy("id1"))
	keys := &fakeKeys{tokens: map[string]string{"tok": "id1"}}
	s := New(Options{Config: config.Default, Store: st, Keys: keys, Log: quiet, WaitForRecord: true})
	ts := httptest.NewServer(s)
	defer ts.Close()
	defer close(st.block) // before ts.Close, which waits for the handler

	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(ts.URL + "/o/tok.gif")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(body, gif) {
		t.Fatalf("pixel while the store blocks: %v %x", err, body)
	}
	if n := len(st.hitList()); n != 0 {
		t.Fatalf("store finished early? %d hits", n)
	}
}

// TestPixelCommitFirst: with CommitFirst the pixel is answered only once
// the store has recorded the open (PostgreSQL: a killed process loses no
// answered open); a forged token is answered at once, recording nothing.
func TestPixelCommitFirst(t *testing.T) {
	st := newFakeStore()
	st.block = make(chan struct{})
	st.add(recordCopy("id1"))
	keys := &fakeKeys{tokens: map[string]string{"tok": "id1"}}
	s := New(Options{Config: config.Default, Store: st, Keys: keys, Log: quiet, WaitForRecord: true, CommitFirst: true})
	ts := httptest.NewServer(s)
	defer ts.Close()

	client := &http.Client{Timeout: 10 * time.Second}
	if resp, err := client.Get(ts.URL + "/o/forged.gif"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("forged token: %v", err)
	} else {
		resp.Body.Close()
	}
	got := make(chan []byte, 1)
	go func() {
		resp, err := client.Get(ts.URL + "/o/tok.gif")
		if err != nil {
			got <- nil
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- b
	}()
	select {
	case <-got:
		t.Fatal("the pixel was answered before the store recorded the open")
	case <-time.After(300 * time.Millisecond):
	}
	close(st.block)
	if b := <-got; !bytes.Equal(b, gif) {
		t.Fatalf("pixel after the commit: %x", b)
	}
	if n := len(st.hitList()); n != 1 {
		t.Fatalf("%d hits recorded, want 1", n)
	}
}

// TestSettledCopiesSkipTheLookup: once a copy is known to have been
// delivered long ago, its further opens do not read it again; recent copies
// are read every time (the prefetch window depends on them).
func TestSettledCopiesSkipTheLookup(t *testing.T) {
	f := newFixture(t, nil)
	old, oldTok, _ := f.keys.Mint()
	f.st.add(record.Copy{TrackingID: old, SentAt: t0.Add(-3 * time.Hour), Status: record.StatusSent})
	recent, recentTok, _ := f.keys.Mint()
	f.st.add(record.Copy{TrackingID: recent, SentAt: t0.Add(-5 * time.Minute), Status: record.StatusSent})
	calls := func() int {
		f.st.mu.Lock()
		defer f.st.mu.Unlock()
		return f.st.copyCalls
	}
	for i := 0; i < 3; i++ {
		f.get("GET", "/o/"+oldTok+".gif", "User-Agent", fmt.Sprintf("Thunderbird/%d", i))
	}
	if n := calls(); n != 1 {
		t.Errorf("old copy read %d times for 3 opens, want 1", n)
	}
	for i := 0; i < 3; i++ {
		f.get("GET", "/o/"+recentTok+".gif", "User-Agent", fmt.Sprintf("Thunderbird/%d", i))
	}
	if n := calls(); n != 4 {
		t.Errorf("recent copy: %d reads in all, want 4", n)
	}
	// Bots are classified without the copy.
	f.get("GET", "/o/"+recentTok+".gif", "User-Agent", "curl/8.5.0")
	if n := calls(); n != 4 {
		t.Errorf("a scanner fetch read the copy")
	}
	if n := len(f.st.hitList()); n != 7 {
		t.Errorf("%d opens recorded, want 7", n)
	}
}

// TestPrefetchWindowZeroTurnsTheRuleOff: tracking.prefetch_window = "0"
// means no fetch is a prefetch because of its timing.
func TestPrefetchWindowZeroTurnsTheRuleOff(t *testing.T) {
	f := newFixture(t, func(c *config.Config) { c.Tracking.PrefetchWindow = 0 })
	id, tok, _ := f.keys.Mint()
	f.st.add(record.Copy{TrackingID: id, SentAt: t0.Add(-3 * time.Second), Status: record.StatusSent})
	f.get("GET", "/o/"+tok+".gif")
	hits := f.st.hitList()
	if len(hits) != 1 || hits[0].Bot {
		t.Errorf("prefetch_window 0: %+v, want a human open", hits)
	}
}
