package metrics

import "github.com/prometheus/client_golang/prometheus"

// WebhookStats is what WatchWebhooks reads for one endpoint.
type WebhookStats struct {
	Name      string // the [[webhooks]] name (the webhook label)
	Backlog   int    // events waiting
	Failures  int    // failed attempts since the last success
	Disabled  bool   // a 410 Gone disabled it
	Delivered uint64 // events answered with a 2xx
	Expired   uint64 // events dropped after 3 days without one
	Dropped   uint64 // events dropped when a 410 disabled it
}

// WatchWebhooks adds, per endpoint, pixelrelay_webhook_backlog,
// pixelrelay_webhook_failures, pixelrelay_webhook_disabled and
// pixelrelay_webhook_events_total{result} (delivered, expired, dropped;
// kept in the database, so they survive restarts), read from stats at
// each scrape (a failed read leaves them out of that scrape).
func (m *Metrics) WatchWebhooks(stats func() ([]WebhookStats, error)) {
	if m == nil {
		return
	}
	label := []string{"webhook"}
	backlog := prometheus.NewDesc("pixelrelay_webhook_backlog", "Events waiting for the webhook endpoint.", label, nil)
	failures := prometheus.NewDesc("pixelrelay_webhook_failures", "Failed attempts of the webhook endpoint since its last success.", label, nil)
	disabled := prometheus.NewDesc("pixelrelay_webhook_disabled", "1 when the webhook endpoint answered 410 Gone and is disabled.", label, nil)
	events := prometheus.NewDesc("pixelrelay_webhook_events_total",
		"Events of the webhook endpoint done with, by result (delivered, expired after 3 days, dropped by a 410).", []string{"webhook", "result"}, nil)
	m.reg.MustRegister(&funcCollector{descs: []*prometheus.Desc{backlog, failures, disabled, events}, collect: func(ch chan<- prometheus.Metric) {
		all, err := stats()
		if err != nil {
			return
		}
		for _, w := range all {
			off := 0.0
			if w.Disabled {
				off = 1
			}
			ch <- prometheus.MustNewConstMetric(backlog, prometheus.GaugeValue, float64(w.Backlog), w.Name)
			ch <- prometheus.MustNewConstMetric(failures, prometheus.GaugeValue, float64(w.Failures), w.Name)
			ch <- prometheus.MustNewConstMetric(disabled, prometheus.GaugeValue, off, w.Name)
			for result, n := range map[string]uint64{"delivered": w.Delivered, "expired": w.Expired, "dropped": w.Dropped} {
				ch <- prometheus.MustNewConstMetric(events, prometheus.CounterValue, float64(n), w.Name, result)
			}
		}
	}})
}
