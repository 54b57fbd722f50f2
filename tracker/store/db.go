package store

import (
	"context"
	"time"

	"pixelrelay/tracker/record"
	"pixelrelay/tracker/webhook"
)

// DB is the tracker's store as the rest of pixelrelay uses it: the seam
// between the callers (the HTTP server and admin API, the dashboard, the
// relay's recorder, the webhook workers, the split deployment's relay API
// and syncer, the query and purge paths) and a storage engine. *Store, the
// embedded bbolt file, implements it; it is the default (store.url =
// "bolt"). The callers' own narrower interfaces (httpd.Store, ui.Store,
// remote.TrackerStore, remote.RelayStore, webhook.Outbox) are subsets of
// it, checked at compile time in package cli.
//
// Every promise of the package documentation is part of the seam: Add is
// idempotent per copy id, a copy's counters are historical totals, dedup
// and the per-IP limit apply to Record and Enqueue (not to Import), a
// registration never moves a copy's state back, and webhook events are
// written in the transaction of what they report.
type DB interface {
	record.Recorder

	// Pixel hits.
	Record(Hit) (stored bool, err error)
	Enqueue(Hit) error
	Flush() error
	SetLimits(dedup time.Duration, ipHourly int)

	// Clicks: a link's URL, clicks recorded and listed.
	LinkOf(id string, link int) (url string, sentAt time.Time, found bool, err error)
	RecordClick(ClickHit) (stored bool, err error)
	EnqueueClick(ClickHit) error
	Clicks(ClickQuery) ([]Click, error)

	// Queries.
	Copy(id string) (record.Copy, bool, error)
	ByKey(key string) (Message, bool, error)
	Opens(OpenQuery) ([]Open, error)
	Messages(MessageQuery) ([]Message, error)
	List(ListQuery) (ListPage, error)
	Events(id string) ([]Event, error)
	ActivityBetween(from, to time.Time) ([]Activity, error)
	Stats() (Stats, error)
	Subscribe() *Subscription

	// Maintenance.
	Purge(ctx context.Context, before time.Time, progress func(done int)) (PurgeResult, error)
	Reclassify(ctx context.Context, since time.Time, judge Judge) (ReclassifyResult, error)
	Close() error

	// The webhook outbox.
	webhook.Outbox

	// The split deployment: a public tracker's relay API, and a relay's
	// outbox and imports.
	Register(relay string, copies []record.Copy) (RegisterResult, error)
	RelayFeed(relay string, limit int) ([]FeedOpen, error)
	AckRelayFeed(relay string, seqs []uint64) (int, error)
	RelayPending(limit int) ([]PendingCopy, error)
	RelayDone([]PendingCopy) error
	Import([]Hit) (ImportResult, error)
}

var _ DB = (*Store)(nil)
