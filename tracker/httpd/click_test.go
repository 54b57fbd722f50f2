package httpd

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"pixelrelay/tracker/classify"
	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
)

// clickURLs of the test copy: an ordinary one, one with entities decoded
// and a query, one with UTF-8.
var clickURLs = []string{"https://shop.example.com/item?id=7&ref=mail", "http://example.org/a%20b#top", "https://例え.jp/パス?q=ü"}

// clickFixture is a real fixture with one sent copy that has clickURLs,
// and its link tokens.
type clickFixture struct {
	*realFixture
	id, tok string
	links   []string // link tokens; links[0] is the honeypot's
	clicks  atomic.Int64
	sent    int64
}

func newClickFixture(t *testing.T) *clickFixture {
	t.Helper()
	f := &clickFixture{realFixture: newRealFixture(t, nil)}
	f.srv.clickDone = func() { f.clicks.Add(1) }
	var err error
	f.id, f.tok, err = f.keys.Mint()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := f.st.Add([]record.Copy{{TrackingID: f.id, QueueID: "q1", Recipient: "bob@example.com", Subject: "Hello",
		QueuedAt: now.Add(-time.Hour), Links: clickURLs}}); err != nil {
		t.Fatal(err)
	}
	if err := f.st.Update(f.id, record.StatusSent, "", now.Add(-50*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if f.links, err = f.keys.LinkTokens(f.tok, len(clickURLs)); err != nil {
		t.Fatal(err)
	}
	return f
}

// get requests path without following redirects.
func (f *clickFixture) get(method, path, ua string) (*http.Response, []byte) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.ts.URL+path, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("User-Agent", ua)
	c := *f.ts.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if strings.HasPrefix(path, "/c/") {
		f.sent++
	}
	return resp, body
}

// wait waits for the click handlers, then for the store's writer.
func (f *clickFixture) wait() {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for f.clicks.Load() < f.sent {
		if time.Now().After(deadline) {
			f.t.Fatalf("%d of %d click requests handled", f.clicks.Load(), f.sent)
		}
		time.Sleep(time.Millisecond)
	}
	if err := f.st.Flush(); err != nil {
		f.t.Fatal(err)
	}
}

func (f *clickFixture) storedClicks() []store.Click {
	f.t.Helper()
	f.wait()
	resp, body := f.do("GET", "/api/clicks?id="+f.id, "cli", "Authorization", "Bearer "+f.keys.AdminKey())
	if resp.StatusCode != 200 {
		f.t.Fatalf("/api/clicks: %d %s", resp.StatusCode, body)
	}
	var r ClicksResponse
	if err := json.Unmarshal(body, &r); err != nil {
		f.t.Fatal(err)
	}
	return r.Clicks
}

// TestClickRedirects: a genuine link token, in any case and whatever
// query it carries, redirects to exactly its stored URL with no-store and
// no referrer, and its click is stored; HEAD redirects and records
// nothing.
func TestClickRedirects(t *testing.T) {
	f := newClickFixture(t)
	for n, u := range clickURLs {
		for _, path := range []string{"/c/" + f.links[n+1], "/c/" + strings.ToUpper(f.links[n+1]), "/c/" + f.links[n+1] + "?url=https://evil.example/"} {
			resp, body := f.get("GET", path, uaTB)
			if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != u || len(body) != 0 {
				t.Fatalf("GET %s: %d, Location %q, body %q; want 302 to %q", path, resp.StatusCode, resp.Header.Get("Location"), body, u)
			}
			if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
				t.Fatalf("GET %s: headers %v", path, resp.Header)
			}
		}
		time.Sleep(classify.LinkBurstWindow + 100*time.Millisecond) // one link at a time, as a person
	}
	resp, _ := f.get("HEAD", "/c/"+f.links[1], "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0 Safari/537.36")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != clickURLs[0] {
		t.Fatalf("HEAD: %d %v", resp.StatusCode, resp.Header)
	}
	cs := f.storedClicks()
	if len(cs) != 3 { // the same client's repeats are duplicates; HEAD is not stored
		t.Fatalf("%d clicks stored: %+v", len(cs), cs)
	}
	for i, c := range cs {
		if c.URL != clickURLs[len(clickURLs)-1-i] || c.Bot || c.Recipient != "bob@example.com" || c.First != (i == 2) {
			t.Errorf("click %d: %+v", i, c)
		}
	}
	raw := map[string]json.RawMessage{}
	_, body := f.do("GET", "/api/clicks?id="+f.id+"&limit=1", "cli", "Authorization", "Bearer "+f.keys.AdminKey())
	var r struct{ Clicks []map[string]json.RawMessage }
	if err := json.Unmarshal(body, &r); err != nil || len(r.Clicks) != 1 {
		t.Fatalf("%s: %v", body, err)
	}
	raw = r.Clicks[0]
	var keys []string
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := []string{"bot", "bot_type", "clicked_at", "first", "ip", "reason", "recipient", "subject", "tracking_id", "url", "user_agent"}
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("CLICK has fields %v, want CONTRACT.md's %v", keys, want)
	}
}

// TestClickNeverRedirectsElsewhere: forged, damaged, foreign, unknown and
// tricked click URLs get the neutral page, never a redirect, never the
// input echoed; the honeypot gets the page with 200 and is a scanner's.
func TestClickNeverRedirectsElsewhere(t *testing.T) {
	f := newClickFixture(t)
	other := newClickFixture(t)
	genuine := f.links[1]
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	unknownID, unknownTok, _ := f.keys.Mint()
	unknownLinks, _ := f.keys.LinkTokens(unknownTok, 1)
	_ = unknownID
	beyond, _ := f.keys.LinkTokens(f.tok, len(clickURLs)+1)
	paths := []string{
		"/c/", "/c/x", "/c/evil.example", "//evil.example", "/c//evil.example", "/c///evil.example",
		"/c/%2F%2Fevil.example", "/c/%2f%2fevil.example", "/c/..%2F..%2Fevil.example", "/c/%5Cevil.example",
		"/c/\\evil.example", "/c/https:%2F%2Fevil.example", "/c/" + genuine + "/evil.example",
		"/c/" + genuine + "%2F%2Fevil.example", "/c/" + genuine[:len(genuine)-1], "/c/" + genuine + "a",
		"/c/" + flip(genuine, 0), "/c/" + flip(genuine, len(genuine)-1), "/c/" + flip(genuine, 20),
		"/c/" + f.tok, "/c/" + f.tok + ".gif", "/c/" + other.links[1], "/c/" + unknownLinks[1],
		"/c/" + beyond[len(beyond)-1], "/c/" + strings.Repeat("a", 56), "/c/" + strings.Repeat("a", 65),
		"/c/" + genuine + "%00", "/c/%E2%80%AE" + genuine,
	}
	for _, p := range paths {
		resp, body := f.get("GET", p, uaTB)
		if loc := resp.Header.Get("Location"); loc != "" || resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusMovedPermanently {
			t.Fatalf("GET %s: %d, Location %q", p, resp.StatusCode, loc)
		}
		if strings.HasPrefix(p, "/c/") && (resp.StatusCode != http.StatusNotFound || string(body) != string(notFoundPage) ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html")) {
			t.Fatalf("GET %s: %d %q %s", p, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	resp, body := f.get("GET", "/c/"+f.links[0], uaTB)
	if resp.StatusCode != http.StatusOK || string(body) != string(notFoundPage) || resp.Header.Get("Location") != "" {
		t.Fatalf("honeypot: %d %s", resp.StatusCode, body)
	}
	resp, _ = f.get("POST", "/c/"+genuine, uaTB)
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Location") != "" {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
	cs := f.storedClicks()
	if len(cs) != 1 || cs[0].URL != "" || !cs[0].Bot || cs[0].Reason != classify.ReasonHoneypot {
		t.Fatalf("clicks stored: %+v", cs)
	}
	if st, _ := f.st.Stats(); st.Clicks != 1 {
		t.Fatalf("%d clicks in the database", st.Clicks)
	}
}

// TestClickScannerBurst: a gateway that follows every link of a copy and
// the honeypot is a scanner on every click, also those before the
// honeypot; a curl click is one for its user agent.
func TestClickScannerBurst(t *testing.T) {
	f := newClickFixture(t)
	const chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
	for n := 1; n <= len(clickURLs); n++ {
		f.get("GET", "/c/"+f.links[n], chrome)
	}
	f.get("GET", "/c/"+f.links[0], chrome)
	cs := f.storedClicks()
	if len(cs) != len(clickURLs)+1 {
		t.Fatalf("%d clicks", len(cs))
	}
	for _, c := range cs {
		if !c.Bot || c.BotType != classify.Scanner || c.First {
			t.Errorf("click of a gateway's burst: %+v", c)
		}
	}
	ms, err := f.st.Messages(store.MessageQuery{ID: f.id})
	if err != nil || ms[0].ClicksTotal != 4 || ms[0].ClicksHuman != 0 || ms[0].FirstHumanClick != nil {
		t.Fatalf("message: %+v, %v", ms, err)
	}
}

// TestAPIClicksQueries: /api/clicks takes id, to, since and limit as
// /api/opens does, and refuses bad values naming the parameter.
func TestAPIClicksQueries(t *testing.T) {
	f := newClickFixture(t)
	f.get("GET", "/c/"+f.links[2], uaTB)
	f.wait()
	auth := []string{"Authorization", "Bearer " + f.keys.AdminKey()}
	cases := []struct {
		query string
		code  int
		n     int
	}{
		{"", 200, 1}, {"to=BOB@example.com", 200, 1}, {"to=alice@example.com", 200, 0}, {"since=1h", 200, 1},
		{"since=2999-01-01", 200, 0}, {"limit=1", 200, 1}, {"id=" + strings.ToUpper(f.id), 200, 1},
		{"id=aaaaaaaaaaaaaaaa", 404, 0}, {"id=nope", 400, 0}, {"limit=0", 400, 0}, {"since=yesterday-ish", 400, 0},
	}
	for _, tc := range cases {
		resp, body := f.do("GET", "/api/clicks?"+tc.query, "cli", auth...)
		if resp.StatusCode != tc.code {
			t.Fatalf("%s: %d %s", tc.query, resp.StatusCode, body)
		}
		if tc.code != 200 {
			continue
		}
		var r ClicksResponse
		if err := json.Unmarshal(body, &r); err != nil || len(r.Clicks) != tc.n {
			t.Fatalf("%s: %s (%v)", tc.query, body, err)
		}
	}
	if resp, _ := f.do("GET", "/api/clicks", "cli"); resp.StatusCode != 401 {
		t.Fatalf("/api/clicks without the key: %d", resp.StatusCode)
	}
}

// TestClickCommitFirst: with CommitFirst (PostgreSQL) the redirect is
// sent only after the click is stored: it is there the moment the 302
// arrives.
func TestClickCommitFirst(t *testing.T) {
	f := newClickFixture(t)
	f.srv.opt.CommitFirst, f.srv.enq = true, nil
	resp, _ := f.get("GET", "/c/"+f.links[1], uaTB)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
	cs, err := f.st.Clicks(store.ClickQuery{ID: f.id})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 {
		t.Fatalf("%d clicks stored when the redirect arrived, want 1", len(cs))
	}
}
