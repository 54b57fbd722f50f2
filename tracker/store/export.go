package store

import (
	"bytes"
	"time"

	bolt "go.etcd.io/bbolt"

	"pixelrelay/tracker/classify"
	"pixelrelay/tracker/webhook"
)

// Export reads the whole database for a move to another engine (pixelrelay
// store migrate): every copy with its opens, clicks, events and link URLs,
// the hourly counts, and the webhook outbox and states. It reads in one
// read transaction; damaged records are skipped as the queries skip them.

// ExportCopy is one copy with everything stored about it.
type ExportCopy struct {
	Key string
	Rec struct {
		OpensTotal, OpensHuman   int
		FirstHumanOpen           time.Time
		ClicksTotal, ClicksHuman int
		FirstHumanClick          time.Time
		DoneAt                   time.Time
	}
	Copy   Message // its MESSAGE (Key set)
	Queue  string  // its queue id
	Links  []string
	Opens  []ExportOpen
	Clicks []ExportClick
	Events []Event
}

// ExportOpen is a stored open; ByClick marks one a human click made.
type ExportOpen struct {
	Open
	ByClick bool
}

// ExportClick is a stored click with the open rules' verdict (Base) as
// the click rules read it.
type ExportClick struct {
	Click
	Ruled bool
	Base  classify.Result
}

// ExportAll is everything else: hourly counts, webhook events and states.
type ExportAll struct {
	Activity []Activity
	Outbox   map[string][]webhook.Event // by endpoint, oldest first
	States   map[string]webhook.State
}

// ExportCopies calls fn with each copy, oldest queued first.
func (s *Store) ExportCopies(fn func(*ExportCopy) error) error {
	return s.view(func(tx *bolt.Tx) error {
		copies := tx.Bucket(bCopies)
		c := tx.Bucket(bCopiesByTime).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) <= 8 {
				continue
			}
			v := copies.Get(k[8:])
			if v == nil {
				continue
			}
			rec, err := decodeCopy(v)
			if err != nil {
				continue
			}
			e := exportCopy(tx, string(k[8:]), &rec)
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	})
}

func exportCopy(tx *bolt.Tx, id string, rec *copyRec) *ExportCopy {
	e := &ExportCopy{Key: id, Copy: rec.message(), Queue: rec.QueueID, Links: linksOf(tx, &rec.Copy)}
	e.Rec.OpensTotal, e.Rec.OpensHuman, e.Rec.FirstHumanOpen = rec.OpensTotal, rec.OpensHuman, rec.FirstHumanOpen
	e.Rec.ClicksTotal, e.Rec.ClicksHuman, e.Rec.FirstHumanClick = rec.ClicksTotal, rec.ClicksHuman, rec.FirstHumanClick
	e.Rec.DoneAt = rec.DoneAt
	prefix := prefixed(id)
	oc := tx.Bucket(bOpens).Cursor()
	for k, v := oc.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = oc.Next() {
		if len(k)-len(prefix) != 16 {
			continue
		}
		o, err := decodeOpen(v)
		if err != nil {
			continue
		}
		e.Opens = append(e.Opens, ExportOpen{Open: openOf(&rec.Copy, beU64(k[len(prefix):]), &o), ByClick: o.Flags&flagByClick != 0})
	}
	for _, sc := range clicksOf(tx.Bucket(bClicks), id, 0) {
		url, _ := linkURL(tx.Bucket(bLinks).Get(linksKey(rec.QueueID, rec.TrackingID)), sc.rec.Link)
		e.Clicks = append(e.Clicks, ExportClick{Click: clickOf(rec, url, sc.at, &sc.rec),
			Ruled: sc.rec.Flags&flagRuled != 0, Base: baseOf(&sc.rec)})
	}
	e.Events, _ = eventsOf(tx, id, nil)
	return e
}

// ExportRest returns the hourly counts and the webhook outbox and states.
func (s *Store) ExportRest() (ExportAll, error) {
	all := ExportAll{Outbox: map[string][]webhook.Event{}, States: map[string]webhook.State{}}
	var err error
	if all.Activity, err = s.ActivityBetween(time.Unix(0, 0), time.Now().Add(24*time.Hour)); err != nil {
		return all, err
	}
	err = s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bHookOutbox).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			i := bytes.IndexByte(k, 0)
			ev, err := decodeHookEvent(v)
			if i < 0 || err != nil {
				continue
			}
			all.Outbox[string(k[:i])] = append(all.Outbox[string(k[:i])], ev)
		}
		return tx.Bucket(bHookState).ForEach(func(k, v []byte) error {
			if st, err := decodeHookState(v); err == nil {
				all.States[string(k)] = st
			}
			return nil
		})
	})
	return all, err
}
