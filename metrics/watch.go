package metrics

import "github.com/prometheus/client_golang/prometheus"

// Gauges read at scrape time from the parts that hold the numbers: the
// queue's depth and the store's size are not kept twice.

// QueueDepth is what WatchQueue reads: copies waiting by state ("queued",
// "deferred") and damaged spool entries kept aside.
type QueueDepth struct {
	ByState map[string]int
	Damaged int
}

// StoreStats is what WatchStore reads.
type StoreStats struct {
	SizeBytes   int64
	FreeBytes   int64
	Copies      int
	Opens       int
	OpensHuman  int
	Clicks      int
	ClicksHuman int
}

// WatchQueue adds pixelrelay_queue_copies{state} and
// pixelrelay_queue_damaged, read from depth at each scrape.
func (m *Metrics) WatchQueue(depth func() QueueDepth) {
	if m == nil {
		return
	}
	copies := prometheus.NewDesc("pixelrelay_queue_copies", "Copies waiting in the spool, by state (queued, deferred).", []string{"state"}, nil)
	damaged := prometheus.NewDesc("pixelrelay_queue_damaged", "Damaged spool entries moved aside, waiting for a person.", nil, nil)
	m.reg.MustRegister(&funcCollector{descs: []*prometheus.Desc{copies, damaged}, collect: func(ch chan<- prometheus.Metric) {
		d := depth()
		for _, state := range []string{"queued", "deferred"} {
			ch <- prometheus.MustNewConstMetric(copies, prometheus.GaugeValue, float64(d.ByState[state]), state)
		}
		ch <- prometheus.MustNewConstMetric(damaged, prometheus.GaugeValue, float64(d.Damaged))
	}})
}

// WatchStore adds the database's gauges, read from stats at each scrape
// (a failed read leaves them out of that scrape).
func (m *Metrics) WatchStore(stats func() (StoreStats, error)) {
	if m == nil {
		return
	}
	size := prometheus.NewDesc("pixelrelay_store_size_bytes", "Size of the database file.", nil, nil)
	free := prometheus.NewDesc("pixelrelay_store_free_bytes", "Bytes in free pages of the database file (a purge compacts them away).", nil, nil)
	copies := prometheus.NewDesc("pixelrelay_store_copies", "Copies recorded in the database.", nil, nil)
	opens := prometheus.NewDesc("pixelrelay_store_opens", "Opens stored in the database, by class (human, machine).", []string{"class"}, nil)
	clicks := prometheus.NewDesc("pixelrelay_store_clicks", "Clicks stored in the database, by class (human, machine) as the click rules last judged them.", []string{"class"}, nil)
	m.reg.MustRegister(&funcCollector{descs: []*prometheus.Desc{size, free, copies, opens, clicks}, collect: func(ch chan<- prometheus.Metric) {
		st, err := stats()
		if err != nil {
			return
		}
		ch <- prometheus.MustNewConstMetric(size, prometheus.GaugeValue, float64(st.SizeBytes))
		ch <- prometheus.MustNewConstMetric(free, prometheus.GaugeValue, float64(st.FreeBytes))
		ch <- prometheus.MustNewConstMetric(copies, prometheus.GaugeValue, float64(st.Copies))
		ch <- prometheus.MustNewConstMetric(opens, prometheus.GaugeValue, float64(st.OpensHuman), "human")
		ch <- prometheus.MustNewConstMetric(opens, prometheus.GaugeValue, float64(st.Opens-st.OpensHuman), "machine")
		ch <- prometheus.MustNewConstMetric(clicks, prometheus.GaugeValue, float64(st.ClicksHuman), "human")
		ch <- prometheus.MustNewConstMetric(clicks, prometheus.GaugeValue, float64(st.Clicks-st.ClicksHuman), "machine")
	}})
}

// funcCollector collects through a function, with fixed descriptions.
type funcCollector struct {
	descs   []*prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c *funcCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *funcCollector) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }
