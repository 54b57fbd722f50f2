package store

import (
	"bytes"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A copy's delivery history: one event per Update (each delivery attempt's
// outcome: deferred with its error, sent, failed), keyed id 0 at(8) seq(8)
// in bEvents so a copy's events are one prefix range in time order. The
// dashboard's timeline reads them; the copy record keeps only the latest
// state. Copies recorded before this bucket existed simply have none.
var bEvents = []byte("copy_events")

// eventVersion is the first byte of an encoded event.
const eventVersion = 1

// maxEventsPerCopy bounds the history kept per copy: a copy deferred every
// few minutes for days would otherwise grow without end. The first
// attempts and the latest ones are what a person looks at; in between,
// further events are not stored (the copy record has the latest state).
const maxEventsPerCopy = 200

// Event is one step of a copy's delivery: Status is the copy's state after
// it (deferred, sent, failed, or queued again) and Error the attempt's error.
type Event struct {
	At     time.Time `json:"at"`
	Status string    `json:"status"`
	Error  string    `json:"error,omitempty"`
}

func encodeEvent(e *Event) []byte {
	b := make([]byte, 0, 4+len(e.Status)+len(e.Error))
	b = append(b, eventVersion)
	b = appendStr(b, e.Status)
	return appendStr(b, e.Error)
}

func decodeEvent(k, v []byte) (Event, error) {
	var e Event
	d := decoder{b: v}
	if d.byte() != eventVersion || len(k) < 16 {
		return e, errCorrupt
	}
	e.At = fromTS(beU64(k[len(k)-16:]))
	e.Status = d.str()
	e.Error = d.str()
	return e, d.err
}

// noteEvent appends a delivery event of copy id, unless the copy already
// has maxEventsPerCopy of them (then the latest is overwritten, so the
// history always ends with the current state).
func (w *hitTx) noteEvent(id string, e Event) error {
	b := w.events
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	prefix := prefixed(id)
	if n := w.eventCount(id, prefix); n >= maxEventsPerCopy {
		if k, _ := lastWithPrefix(b.Cursor(), prefix); k != nil && bytes.HasPrefix(k, prefix) {
			if err := b.Delete(append([]byte(nil), k...)); err != nil {
				return err
			}
		}
	} else {
		w.nEvents[id] = n + 1
	}
	return b.Put(prefixed(id, timeSeq(ts(e.At), seq)), encodeEvent(&e))
}

// eventCount is how many events copy id has (counted once per batch).
func (w *hitTx) eventCount(id string, prefix []byte) int {
	if n, ok := w.nEvents[id]; ok {
		return n
	}
	n := 0
	c := w.events.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && n < maxEventsPerCopy; k, _ = c.Next() {
		n++
	}
	w.nEvents[id] = n
	return n
}

// Events returns copy id's delivery events, oldest first.
func (s *Store) Events(id string) ([]Event, error) {
	out := []Event{}
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		out, err = eventsOf(tx, id, out)
		return err
	})
	return out, err
}

func eventsOf(tx *bolt.Tx, id string, out []Event) ([]Event, error) {
	prefix := prefixed(id)
	c := tx.Bucket(bEvents).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		e, err := decodeEvent(k, v)
		if err != nil {
			return out, fmt.Errorf("store: event of %s: %w", id, err)
		}
		out = append(out, e)
	}
	return out, nil
}
