package metrics

import "github.com/prometheus/client_golang/prometheus"

// SentFolderCounts is what WatchSentFolder reads: the Sent folder jobs
// since the process started, and those waiting now.
type SentFolderCounts struct {
	Replaced uint64 // jobs that ended with one clean copy in Sent
	Failed   uint64 // jobs given up after a day of failures
	Retried  uint64 // failed attempts that are tried again
	Pending  int    // jobs waiting now
}

// WatchSentFolder adds pixelrelay_sent_folder_total{result} (replaced,
// failed, retried) and pixelrelay_sent_folder_pending, read from counts
// at each scrape.
func (m *Metrics) WatchSentFolder(counts func() SentFolderCounts) {
	if m == nil {
		return
	}
	total := prometheus.NewDesc("pixelrelay_sent_folder_total",
		"Sent folder jobs done with (replaced, failed after a day) and attempts tried again (retried), by result.", []string{"result"}, nil)
	pending := prometheus.NewDesc("pixelrelay_sent_folder_pending", "Sent folder jobs waiting.", nil, nil)
	m.reg.MustRegister(&funcCollector{descs: []*prometheus.Desc{total, pending}, collect: func(ch chan<- prometheus.Metric) {
		c := counts()
		for result, n := range map[string]uint64{"replaced": c.Replaced, "failed": c.Failed, "retried": c.Retried} {
			ch <- prometheus.MustNewConstMetric(total, prometheus.CounterValue, float64(n), result)
		}
		ch <- prometheus.MustNewConstMetric(pending, prometheus.GaugeValue, float64(c.Pending))
	}})
}
