package store

import (
	"sync"
	"sync/atomic"
	"time"
)

// Kinds of Change.
const (
	ChangeOpen   = "open"   // an open was stored
	ChangeClick  = "click"  // a click was stored
	ChangeStatus = "status" // a copy's delivery state changed
	ChangeCopy   = "copy"   // a copy was recorded
)

// Change is news from a committed batch, for live views (the dashboard).
type Change struct {
	Kind       string    `json:"kind"`
	TrackingID string    `json:"tracking_id"` // the copy's record.Copy.ID: QUEUEID/rcpt when untracked
	At         time.Time `json:"at"`
	Bot        bool      `json:"bot,omitempty"`    // opens and clicks: a machine fetch
	Status     string    `json:"status,omitempty"` // status and copy
}

// maxPending bounds the changes a subscriber may leave unread; past it the
// subscription is marked as overflowed (the reader should reload
// everything) instead of growing.
const maxPending = 1024

// Subscription receives the changes of every batch committed after
// Subscribe. C gets a value whenever there is something to Take; changes
// are coalesced, so a slow reader never holds up the writer.
type Subscription struct {
	C <-chan struct{}

	c        chan struct{}
	f        *feed
	mu       sync.Mutex
	pending  []Change
	overflow bool
}

// Take returns the changes since the last Take, oldest first, and whether
// some were dropped because the reader fell behind.
func (sub *Subscription) Take() ([]Change, bool) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	ch, over := sub.pending, sub.overflow
	sub.pending, sub.overflow = nil, false
	return ch, over
}

// Close ends the subscription.
func (sub *Subscription) Close() { sub.f.remove(sub) }

// feed fans committed changes out to subscribers.
type feed struct {
	n    atomic.Int32 // subscribers, read without the lock by publish
	mu   sync.Mutex
	subs map[*Subscription]struct{}
}

// Subscribe starts receiving changes; Close the subscription when done.
func (s *Store) Subscribe() *Subscription { return s.feed.subscribe() }

func (f *feed) subscribe() *Subscription {
	c := make(chan struct{}, 1)
	sub := &Subscription{C: c, c: c, f: f}
	f.mu.Lock()
	if f.subs == nil {
		f.subs = map[*Subscription]struct{}{}
	}
	f.subs[sub] = struct{}{}
	f.n.Store(int32(len(f.subs)))
	f.mu.Unlock()
	return sub
}

func (f *feed) remove(sub *Subscription) {
	f.mu.Lock()
	delete(f.subs, sub)
	f.n.Store(int32(len(f.subs)))
	f.mu.Unlock()
}

// publish hands a committed batch's changes to every subscriber; without
// subscribers it costs one atomic load.
func (f *feed) publish(changes []Change) {
	if len(changes) == 0 || f.n.Load() == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for sub := range f.subs {
		sub.mu.Lock()
		if len(sub.pending)+len(changes) > maxPending {
			sub.pending, sub.overflow = nil, true
		} else {
			sub.pending = append(sub.pending, changes...)
		}
		sub.mu.Unlock()
		select {
		case sub.c <- struct{}{}:
		default:
		}
	}
}
