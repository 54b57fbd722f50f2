package httpd

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"pixelrelay/config"
	"pixelrelay/metrics"
	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
	"pixelrelay/tracker/token"
)

// newMetricsFixture is newRealFixture with metrics wired as serve wires
// them: the server counts forged and HEAD requests, the store the outcomes.
func newMetricsFixture(t *testing.T) (*realFixture, *metrics.Metrics) {
	t.Helper()
	dir := t.TempDir()
	kr, err := token.OpenKeyring(filepath.Join(dir, "secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New("test")
	st, err := store.OpenStore(filepath.Join(dir, "pixelrelay.db"), store.Options{Log: quiet,
		OnHit: func(o store.HitOutcome, h *store.Hit) { m.Pixel(o.String(), "human") },
		OnClick: func(o store.HitOutcome, h *store.ClickHit) {
			m.Click(o.String(), metrics.ClickClass(h.Link, h.Bot, h.BotType))
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &realFixture{t: t, st: st, keys: kr}
	cfg := config.Default()
	cfg.DataDir = dir
	f.cfg.Store(cfg)
	f.srv = New(Options{Config: f.cfg.Load, Store: st, Keys: kr, Version: "test", Log: quiet, Metrics: m})
	f.srv.pixelDone = func() { f.handled.Add(1) }
	f.ts = httptest.NewServer(f.srv.Handler())
	t.Cleanup(f.ts.Close)
	return f, m
}

func TestMetricsRoute(t *testing.T) {
	f, m := newMetricsFixture(t)
	_, tok := f.sent("bob@example.com")
	f.do("GET", "/o/"+tok+".gif", uaTB)
	f.do("GET", "/o/"+tok+".gif", uaTB) // duplicate
	f.do("HEAD", "/o/"+tok+".gif", uaTB)
	f.do("GET", "/o/"+strings.Repeat("a", 48)+".gif", uaTB)
	f.settle()

	key := "Bearer " + f.keys.AdminKey()
	tests := []struct {
		name   string
		method string
		path   string
		hdr    []string
		code   int
	}{
		{"no key", "GET", "/metrics", nil, 401},
		{"wrong key", "GET", "/metrics", []string{"Authorization", "Bearer nope"}, 401},
		{"key in the URL", "GET", "/metrics?key=" + f.keys.AdminKey(), []string{"Authorization", key}, 401},
		{"POST", "POST", "/metrics", []string{"Authorization", key}, 405},
		{"key", "GET", "/metrics", []string{"Authorization", key}, 200},
	}
	for _, tt := range tests {
		resp, body := f.do(tt.method, tt.path, "prometheus", tt.hdr...)
		if resp.StatusCode != tt.code {
			t.Errorf("%s: %d %s, want %d", tt.name, resp.StatusCode, body, tt.code)
		}
		if tt.code == 200 {
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type %q", ct)
			}
			if strings.Contains(string(body), "bob@example.com") || strings.Contains(string(body), tok) {
				t.Error("/metrics shows a recipient or a token")
			}
		}
	}
	for _, c := range []struct {
		outcome string
		want    float64
	}{{"stored", 1}, {"duplicate", 1}, {"head", 1}, {"forged", 1}} {
		if got, _ := m.Value("pixelrelay_pixel_requests_total", "outcome", c.outcome); got != c.want {
			t.Errorf("pixel %s = %v, want %v", c.outcome, got, c.want)
		}
	}
}

// TestNoMetricsNoRoute: a server without metrics has no /metrics.
func TestNoMetricsNoRoute(t *testing.T) {
	f := newRealFixture(t, nil)
	resp, _ := f.do("GET", "/metrics", "x", "Authorization", "Bearer "+f.keys.AdminKey())
	if resp.StatusCode != 404 {
		t.Errorf("/metrics without metrics: %d", resp.StatusCode)
	}
}

// TestClickMetrics: every request of a click URL is counted once, by what
// became of it: stored by class (a person's, a scanner's, the honeypot's),
// duplicate, limited, HEAD, forged, unknown link; no label names a
// recipient, token or URL.
func TestClickMetrics(t *testing.T) {
	f, m := newMetricsFixture(t)
	var handled atomic.Int64
	f.srv.clickDone = func() { handled.Add(1) }
	id, tok, err := f.keys.Mint()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := f.st.Add([]record.Copy{{TrackingID: id, QueueID: "q1", Recipient: "bob@example.com", Subject: "Hello",
		QueuedAt: now.Add(-time.Hour), Links: clickURLs}}); err != nil {
		t.Fatal(err)
	}
	if err := f.st.Update(id, record.StatusSent, "", now.Add(-50*time.Minute)); err != nil {
		t.Fatal(err)
	}
	links, err := f.keys.LinkTokens(tok, len(clickURLs)+1) // the last one names a link the copy lacks
	if err != nil {
		t.Fatal(err)
	}
	f.st.SetLimits(time.Hour, 4)
	reqs := []struct{ method, path, ua string }{
		{"GET", "/c/" + links[1], uaTB},
		{"GET", "/c/" + links[1], uaTB}, // duplicate
		{"HEAD", "/c/" + links[2], uaTB},
		{"GET", "/c/" + links[3], "curl/8.5.0"}, // a machine
		{"GET", "/c/" + links[0], uaTB},         // the honeypot
		{"GET", "/c/" + links[2], "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"},
		{"GET", "/c/" + links[3], "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"}, // over the limit of 4
		{"GET", "/c/" + links[len(links)-1], uaTB},                                 // unknown link
		{"GET", "/c/" + strings.Repeat("a", len(links[1])), uaTB},                  // forged
		{"GET", "/c/" + links[1] + "x", uaTB},                                      // damaged
	}
	noFollow := *f.ts.Client()
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, r := range reqs {
		req, _ := http.NewRequest(r.method, f.ts.URL+r.path, nil)
		req.Header.Set("User-Agent", r.ua)
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for handled.Load() < int64(len(reqs)) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := f.st.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"outcome", "stored", "class", "human"}, 2},
		{[]string{"outcome", "stored", "class", "honeypot"}, 1},
		{[]string{"outcome", "stored"}, 4},
		{[]string{"outcome", "duplicate"}, 1},
		{[]string{"outcome", "limited"}, 1},
		{[]string{"outcome", "head"}, 1},
		{[]string{"outcome", "unknown"}, 1},
		{[]string{"outcome", "forged"}, 2},
		{nil, float64(len(reqs))},
	} {
		if got, _ := m.Value("pixelrelay_click_requests_total", c.labels...); got != c.want {
			t.Errorf("click requests %v = %v, want %v", c.labels, got, c.want)
		}
	}
	_, body := f.do("GET", "/metrics", "prometheus", "Authorization", "Bearer "+f.keys.AdminKey())
	for _, secret := range append([]string{"bob@example.com", tok, "shop.example.com"}, links...) {
		if strings.Contains(string(body), secret) {
			t.Errorf("/metrics shows %q", secret)
		}
	}
}
