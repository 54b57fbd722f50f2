package httpd

import (
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"pixelrelay/config"
	"pixelrelay/metrics"
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
		OnHit: func(o store.HitOutcome, h *store.Hit) { m.Pixel(o.String(), "human") }})
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
