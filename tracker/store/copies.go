package store

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"pixelrelay/tracker/record"
)

// Add records copies (record.Recorder), tracked or not, each under its
// record.Copy.ID. A copy whose id is already stored is left as it is, so
// replaying a spool is harmless. A zero QueuedAt is set to now and an
// empty Status to queued. Copies go through the hit writer like Update:
// one transaction and fsync for all that arrive together; Add returns once
// they are committed.
func (s *Store) Add(copies []record.Copy) error {
	for i := range copies {
		if err := checkCopy(&copies[i]); err != nil {
			return err
		}
	}
	done := make(chan result, 1)
	if err := s.send(request{add: copies, done: done}); err != nil {
		return err
	}
	return (<-done).err
}

// checkCopy refuses a copy that cannot be keyed: a tracked one needs a
// tracking id, an untracked one its queue id and recipient, and no id may
// hold the key separator 0x00 (nor a tracking id a "/", which marks an
// untracked copy's id).
func checkCopy(c *record.Copy) error {
	id := c.ID()
	switch {
	case c.Tracked() && (c.TrackingID == "" || record.IsUntrackedID(c.TrackingID)):
		return fmt.Errorf("store: add: invalid tracking id %q", c.TrackingID)
	case !c.Tracked() && (c.QueueID == "" || normAddr(c.Recipient) == ""):
		return fmt.Errorf("store: add: untracked copy without queue id or recipient (%q, %q)", c.QueueID, c.Recipient)
	case strings.IndexByte(id, 0) >= 0:
		return fmt.Errorf("store: add: invalid id %q", id)
	}
	return nil
}

// add stores the copies not stored yet (Add, in the writer's batch).
func (w *hitTx) add(copies []record.Copy, now func() time.Time) error {
	for _, c := range copies {
		id := c.ID()
		if _, ok := w.touched[id]; ok || w.copies.Get([]byte(id)) != nil {
			continue
		}
		if c.QueuedAt.IsZero() {
			c.QueuedAt = now()
		}
		c.QueuedAt = c.QueuedAt.UTC()
		if c.Status == "" {
			c.Status = record.StatusQueued
		}
		rec := copyRec{Copy: c, DoneAt: doneAtV1(&c)}
		tk := copyTimeKey(&c)
		puts := []struct {
			b    *bolt.Bucket
			k, v []byte
		}{
			{w.copies, []byte(id), encodeCopy(&rec)},
			{w.byQueued, tk, copyTimeValue(&c)},
			{w.copiesByRcpt, copyRcptKey(&c), nil},
		}
		if c.Tracked() {
			puts = append(puts, struct {
				b    *bolt.Bucket
				k, v []byte
			}{w.unopened, tk, nil})
			if err := w.refLinks(&c); err != nil {
				return err
			}
		} else {
			w.dUntracked++
		}
		for _, p := range puts {
			if err := p.b.Put(p.k, p.v); err != nil {
				return err
			}
		}
		if err := w.split.markOut(id); err != nil {
			return err
		}
		w.dCopies++
		w.activity(c.QueuedAt).Queued++
		w.changes = append(w.changes, Change{Kind: ChangeCopy, TrackingID: id, At: c.QueuedAt, Status: c.Status})
	}
	return nil
}

// Update records a copy's delivery state (record.Recorder); id is the
// copy's record.Copy.ID. Status sent sets SentAt to at; sent and failed
// mark the copy done at at (a purge deletes done copies). It returns
// ErrNotFound for an unknown id. Updates go through the hit writer: the
// updates and hits that arrive together share one write transaction and
// one fsync; Update returns once its batch is committed.
func (s *Store) Update(id, status, lastError string, at time.Time) error {
	switch status {
	case record.StatusQueued, record.StatusDeferred, record.StatusSent, record.StatusFailed:
	default:
		return fmt.Errorf("store: update %s: unknown status %q", id, status)
	}
	done := make(chan result, 1)
	u := &statusUpdate{id: id, status: status, lastError: lastError, at: at}
	if err := s.send(request{upd: u, done: done}); err != nil {
		return err
	}
	return (<-done).err
}

// SetAccount implements record.AccountSetter: the copies with these ids
// (record.Copy.ID) now go through account. Unknown ids are skipped.
func (s *Store) SetAccount(ids []string, account string) error {
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bCopies)
		for _, id := range ids {
			v := b.Get([]byte(id))
			if v == nil {
				continue
			}
			c, err := decodeCopy(v)
			if err != nil {
				return fmt.Errorf("store: copy %s: %w", id, err)
			}
			if c.Account == account {
				continue
			}
			c.Account = account
			if err := b.Put([]byte(id), encodeCopy(&c)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Copy returns the stored tracked copy with this tracking id (never an
// untracked one: they have no tracking id).
func (s *Store) Copy(id string) (record.Copy, bool, error) {
	var c copyRec
	var found bool
	if record.IsUntrackedID(id) {
		return record.Copy{}, false, nil
	}
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bCopies).Get([]byte(id))
		if v == nil {
			return nil
		}
		found = true
		var err error
		c, err = decodeCopy(v)
		return err
	})
	if err != nil || !found {
		return record.Copy{}, false, err
	}
	return c.Copy, true, nil
}

// Messages lists copies, tracked or not, newest queued first: of one
// recipient (To, case-insensitive) or all; Since filters on queued_at;
// Unopened keeps tracked copies without a human open; ID selects one
// tracked copy by its tracking id.
func (s *Store) Messages(q MessageQuery) ([]Message, error) {
	q.ID = strings.ToLower(strings.TrimSpace(q.ID))
	limit := clampLimit(q.Limit)
	since := ts(q.Since)
	out := []Message{}
	err := s.view(func(tx *bolt.Tx) error {
		copies := tx.Bucket(bCopies)
		if q.ID != "" {
			return messageByID(copies, q.ID, &out)
		}
		var idx *bolt.Bucket
		var prefix []byte
		switch {
		case q.To != "":
			idx, prefix = tx.Bucket(bCopiesByRcpt), prefixed(normAddr(q.To))
		case q.Unopened:
			idx = tx.Bucket(bUnopened)
		default:
			idx = tx.Bucket(bCopiesByTime)
		}
		c := idx.Cursor()
		for k, _ := lastWithPrefix(c, prefix); k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, _ = c.Prev() {
			rest := k[len(prefix):]
			if len(rest) < 8 {
				continue
			}
			if beU64(rest) < since {
				break
			}
			v := copies.Get(rest[8:])
			if v == nil {
				continue
			}
			rec, err := decodeCopy(v)
			if err != nil {
				return fmt.Errorf("store: copy %s: %w", rest[8:], err)
			}
			if q.Unopened && rec.OpensHuman > 0 {
				continue
			}
			out = append(out, rec.message())
		}
		return nil
	})
	return out, err
}

// message converts a stored copy to the API's MESSAGE.
func (c *copyRec) message() Message {
	return Message{
		TrackingID: c.TrackingID, Recipient: c.Recipient, From: c.From, Subject: c.Subject,
		MessageID: c.MessageID, QueuedAt: c.QueuedAt, SentAt: timePtr(c.SentAt),
		Status: c.Status, LastError: c.LastError,
		Tracked: c.Tracked(), UntrackedReason: c.UntrackedReason, Account: c.Account,
		OpensTotal: c.OpensTotal, OpensHuman: c.OpensHuman, FirstHumanOpen: timePtr(c.FirstHumanOpen),
		Key:         c.ID(),
		ClicksTotal: c.ClicksTotal, ClicksHuman: c.ClicksHuman, FirstHumanClick: timePtr(c.FirstHumanClick),
		SentFolder: c.SentFolder,
	}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// lastWithPrefix positions c on the last key starting with prefix (which
// ends with the 0x00 separator), or on the bucket's last key when prefix is
// empty. The caller checks the prefix.
func lastWithPrefix(c *bolt.Cursor, prefix []byte) ([]byte, []byte) {
	if len(prefix) == 0 {
		return c.Last()
	}
	if k, _ := c.Seek(prefixEnd(prefix)); k == nil {
		return c.Last()
	}
	return c.Prev()
}

func beU64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

// messageByID appends the tracked copy with tracking id id, if there is
// one.
func messageByID(copies *bolt.Bucket, id string, out *[]Message) error {
	v := copies.Get([]byte(id))
	if v == nil || record.IsUntrackedID(id) {
		return nil
	}
	rec, err := decodeCopy(v)
	if err != nil {
		return fmt.Errorf("store: copy %s: %w", id, err)
	}
	*out = append(*out, rec.message())
	return nil
}
