package store

import (
	"time"

	"pixelrelay/tracker/record"
)

// What another storage engine (package tracker/store/pg) shares with this
// one, so that both keep the same promises in the same words: the live
// feed, the webhook event bodies, the checks and limits on what is stored.

// Feed fans committed changes out to subscribers (Subscribe) for an
// engine's live views. The zero value is ready to use.
type Feed struct{ f feed }

// Subscribe starts receiving the changes published from now on.
func (f *Feed) Subscribe() *Subscription { return f.f.subscribe() }

// Publish hands a committed transaction's changes to every subscriber.
func (f *Feed) Publish(changes []Change) { f.f.publish(changes) }

// EventBody is the signed JSON of a webhook event: {"type","timestamp","data"}.
func EventBody(typ string, at time.Time, data []byte) ([]byte, error) {
	return eventBody(typ, at, data)
}

// Marshal is json.Marshal without HTML escaping and trailing newline, as
// the admin API and webhook bodies write JSON.
func Marshal(v any) ([]byte, error) { return marshal(v) }

// WithMessage is the data of message.opened and message.clicked: the OPEN
// or CLICK v followed by the MESSAGE fields it lacks.
func WithMessage(v any, m Message) ([]byte, error) { return withMessage(v, m) }

// CheckCopy refuses a copy Add cannot key.
func CheckCopy(c *record.Copy) error { return checkCopy(c) }

// NormAddr is an address as the recipient indexes keep it: trimmed,
// without angle brackets, lowercased.
func NormAddr(s string) string { return normAddr(s) }

// ClampLimit is a query's limit: 100 when not set, at most 500.
func ClampLimit(n int) int { return clampLimit(n) }

// ClipHit shortens a hit's oversized fields as the store does before
// storing it (a client cannot grow the database with huge headers).
func ClipHit(h *Hit) { clip(h) }

// ClipClick is ClipHit for a click.
func ClipClick(c *ClickHit) { clipClick(c) }

// Reload tells every subscriber that it missed changes: its next Take
// reports them dropped, so a live view reloads (another process's changes
// that were too many to pass on one by one).
func (f *Feed) Reload() {
	f.f.mu.Lock()
	defer f.f.mu.Unlock()
	for sub := range f.f.subs {
		sub.mu.Lock()
		sub.pending, sub.overflow = nil, true
		sub.mu.Unlock()
		select {
		case sub.c <- struct{}{}:
		default:
		}
	}
}
