package metrics

import (
	"errors"
	"testing"
)

func TestWatchWebhooks(t *testing.T) {
	m := New("1")
	fail := false
	m.WatchWebhooks(func() ([]WebhookStats, error) {
		if fail {
			return nil, errors.New("store closed")
		}
		return []WebhookStats{
			{Name: "crm", Backlog: 3, Failures: 2, Delivered: 40, Expired: 1},
			{Name: "sheet", Disabled: true, Dropped: 7},
		}, nil
	})
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"pixelrelay_webhook_backlog", []string{"webhook", "crm"}, 3},
		{"pixelrelay_webhook_failures", []string{"webhook", "crm"}, 2},
		{"pixelrelay_webhook_disabled", []string{"webhook", "crm"}, 0},
		{"pixelrelay_webhook_disabled", []string{"webhook", "sheet"}, 1},
		{"pixelrelay_webhook_events_total", []string{"webhook", "crm", "result", "delivered"}, 40},
		{"pixelrelay_webhook_events_total", []string{"webhook", "crm", "result", "expired"}, 1},
		{"pixelrelay_webhook_events_total", []string{"webhook", "sheet", "result", "dropped"}, 7},
	} {
		got, err := m.Value(tt.name, tt.labels...)
		if err != nil || got != tt.want {
			t.Errorf("%s %v = %v, %v; want %v", tt.name, tt.labels, got, err, tt.want)
		}
	}
	fail = true
	if got, _ := m.Value("pixelrelay_webhook_backlog", "webhook", "crm"); got != 0 {
		t.Errorf("a failed read still exposed a backlog of %v", got)
	}
	var none *Metrics
	none.WatchWebhooks(nil) // a nil *Metrics records nothing
}
