package cli

import (
	"pixelrelay/metrics"
	"pixelrelay/relay/queue"
	"pixelrelay/tracker/store"
)

// hitClass is the class label of a pixel hit.
func hitClass(h *store.Hit) string { return metrics.Class(h.Bot, h.BotType) }

// clickClass is the class label of a click.
func clickClass(h *store.ClickHit) string { return metrics.ClickClass(h.Link, h.Bot, h.BotType) }

// watchMetrics lets the metrics read the queue's depth and the store's
// size at each scrape.
func watchMetrics(m *metrics.Metrics, q *queue.Queue, st store.DB) {
	m.WatchQueue(func() metrics.QueueDepth {
		d := metrics.QueueDepth{ByState: map[string]int{}, Damaged: q.Damaged()}
		for _, e := range q.Entries() {
			d.ByState[e.Status]++
		}
		return d
	})
	watchStoreMetrics(m, st)
}

// watchStoreMetrics lets the metrics read the store's size at each scrape.
func watchStoreMetrics(m *metrics.Metrics, st store.DB) {
	m.WatchStore(func() (metrics.StoreStats, error) {
		s, err := st.Stats()
		return metrics.StoreStats{SizeBytes: s.SizeBytes, FreeBytes: s.FreeBytes, Copies: s.Copies,
			Opens: s.Opens, OpensHuman: s.OpensHuman, Clicks: s.Clicks, ClicksHuman: s.ClicksHuman}, err
	})
}
