package metrics

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestCountsAndExposition(t *testing.T) {
	m := New("1.2.3")
	m.SMTPSession()
	m.SMTPSession()
	m.SMTPMessage(250)
	m.SMTPMessage(552)
	m.SMTPRefused("rcpt", 501)
	m.Delivery("sent", "", 120*time.Millisecond)
	m.Delivery("deferred", "work", 3*time.Second)
	for range 3 {
		m.Pixel("stored", "human")
	}
	m.Pixel("duplicate", "apple_mpp")
	m.PixelForged()
	m.PixelHead()
	m.Click("stored", ClickClass(1, false, ""))
	m.Click("stored", ClickClass(0, true, "scanner"))
	m.Click("limited", ClickClass(2, true, ""))
	m.ClickForged()
	m.ClickHead()
	m.Purge(42, 9, nil)
	m.Purge(0, 0, errors.New("disk"))
	m.WatchQueue(func() QueueDepth { return QueueDepth{ByState: map[string]int{"deferred": 2}, Damaged: 1} })
	m.WatchStore(func() (StoreStats, error) {
		return StoreStats{SizeBytes: 4096, Copies: 5, Opens: 7, OpensHuman: 3, Clicks: 6, ClicksHuman: 1}, nil
	})

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("not the Prometheus text format: %v\n%s", err, body)
	}
	for name := range families {
		if !strings.HasPrefix(name, "pixelrelay_") {
			t.Errorf("metric %s is not named pixelrelay_*", name)
		}
	}
	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"pixelrelay_build_info", []string{"version", "1.2.3"}, 1},
		{"pixelrelay_smtp_sessions_total", nil, 2},
		{"pixelrelay_smtp_messages_total", []string{"result", "accepted", "code", "250"}, 1},
		{"pixelrelay_smtp_messages_total", []string{"result", "refused", "code", "552"}, 1},
		{"pixelrelay_smtp_commands_refused_total", []string{"command", "rcpt", "code", "501"}, 1},
		{"pixelrelay_deliveries_total", []string{"result", "sent", "account", "default"}, 1},
		{"pixelrelay_deliveries_total", []string{"result", "deferred", "account", "work"}, 1},
		{"pixelrelay_pixel_requests_total", []string{"outcome", "stored", "class", "human"}, 3},
		{"pixelrelay_pixel_requests_total", []string{"outcome", "duplicate", "class", "apple_mpp"}, 1},
		{"pixelrelay_pixel_requests_total", []string{"outcome", "forged"}, 1},
		{"pixelrelay_pixel_requests_total", []string{"outcome", "head"}, 1},
		{"pixelrelay_purge_runs_total", []string{"result", "ok"}, 1},
		{"pixelrelay_purge_runs_total", []string{"result", "error"}, 1},
		{"pixelrelay_purge_deleted_opens_total", nil, 42},
		{"pixelrelay_purge_deleted_clicks_total", nil, 9},
		{"pixelrelay_click_requests_total", []string{"outcome", "stored", "class", "human"}, 1},
		{"pixelrelay_click_requests_total", []string{"outcome", "stored", "class", "honeypot"}, 1},
		{"pixelrelay_click_requests_total", []string{"outcome", "limited", "class", "machine"}, 1},
		{"pixelrelay_click_requests_total", []string{"outcome", "forged"}, 1},
		{"pixelrelay_click_requests_total", []string{"outcome", "head"}, 1},
		{"pixelrelay_store_clicks", []string{"class", "human"}, 1},
		{"pixelrelay_store_clicks", []string{"class", "machine"}, 5},
		{"pixelrelay_queue_copies", []string{"state", "deferred"}, 2},
		{"pixelrelay_queue_copies", []string{"state", "queued"}, 0},
		{"pixelrelay_queue_damaged", nil, 1},
		{"pixelrelay_store_size_bytes", nil, 4096},
		{"pixelrelay_store_opens", []string{"class", "machine"}, 4},
	}
	for _, tt := range tests {
		got, err := m.Value(tt.name, tt.labels...)
		if err != nil || got != tt.want {
			t.Errorf("%s %v = %v (%v), want %v", tt.name, tt.labels, got, err, tt.want)
		}
		if _, ok := families[tt.name]; !ok {
			t.Errorf("%s missing from the exposition", tt.name)
		}
	}
	h := families["pixelrelay_upstream_seconds"]
	if h == nil || len(h.GetMetric()) != 2 || h.GetMetric()[0].GetHistogram().GetSampleCount() != 1 {
		t.Errorf("upstream histogram = %v", h)
	}
}

// TestNilRecordsNothing: every method of a nil *Metrics is a no-op, so
// parts built without metrics (tests, tools) need no checks.
func TestNilRecordsNothing(t *testing.T) {
	var m *Metrics
	m.SMTPSession()
	m.SMTPMessage(250)
	m.SMTPRefused("mail", 530)
	m.Delivery("sent", "", time.Second)
	m.Pixel("stored", "human")
	m.PixelForged()
	m.PixelHead()
	m.Purge(1, 0, nil)
	m.WatchQueue(nil)
	m.WatchStore(nil)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 404 {
		t.Errorf("nil metrics handler answered %d", rec.Code)
	}
}

// TestStoreReadErrorLeavesGaugesOut: a failed store read drops the store
// gauges from that scrape instead of failing it.
func TestStoreReadErrorLeavesGaugesOut(t *testing.T) {
	m := New("x")
	m.WatchStore(func() (StoreStats, error) { return StoreStats{}, errors.New("closed") })
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != 200 || strings.Contains(string(body), "pixelrelay_store_size_bytes ") || !strings.Contains(string(body), "pixelrelay_build_info") {
		t.Errorf("scrape = %d\n%s", rec.Code, body)
	}
}

func BenchmarkPixel(b *testing.B) {
	m := New("x")
	b.ReportAllocs()
	for b.Loop() {
		m.Pixel("stored", "human")
	}
}
