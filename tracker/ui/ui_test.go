package ui

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fixture is the dashboard over real HTTP with a real store.
type fixture struct {
	t   *testing.T
	h   *Handler
	st  *store.Store
	ts  *httptest.Server
	clk *clock
	hc  *http.Client
}

const adminKey = "the-admin-key"

func newFixture(t *testing.T) *fixture {
	t.Helper()
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	st, err := store.OpenStore(filepath.Join(t.TempDir(), "db"), store.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := New(Options{Store: st, AdminKey: func() string { return adminKey }, Log: quiet, Now: clk.now,
		Status: func() (Status, error) {
			return Status{Version: "test", SMTPListen: "127.0.0.1:2525", Database: store.Stats{SizeBytes: 1 << 20, Clicks: 12, ClicksHuman: 5},
				Webhooks: []Webhook{{Name: "crm", URL: "https://crm.example/hook", State: "retrying", Backlog: 2, LastError: "503 Service Unavailable"}}}, nil
		},
		Queue: func() []record.QueueEntry {
			return []record.QueueEntry{{QueueID: "q1", TrackingID: "aaaaaaaaaaaaaaaa", Recipients: []string{"slow@example.com"},
				Status: record.StatusDeferred, Attempts: 3, LastError: "451 4.7.1 over quota", Account: "work"}}
		}})
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	t.Cleanup(h.Close)
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &fixture{t: t, h: h, st: st, ts: ts, clk: clk, hc: hc}
}

func (f *fixture) get(path string, hdr ...string) (*http.Response, string) {
	f.t.Helper()
	req, _ := http.NewRequest("GET", f.ts.URL+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return f.do(req)
}

func (f *fixture) do(req *http.Request) (*http.Response, string) {
	f.t.Helper()
	resp, err := f.hc.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (f *fixture) post(path, form string, hdr ...string) (*http.Response, string) {
	f.t.Helper()
	req, _ := http.NewRequest("POST", f.ts.URL+path, strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return f.do(req)
}

// signIn uses a one-time link and returns the session cookie header.
func (f *fixture) signIn() string {
	f.t.Helper()
	tok, _ := f.h.MintLogin()
	resp, _ := f.get("/ui/login?token=" + url.QueryEscape(tok))
	if resp.StatusCode != 200 {
		f.t.Fatalf("sign-in link: %d", resp.StatusCode)
	}
	for _, c := range resp.Cookies() {
		if c.Name == CookieName {
			return c.Name + "=" + c.Value
		}
	}
	f.t.Fatal("no session cookie")
	return ""
}

// testLinks are the links of every copy addCopies records.
var testLinks = []string{"https://shop.example/spring-sale?utm=mail&id=7", "https://docs.example/guide"}

// click stores a click on link n of copy id (0: the honeypot).
func (f *fixture) click(id string, n int, ip, ua string, bot bool) {
	f.t.Helper()
	h := store.ClickHit{TrackingID: id, Link: n, At: f.clk.now(), IP: ip, UserAgent: ua, Reason: "no machine sign"}
	if bot {
		h.Bot, h.BotType, h.Reason = true, "scanner", "network: Microsoft Exchange Online Protection 40.107.0.0/16"
	}
	if ok, err := f.st.RecordClick(h); err != nil || !ok {
		f.t.Fatalf("click on %s link %d: stored %v, %v", id, n, ok, err)
	}
}

func (f *fixture) addCopies(n int) []string {
	f.t.Helper()
	var ids []string
	var cs []record.Copy
	for i := range n {
		id := fmt.Sprintf("%016d", i)
		id = strings.NewReplacer("0", "a", "1", "b", "2", "c", "3", "d", "4", "e", "5", "f", "6", "g", "7", "h", "8", "i", "9", "j").Replace(id)
		ids = append(ids, id)
		cs = append(cs, record.Copy{TrackingID: id, Recipient: fmt.Sprintf("user%d@example.com", i), From: "me@example.com",
			Subject: fmt.Sprintf("Hello %d", i), QueuedAt: f.clk.now().Add(time.Duration(i-n) * time.Minute), Links: testLinks})
	}
	if err := f.st.Add(cs); err != nil {
		f.t.Fatal(err)
	}
	return ids
}

func TestLoginLinkWorksOnceWithinItsLifetime(t *testing.T) {
	f := newFixture(t)
	tok, exp := f.h.MintLogin()
	if got := exp.Sub(f.clk.now()); got != LoginTTL {
		t.Errorf("link lifetime %v, want %v", got, LoginTTL)
	}
	resp, body := f.get("/ui/login?token=" + tok)
	if resp.StatusCode != 200 || !strings.Contains(body, `http-equiv="refresh" content="0;url=/ui/"`) {
		t.Fatalf("first use: %d\n%s", resp.StatusCode, body)
	}
	cookie := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/ui/", "Max-Age="} {
		if !strings.Contains(cookie, want) {
			t.Errorf("cookie %q lacks %s", cookie, want)
		}
	}
	if resp, body := f.get("/ui/login?token=" + tok); resp.StatusCode != 401 || !strings.Contains(body, "expired or was already used") {
		t.Errorf("second use: %d", resp.StatusCode)
	}
	late, _ := f.h.MintLogin()
	f.clk.add(LoginTTL)
	if resp, _ := f.get("/ui/login?token=" + late); resp.StatusCode != 401 {
		t.Errorf("a link used %v after it was made: %d, want 401", LoginTTL, resp.StatusCode)
	}
	if resp, _ := f.get("/ui/login?token=" + strings.Repeat("x", 43)); resp.StatusCode != 401 {
		t.Errorf("a made-up link: %d", resp.StatusCode)
	}
}

func TestLoginWithTheAdminKey(t *testing.T) {
	f := newFixture(t)
	resp, body := f.post("/ui/login", "key=wrong")
	if resp.StatusCode != 401 || !strings.Contains(body, "not the admin key") || resp.Header.Get("Set-Cookie") != "" {
		t.Errorf("wrong key: %d %q", resp.StatusCode, resp.Header.Get("Set-Cookie"))
	}
	resp, _ = f.post("/ui/login", "key="+adminKey)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" || !strings.Contains(resp.Header.Get("Set-Cookie"), CookieName) {
		t.Errorf("right key: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for range maxFailures {
		f.post("/ui/login", "key=guess")
	}
	if resp, _ := f.post("/ui/login", "key="+adminKey); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("after %d wrong keys in a minute: %d, want 429", maxFailures+1, resp.StatusCode)
	}
	f.clk.add(time.Minute)
	if resp, _ := f.post("/ui/login", "key="+adminKey); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("a minute later: %d", resp.StatusCode)
	}
	// A form posted from another site is refused before the key is looked at.
	if resp, _ := f.post("/ui/login", "key="+adminKey, "Sec-Fetch-Site", "cross-site"); resp.StatusCode != 403 {
		t.Errorf("cross-site sign-in: %d, want 403", resp.StatusCode)
	}
}

func TestPagesNeedASession(t *testing.T) {
	f := newFixture(t)
	for _, p := range []string{"/ui/", "/ui/activity", "/ui/queue", "/ui/status", "/ui/m/aaaaaaaaaaaaaaaa", "/ui/nope"} {
		resp, _ := f.get(p)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login" {
			t.Errorf("%s: %d %q, want a redirect to sign in", p, resp.StatusCode, resp.Header.Get("Location"))
		}
		if resp, _ := f.get(p, "X-Partial", "1"); resp.StatusCode != 401 {
			t.Errorf("%s from the page's script: %d, want 401", p, resp.StatusCode)
		}
		if resp, _ := f.get(p, "Cookie", CookieName+"=forged"); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("%s with a forged cookie: %d", p, resp.StatusCode)
		}
	}
	if resp, _ := f.get("/ui/events"); resp.StatusCode != 401 {
		t.Errorf("events without a session: %d", resp.StatusCode)
	}
	cookie := f.signIn()
	f.clk.add(SessionTTL)
	if resp, _ := f.get("/ui/", "Cookie", cookie); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("a session %v old: %d, want a redirect to sign in", SessionTTL, resp.StatusCode)
	}
}

func TestPages(t *testing.T) {
	f := newFixture(t)
	ids := f.addCopies(3)
	if err := f.st.Update(ids[0], record.StatusDeferred, "451 4.3.0 try later", f.clk.now()); err != nil {
		t.Fatal(err)
	}
	if err := f.st.Update(ids[0], record.StatusSent, "", f.clk.now()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Record(store.Hit{TrackingID: ids[0], At: f.clk.now(), IP: "10.0.0.1", UserAgent: "Thunderbird"}); err != nil {
		t.Fatal(err)
	}
	cookie := f.signIn()
	tests := []struct {
		path string
		code int
		want []string
	}{
		{"/ui/", 200, []string{"user0@example.com", "user2@example.com", "Opened", "1 retrying"}},
		{"/ui/?f=opened", 200, []string{"user0@example.com"}},
		{"/ui/?q=user2", 200, []string{"user2@example.com", "Recipients starting with"}},
		{"/ui/?q=hello+1", 200, []string{"user1@example.com", "containing"}},
		{"/ui/m/" + ids[0], 200, []string{"Hello 0", "Delivery attempt failed; will retry", "451 4.3.0 try later", "Delivered to the upstream", "Opened by a person (first time)"}},
		{"/ui/m/" + strings.ToUpper(ids[1]), 200, []string{"Hello 1", "Accepted from the mail client"}},
		{"/ui/m/zzzzzzzzzzzzzzzz", 404, []string{"no copy with tracking id"}},
		{"/ui/m/../../etc/passwd", 404, []string{"no copy"}},
		{"/ui/m/not-an-id", 404, []string{"not a tracking id"}},
		{"/ui/activity?range=24h", 200, []string{"Opens over time", "rect class=\"human\"", "user0@example.com"}},
		{"/ui/queue", 200, []string{"slow@example.com", "451 4.7.1 over quota", `via <span class="acct">work</span>`}},
		{"/ui/status", 200, []string{"127.0.0.1:2525", "1.0 MB", "12 (5 by people)", "crm", "Retrying", "2 events wait", "503 Service Unavailable"}},
		{"/ui/?f=everything", 400, []string{"f: want"}},
		{"/ui/?in=sideways&q=x", 400, []string{"in: want"}},
		{"/ui/?f=unopened&days=-1", 400, []string{"days: want"}},
		{"/ui/?before=garbage", 400, []string{"before: not a position"}},
		{"/ui/?q=" + strings.Repeat("a", 201), 400, []string{"q: at most 200"}},
		{"/ui/activity?range=1y", 400, []string{"range: want"}},
		{"/ui/nope", 404, []string{"no such page"}},
	}
	for _, tt := range tests {
		resp, body := f.get(tt.path, "Cookie", cookie)
		if resp.StatusCode != tt.code {
			t.Errorf("%s: %d, want %d\n%s", tt.path, resp.StatusCode, tt.code, body)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s does not show %q", tt.path, w)
			}
		}
		if csp := resp.Header.Get("Content-Security-Policy"); csp != contentSecurityPolicy {
			t.Errorf("%s: CSP %q", tt.path, csp)
		}
		if strings.Contains(body, "style=") || strings.Contains(body, "<script>") || strings.Contains(body, " on") && strings.Contains(body, "onclick") {
			t.Errorf("%s has inline style or script, which the CSP blocks", tt.path)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q", tt.path, cc)
		}
	}
	// The page's script asks for just the <main>.
	resp, body := f.get("/ui/", "Cookie", cookie, "X-Partial", "1")
	if resp.StatusCode != 200 || strings.Contains(body, "<html") || !strings.Contains(body, "user1@example.com") {
		t.Errorf("partial: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := f.post("/ui/", "", "Cookie", cookie); resp.StatusCode != 405 {
		t.Errorf("POST to a page: %d", resp.StatusCode)
	}
}

// TestClickPages: clicks show on every page: the badge, the counts and
// the filter of the list, each click in its copy's timeline (person or
// machine, the rule, the link), and the chart and feed of the activity.
func TestClickPages(t *testing.T) {
	f := newFixture(t)
	ids := f.addCopies(3)
	for _, id := range ids {
		if err := f.st.Update(id, record.StatusSent, "", f.clk.now()); err != nil {
			t.Fatal(err)
		}
	}
	f.clk.add(time.Hour)
	f.click(ids[1], 1, "203.0.113.9", "Mozilla/5.0 (Macintosh) Safari/605.1.15", false)
	f.click(ids[2], 2, "40.107.1.2", "Mozilla/5.0 Chrome/109.0", true)
	f.click(ids[2], 0, "40.107.1.2", "Mozilla/5.0 Chrome/109.0", false)
	cookie := f.signIn()
	tests := []struct {
		path      string
		want, not []string
	}{
		{"/ui/", []string{`class="badge clicked"`, "Clicked <time", "1 click<", "2 machine clicks", "clicks by people"}, nil},
		{"/ui/?f=clicked", []string{"user1@example.com", `aria-current="page">Clicked<`}, []string{"user2@example.com", "user0@example.com"}},
		{"/ui/m/" + ids[1], []string{"Clicked by a person (first time)", "https://shop.example/spring-sale?utm=mail&amp;id=7", "no machine sign",
			"203.0.113.9", "1 by a person, 0 by machines; first by a person"}, []string{"Machine click"}},
		{"/ui/m/" + ids[2], []string{"Machine click: security scanner", "https://docs.example/guide", "Exchange Online Protection",
			"Machine fetched the hidden trap link", "honeypot: fetched the hidden link"}, []string{"Clicked by a person"}},
		{"/ui/m/" + ids[0], nil, []string{"Clicks</dt>", "click"}},
		{"/ui/activity?range=24h", []string{"Opens and clicks over time", `rect class="click-human"`, `rect class="click-machine"`,
			"1 click by people, 2 clicks by machines", "Latest clicks", "the hidden trap link", "spring-sale"}, nil},
	}
	for _, tt := range tests {
		resp, body := f.get(tt.path, "Cookie", cookie)
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d\n%s", tt.path, resp.StatusCode, body)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s does not show %q", tt.path, w)
			}
		}
		for _, w := range tt.not {
			if strings.Contains(body, w) {
				t.Errorf("%s shows %q", tt.path, w)
			}
		}
	}
}

func TestListPaging(t *testing.T) {
	f := newFixture(t)
	f.addCopies(listPageSize + 7)
	cookie := f.signIn()
	_, body := f.get("/ui/", "Cookie", cookie)
	if n := strings.Count(body, "<tr data-id="); n != listPageSize {
		t.Fatalf("first page: %d rows", n)
	}
	i := strings.Index(body, `rel="next"`)
	j := strings.LastIndex(body[:i], `href="`)
	next := strings.ReplaceAll(body[j+6:i-2], "&amp;", "&")
	_, body = f.get(next, "Cookie", cookie)
	if n := strings.Count(body, "<tr data-id="); n != 7 || strings.Contains(body, `rel="next"`) || !strings.Contains(body, "user0@example.com") {
		t.Errorf("second page (%s): %d rows", next, n)
	}
}

func TestLogout(t *testing.T) {
	f := newFixture(t)
	cookie := f.signIn()
	sess, ok := f.h.sess.get(strings.TrimPrefix(cookie, CookieName+"="))
	if !ok {
		t.Fatal("no session")
	}
	if resp, _ := f.post("/ui/logout", "csrf=wrong", "Cookie", cookie); resp.StatusCode != 403 {
		t.Errorf("logout with a wrong CSRF token: %d", resp.StatusCode)
	}
	if resp, _ := f.post("/ui/logout", "csrf="+sess.csrf, "Cookie", cookie, "Sec-Fetch-Site", "cross-site"); resp.StatusCode != 403 {
		t.Errorf("cross-site logout: %d", resp.StatusCode)
	}
	if resp, _ := f.get("/ui/logout", "Cookie", cookie); resp.StatusCode != 405 {
		t.Errorf("GET logout: %d", resp.StatusCode)
	}
	resp, _ := f.post("/ui/logout", "csrf="+sess.csrf, "Cookie", cookie)
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("logout: %d %q", resp.StatusCode, resp.Header.Get("Set-Cookie"))
	}
	if resp, _ := f.get("/ui/", "Cookie", cookie); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the old cookie after logout: %d", resp.StatusCode)
	}
}

// TestEventsStream: a stored open and a stored click reach a signed-in
// stream; Close ends it.
func TestEventsStream(t *testing.T) {
	f := newFixture(t)
	ids := f.addCopies(1)
	cookie := f.signIn()
	req, _ := http.NewRequest("GET", f.ts.URL+"/ui/events", nil)
	req.Header.Set("Cookie", cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("events: %d %q", resp.StatusCode, ct)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	waitLine := func(prefix string) string {
		timeout := time.After(5 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("stream ended before %q", prefix)
				}
				if strings.HasPrefix(l, prefix) {
					return l
				}
			case <-timeout:
				t.Fatalf("no %q line within 5s", prefix)
			}
		}
	}
	waitLine(": live")
	if _, err := f.st.Record(store.Hit{TrackingID: ids[0], At: f.clk.now(), IP: "10.0.0.1", UserAgent: "x"}); err != nil {
		t.Fatal(err)
	}
	waitLine("event: change")
	data := waitLine("data: ")
	if !strings.Contains(data, `"kind":"open"`) || !strings.Contains(data, ids[0]) {
		t.Errorf("change = %s", data)
	}
	f.click(ids[0], 1, "10.0.0.2", "y", false)
	waitLine("event: change")
	if data := waitLine("data: "); !strings.Contains(data, `"kind":"click"`) || !strings.Contains(data, ids[0]) {
		t.Errorf("change = %s", data)
	}
	f.h.Close()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-lines:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("the stream did not end after Close")
		}
	}
}

func TestStaticFiles(t *testing.T) {
	f := newFixture(t)
	for name, a := range assets {
		resp, body := f.get("/ui/static/" + name + "?v=" + a.hash)
		if resp.StatusCode != 200 || body != string(a.body) || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
			t.Errorf("%s: %d %q", name, resp.StatusCode, resp.Header.Get("Cache-Control"))
		}
		if resp.Header.Get("Content-Type") == "" {
			t.Errorf("%s has no Content-Type", name)
		}
		if resp, _ := f.get("/ui/static/"+name, "If-None-Match", `"`+a.hash+`"`); resp.StatusCode != 304 {
			t.Errorf("%s revalidated: %d", name, resp.StatusCode)
		}
		if resp, _ := f.get("/ui/static/" + name + "?v=old"); resp.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("%s with an old version: %q", name, resp.Header.Get("Cache-Control"))
		}
	}
	for _, p := range []string{"/ui/static/", "/ui/static/../ui.go", "/ui/static/templates/layout.html", "/ui/static/app.css/x"} {
		if resp, _ := f.get(p); resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", p, resp.StatusCode)
		}
	}
	for _, want := range []string{"app.css", "app.js", "icon.svg"} {
		if _, ok := assets[want]; !ok {
			t.Errorf("%s is not embedded", want)
		}
	}
}

func TestTablesAreBounded(t *testing.T) {
	s := newSessions(time.Now)
	for range maxSessions + 50 {
		s.start()
	}
	for range maxLogins + 50 {
		s.mintLogin()
	}
	if len(s.live) > maxSessions || len(s.logins) > maxLogins {
		t.Errorf("%d sessions, %d links kept; bounds %d and %d", len(s.live), len(s.logins), maxSessions, maxLogins)
	}
}

func TestBucketStartsFollowTheViewersDays(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	// The week that holds the end of summer time (25 Oct 2026, 03:00 -> 02:00).
	now := time.Date(2026, 10, 27, 15, 30, 0, 0, berlin)
	starts := bucketStarts(now, ranges[1])
	if len(starts) != 8 || !starts[0].Equal(time.Date(2026, 10, 21, 0, 0, 0, 0, berlin)) || !starts[7].Equal(time.Date(2026, 10, 28, 0, 0, 0, 0, berlin)) {
		t.Fatalf("starts = %v", starts)
	}
	if d := starts[5].Sub(starts[4]); d != 25*time.Hour {
		t.Errorf("the day summer time ends is %v long, want 25h", d)
	}
	hours := []store.Activity{
		{Start: time.Date(2026, 10, 20, 23, 0, 0, 0, time.UTC), OpensHuman: 100},               // 21 Oct 01:00 Berlin: first day
		{Start: time.Date(2026, 10, 20, 21, 0, 0, 0, time.UTC), OpensHuman: 1000},              // 20 Oct 23:00 Berlin: before the range
		{Start: time.Date(2026, 10, 24, 22, 0, 0, 0, time.UTC), OpensMachine: 5},               // 25 Oct 00:00 Berlin
		{Start: time.Date(2026, 10, 27, 14, 0, 0, 0, time.UTC), OpensHuman: 2, ClicksHuman: 1}, // today
		{Start: time.Date(2026, 10, 27, 23, 0, 0, 0, time.UTC), OpensHuman: 7},                 // tomorrow: after
	}
	var total store.Activity
	sums := bucketize(sortedByStart(hours), starts, &total)
	if sums[0].OpensHuman != 100 || sums[4].OpensMachine != 5 || sums[6].OpensHuman != 2 || total.OpensHuman != 102 || total.ClicksHuman != 1 {
		t.Errorf("sums = %+v, total %+v", sums, total)
	}
}

func sortedByStart(a []store.Activity) []store.Activity {
	out := append([]store.Activity(nil), a...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j].Start.Before(out[i].Start) {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestNiceCeil(t *testing.T) {
	for _, tt := range []struct{ n, want int }{{0, 4}, {3, 4}, {5, 8}, {9, 12}, {13, 16}, {17, 20}, {21, 24}, {33, 40}, {41, 48}, {101, 120}, {999, 1000}, {1001, 1200}} {
		if got := niceCeil(tt.n); got != tt.want || got%4 != 0 || got < tt.n {
			t.Errorf("niceCeil(%d) = %d, want %d", tt.n, got, tt.want)
		}
	}
}

func TestRelative(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	defer func(f func() time.Time) { nowFunc = f }(nowFunc)
	nowFunc = func() time.Time { return now }
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{{0, "just now"}, {59 * time.Second, "just now"}, {5 * time.Minute, "5 min ago"}, {2 * time.Hour, "2 h ago"},
		{47 * time.Hour, "47 h ago"}, {3 * 24 * time.Hour, "3 days ago"}, {60 * 24 * time.Hour, "9 Jan 2026"}, {-2 * time.Hour, "in 2 h"}} {
		if got := relative(now.Add(-tt.d)); got != tt.want {
			t.Errorf("relative(-%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func FuzzListParams(f *testing.F) {
	for _, s := range []string{"", "f=opened", "f=unopened&days=3&q=bob&in=rcpt", "before=123-abc&q=x", "days=99999", "q=%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		p, bad := parseListParams(v)
		if bad != "" {
			return
		}
		// What the page links to reads back as the same parameters.
		u, err := url.Parse(p.url())
		if err != nil {
			t.Fatalf("url() = %q: %v", p.url(), err)
		}
		q, bad := parseListParams(u.Query())
		if bad != "" || q.filter != p.filter || q.q != p.q || q.in != p.in ||
			(p.filter == store.FilterUnopened && q.days != p.days) || (q.before == nil) != (p.before == nil) ||
			p.before != nil && *q.before != *p.before {
			t.Fatalf("%q -> %+v -> %q -> %+v (%s)", raw, p, p.url(), q, bad)
		}
	})
}
