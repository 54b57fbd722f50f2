package store

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"pixelrelay/tracker/record"
)

// The split deployment (CONTRACT.md "Where the tracker runs"): a relay on
// a laptop registers its copies with a tracker on a public host and takes
// the opens back. Both keep a store; each uses a part of this file.
//
// On the public tracker (Options.TrackerOnly):
//   - bEarly keeps the opens of genuine tokens whose copy is not registered
//     yet (the relay was offline): dedup and the per-IP limit apply as to
//     any open; Register joins them to their copy as real opens.
//   - bCopyRelay remembers which relay registered a copy, and bRelayFeed
//     holds, per relay, every open of its copies it has not taken yet
//     (RelayFeed, then AckRelayFeed deletes what it took).
//
// On the relay (Options.RelayOutbox):
//   - bRelayOut lists the copies whose state the tracker has not been told
//     yet, written in the same transaction as the copy's record, so it is
//     as durable as the record. RelayPending reads it; RelayDone drops what
//     the tracker acknowledged unless the copy changed since.
//   - Import stores the opens taken from the tracker, without applying
//     dedup or the per-IP limit again (the tracker did), and skips an open
//     already imported (same copy, same opened_at to the nanosecond).
var (
	bEarly      = []byte("early_opens")  // id 0 at(8) seq(8) -> earlyRec
	bCopyRelay  = []byte("copy_relay")   // id -> relay name
	bRelayFeed  = []byte("relay_feed")   // relay 0 seq(8) -> feedRec
	bRelayOut   = []byte("relay_outbox") // id -> mark(8)
	splitBucket = [][]byte{bEarly, bCopyRelay, bRelayFeed, bRelayOut}
)

// HitEarly is the outcome of a genuine hit whose copy is not registered
// yet, kept on a public tracker until it is.
const HitEarly HitOutcome = 100

// FeedOpen is one open of a relay's copy that the relay has not taken yet:
// what the public tracker knows of it, never a recipient or subject.
type FeedOpen struct {
	Seq        uint64    `json:"seq"`
	TrackingID string    `json:"tracking_id"`
	OpenedAt   time.Time `json:"opened_at"`
	IP         string    `json:"ip"`
	UserAgent  string    `json:"user_agent"`
	Bot        bool      `json:"bot"`
	BotType    string    `json:"bot_type"`
	Proxy      string    `json:"proxy"`
	Reason     string    `json:"reason"`
	Country    string    `json:"country,omitempty"`
	City       string    `json:"city,omitempty"`
}

// Hit returns the open as a hit, for Import.
func (f *FeedOpen) Hit() Hit {
	return Hit{TrackingID: f.TrackingID, At: f.OpenedAt, IP: f.IP, UserAgent: f.UserAgent, Bot: f.Bot,
		BotType: f.BotType, Proxy: f.Proxy, Reason: f.Reason, Country: f.Country, City: f.City}
}

// RegisterResult counts what one Register did.
type RegisterResult struct {
	New     int `json:"new"`     // copies recorded for the first time
	Updated int `json:"updated"` // copies whose delivery state moved on
	Joined  int `json:"joined"`  // early opens joined to their copy
}

// ImportResult counts what one Import did.
type ImportResult struct {
	Stored  int `json:"stored"`
	Known   int `json:"known"`   // imported before
	Unknown int `json:"unknown"` // no such copy here
}

// PendingCopy is a copy whose state the remote tracker has not been told.
type PendingCopy struct {
	record.Copy
	mark uint64
}

// registration is a Register request for the writer.
type registration struct {
	relay  string
	copies []record.Copy
	res    *RegisterResult
}

// splitTx is the split deployment's part of a write transaction; nil when
// the store takes part in none.
type splitTx struct {
	early, copyRelay, feed, out *bolt.Bucket
	rejudge                     func(*Hit, time.Time)
}

func (s *Store) newSplitTx(tx *bolt.Tx) *splitTx {
	if !s.opt.TrackerOnly && !s.opt.RelayOutbox {
		return nil
	}
	st := &splitTx{out: tx.Bucket(bRelayOut), rejudge: s.opt.Rejudge}
	if s.opt.TrackerOnly {
		st.early, st.copyRelay, st.feed = tx.Bucket(bEarly), tx.Bucket(bCopyRelay), tx.Bucket(bRelayFeed)
	}
	if !s.opt.RelayOutbox {
		st.out = nil
	}
	return st
}

// keepsEarly reports whether unknown copies' hits are kept.
func (st *splitTx) keepsEarly() bool { return st != nil && st.early != nil }

// keepEarly stores a hit whose copy is not registered yet.
func (st *splitTx) keepEarly(h *Hit, at uint64) error {
	seq, err := st.early.NextSequence()
	if err != nil {
		return err
	}
	return st.early.Put(prefixed(h.TrackingID, timeSeq(at, seq)), encodeOpen(openOfHit(h)))
}

// fed adds a stored open to the feed of the relay that registered its copy.
func (st *splitTx) fed(h *Hit, at uint64) error {
	if st == nil || st.feed == nil {
		return nil
	}
	relay := st.copyRelay.Get([]byte(h.TrackingID))
	if relay == nil {
		return nil
	}
	seq, err := st.feed.NextSequence()
	if err != nil {
		return err
	}
	v := appendU64(appendStr(nil, h.TrackingID), at)
	return st.feed.Put(prefixed(string(relay), appendU64(nil, seq)), append(v, encodeOpen(openOfHit(h))...))
}

// markOut notes that the tracker must be told about copy id.
func (st *splitTx) markOut(id string) error {
	if st == nil || st.out == nil || record.IsUntrackedID(id) {
		return nil // an untracked copy has no pixel to tell the tracker about
	}
	seq, err := st.out.NextSequence()
	if err != nil {
		return err
	}
	return st.out.Put([]byte(id), appendU64(nil, seq))
}

func openOfHit(h *Hit) *openRec {
	o := &openRec{IP: h.IP, UserAgent: h.UserAgent, BotType: h.BotType, Proxy: h.Proxy, Country: h.Country, City: h.City, Reason: h.Reason}
	if h.Bot {
		o.Flags |= flagBot
	}
	return o
}

func hitOfOpen(id string, at uint64, o *openRec) Hit {
	return Hit{TrackingID: id, At: fromTS(at), IP: o.IP, UserAgent: o.UserAgent, Bot: o.Flags&flagBot != 0,
		BotType: o.BotType, Proxy: o.Proxy, Reason: o.Reason, Country: o.Country, City: o.City}
}

// Register records copies a relay registered with this (public) tracker:
// a new copy is added in the state the relay reports, a known one moves on
// to a later state (queued, deferred, then sent or failed; never back, so
// a registration replayed late changes nothing), and the early opens of a
// new copy are joined to it. It returns once committed.
func (s *Store) Register(relay string, copies []record.Copy) (RegisterResult, error) {
	var res RegisterResult
	if !s.opt.TrackerOnly {
		return res, fmt.Errorf("store: register: this store does not serve relays")
	}
	for _, c := range copies {
		if c.TrackingID == "" || strings.IndexByte(c.TrackingID, 0) >= 0 {
			return res, fmt.Errorf("store: register: invalid tracking id %q", c.TrackingID)
		}
		switch c.Status {
		case "", record.StatusQueued, record.StatusDeferred, record.StatusSent, record.StatusFailed:
		default:
			return res, fmt.Errorf("store: register %s: unknown status %q", c.TrackingID, c.Status)
		}
	}
	done := make(chan result, 1)
	if err := s.send(request{reg: &registration{relay: relay, copies: copies, res: &res}, done: done}); err != nil {
		return res, err
	}
	return res, (<-done).err
}

// statusRank orders delivery states; a registration never moves a copy
// back to a lower rank.
func statusRank(s string) int {
	switch s {
	case record.StatusDeferred:
		return 1
	case record.StatusSent, record.StatusFailed:
		return 2
	}
	return 0
}

// register applies a Register request in the writer's transaction.
func (w *hitTx) register(r *registration, now func() time.Time) error {
	for _, c := range r.copies {
		old := w.copy(c.TrackingID)
		if old == nil {
			if err := w.registerNew(r, c, now); err != nil {
				return err
			}
			continue
		}
		if statusRank(c.Status) <= statusRank(old.Status) {
			continue
		}
		if err := w.update(stateOf(c, now), now); err != nil {
			return err
		}
		r.res.Updated++
	}
	return nil
}

// registerNew adds a registered copy, brings it to its reported state and
// joins its early opens.
func (w *hitTx) registerNew(r *registration, c record.Copy, now func() time.Time) error {
	q := c
	q.Status, q.SentAt, q.LastError = record.StatusQueued, time.Time{}, ""
	if err := w.add([]record.Copy{q}, now); err != nil {
		return err
	}
	if err := w.split.copyRelay.Put([]byte(c.TrackingID), []byte(r.relay)); err != nil {
		return err
	}
	r.res.New++
	if statusRank(c.Status) > 0 {
		if err := w.update(stateOf(c, now), now); err != nil {
			return err
		}
	}
	n, err := w.joinEarly(c.TrackingID, c.SentAt)
	r.res.Joined += n
	return err
}

// stateOf is the status update a registered copy reports.
func stateOf(c record.Copy, now func() time.Time) *statusUpdate {
	at := c.SentAt
	if c.Status != record.StatusSent || at.IsZero() {
		at = now()
	}
	return &statusUpdate{id: c.TrackingID, status: c.Status, lastError: c.LastError, at: at}
}

// joinEarly turns the early opens of copy id into opens of it, oldest
// first, judged again with the copy's delivery time, and feeds them to
// the relay.
func (w *hitTx) joinEarly(id string, sentAt time.Time) (int, error) {
	c := w.copy(id)
	if c == nil {
		return 0, nil
	}
	prefix := prefixed(id)
	type early struct{ k, v []byte }
	var found []early
	cur := w.split.early.Cursor()
	for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
		found = append(found, early{append([]byte(nil), k...), append([]byte(nil), v...)})
	}
	for _, e := range found {
		if err := w.split.early.Delete(e.k); err != nil {
			return 0, err
		}
		o, err := decodeOpen(e.v)
		if len(e.k) != len(prefix)+16 || err != nil {
			continue // damaged: dropped
		}
		at := beU64(e.k[len(prefix):])
		h := hitOfOpen(id, at, &o)
		if w.split.rejudge != nil {
			w.split.rejudge(&h, sentAt)
		}
		stored, err := w.store(&h, c, at)
		if err != nil {
			return 0, err
		}
		if err := w.emitOpen(&h, c, at, &stored); err != nil {
			return 0, err
		}
		w.touched[id] = c
		if err := w.split.fed(&h, at); err != nil {
			return 0, err
		}
		w.changes = append(w.changes, Change{Kind: ChangeOpen, TrackingID: id, At: fromTS(at), Bot: h.Bot})
	}
	return len(found), nil
}

// RelayFeed returns up to limit opens of copies the relay registered that
// it has not acknowledged, oldest first.
func (s *Store) RelayFeed(relay string, limit int) ([]FeedOpen, error) {
	out := []FeedOpen{}
	prefix := prefixed(relay)
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bRelayFeed).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, v = c.Next() {
			f, ok := decodeFeed(k[len(prefix):], v)
			if ok {
				out = append(out, f)
			}
		}
		return nil
	})
	return out, err
}

func decodeFeed(seq, v []byte) (FeedOpen, bool) {
	d := decoder{b: v}
	id := d.str()
	if d.err != nil || len(d.b) < 8 || len(seq) != 8 {
		return FeedOpen{}, false
	}
	at := beU64(d.b)
	o, err := decodeOpen(d.b[8:])
	if err != nil {
		return FeedOpen{}, false
	}
	h := hitOfOpen(id, at, &o)
	return FeedOpen{Seq: beU64(seq), TrackingID: id, OpenedAt: h.At, IP: h.IP, UserAgent: h.UserAgent, Bot: h.Bot,
		BotType: h.BotType, Proxy: h.Proxy, Reason: h.Reason, Country: h.Country, City: h.City}, true
}

// AckRelayFeed deletes the relay's feed entries it has stored; acking an
// entry twice is harmless.
func (s *Store) AckRelayFeed(relay string, seqs []uint64) (int, error) {
	n := 0
	err := s.update(func(tx *bolt.Tx) error {
		n = 0
		b := tx.Bucket(bRelayFeed)
		for _, seq := range seqs {
			k := prefixed(relay, appendU64(nil, seq))
			if b.Get(k) == nil {
				continue
			}
			if err := b.Delete(k); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// RelayPending returns up to limit copies whose state the remote tracker
// has not acknowledged, in the order of their last change.
func (s *Store) RelayPending(limit int) ([]PendingCopy, error) {
	var out []PendingCopy
	err := s.view(func(tx *bolt.Tx) error {
		copies := tx.Bucket(bCopies)
		c := tx.Bucket(bRelayOut).Cursor()
		for k, v := c.First(); k != nil && len(out) < limit; k, v = c.Next() {
			rec, err := decodeCopy(copies.Get(k))
			if err != nil || len(v) != 8 {
				continue // purged or unreadable: nothing to tell
			}
			rec.Links = linksOf(tx, &rec.Copy) // the tracker keeps them for the clicks
			out = append(out, PendingCopy{Copy: rec.Copy, mark: beU64(v)})
		}
		return nil
	})
	return out, err
}

// RelayDone drops copies the tracker acknowledged from the outbox, unless
// they changed since they were read (then they are sent again).
func (s *Store) RelayDone(done []PendingCopy) error {
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bRelayOut)
		for _, p := range done {
			v := b.Get([]byte(p.TrackingID))
			if len(v) != 8 || beU64(v) != p.mark {
				continue
			}
			if err := b.Delete([]byte(p.TrackingID)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Import stores opens taken from the remote tracker: no dedup and no
// per-IP limit (the tracker applied them), each open at most once. It
// returns once they are committed.
func (s *Store) Import(hits []Hit) (ImportResult, error) {
	var res ImportResult
	done := make(chan result, 1)
	if err := s.send(request{imp: hits, impRes: &res, done: done}); err != nil {
		return res, err
	}
	return res, (<-done).err
}

// importHits applies an Import request in the writer's transaction.
func (w *hitTx) importHits(hits []Hit, res *ImportResult, now func() time.Time) error {
	for i := range hits {
		h := &hits[i]
		if h.At.IsZero() || h.TrackingID == "" {
			res.Unknown++
			continue
		}
		k := prefixed(h.TrackingID, appendU64(nil, ts(h.At)))
		if ok, _ := w.opens.Cursor().Seek(k); ok != nil && bytes.HasPrefix(ok, k) {
			res.Known++
			continue
		}
		o, err := w.apply(h, now, 0, 0)
		if err != nil {
			return err
		}
		switch o {
		case HitStored:
			res.Stored++
		default:
			res.Unknown++
		}
	}
	return nil
}

// splitCounts adds the split deployment's backlogs to st.
func splitCounts(tx *bolt.Tx, st *Stats) {
	st.EarlyOpens = tx.Bucket(bEarly).Stats().KeyN
	st.RelayFeed = tx.Bucket(bRelayFeed).Stats().KeyN
	st.RelayOutbox = tx.Bucket(bRelayOut).Stats().KeyN
}

// purgeSplit deletes early opens and feed entries opened before before.
func (s *Store) purgeSplit(before uint64) (int, error) {
	n := 0
	err := s.update(func(tx *bolt.Tx) error {
		n = 0
		for _, name := range [][]byte{bEarly, bRelayFeed} {
			b := tx.Bucket(name)
			var dead [][]byte
			c := b.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if splitAt(bytes.Equal(name, bEarly), k, v) < before {
					dead = append(dead, append([]byte(nil), k...))
				}
			}
			for _, k := range dead {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			n += len(dead)
		}
		return nil
	})
	return n, err
}

// splitAt is when an early open or a feed entry was opened (0 when
// unreadable, so damaged entries go with the first purge).
func splitAt(early bool, k, v []byte) uint64 {
	if early {
		if i := bytes.IndexByte(k, 0); i >= 0 && len(k) == i+17 {
			return beU64(k[i+1:])
		}
		return 0
	}
	d := decoder{b: v}
	d.skip()
	if d.err != nil || len(d.b) < 8 {
		return 0
	}
	return beU64(d.b)
}
