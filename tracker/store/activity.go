package store

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Hourly activity counts, for the dashboard's charts and totals: one record
// per hour in bActivity, keyed by the hour's number since 1970 (8 bytes,
// big-endian), so a chart of 90 days reads 2,160 small records whatever the
// number of opens. The writer adds each batch's counts in the same
// transaction as the opens and copies themselves. Like a copy's opens_total
// they are historical: a purge of old opens does not lower them (they carry
// no personal data, only counts).
var bActivity = []byte("activity_hourly")

// mActivity in bMeta marks a database whose bActivity is complete (built
// from the stored opens and copies once, when the bucket was new).
var mActivity = []byte("activity_v1")

const activityVersion = 1

// Activity is the counts of one period (an hour as stored; a query may sum
// several). Clicks stay 0 until clicks are recorded.
type Activity struct {
	Start         time.Time `json:"start"`
	OpensHuman    int       `json:"opens_human"`
	OpensMachine  int       `json:"opens_machine"`
	ClicksHuman   int       `json:"clicks_human"`
	ClicksMachine int       `json:"clicks_machine"`
	Queued        int       `json:"queued"`      // copies accepted
	Sent          int       `json:"sent"`        // copies delivered
	FirstHuman    int       `json:"first_human"` // copies whose first human open fell here
}

// fields lists the counters in their stored order.
func (a *Activity) fields() []*int {
	return []*int{&a.OpensHuman, &a.OpensMachine, &a.ClicksHuman, &a.ClicksMachine, &a.Queued, &a.Sent, &a.FirstHuman}
}

// Add adds b's counts to a's (Start stays a's).
func (a *Activity) Add(b Activity) {
	af, bf := a.fields(), b.fields()
	for i := range af {
		*af[i] += *bf[i]
	}
}

func encodeActivity(a *Activity) []byte {
	b := make([]byte, 0, 16)
	b = append(b, activityVersion)
	for _, p := range a.fields() {
		b = binary.AppendUvarint(b, uint64(max(*p, 0)))
	}
	return b
}

// decodeActivity reads a record; counters a newer writer appended after
// the ones known here are ignored, ones an older writer did not have are 0.
func decodeActivity(v []byte) (Activity, error) {
	var a Activity
	d := decoder{b: v}
	if d.byte() != activityVersion {
		return a, errCorrupt
	}
	for _, p := range a.fields() {
		if len(d.b) == 0 {
			break
		}
		*p = int(d.uvarint())
	}
	return a, d.err
}

func hourOf(t time.Time) uint64 {
	if t.IsZero() || t.Unix() < 0 {
		return 0
	}
	return uint64(t.Unix() / 3600)
}

func hourKey(h uint64) []byte { return appendU64(make([]byte, 0, 8), h) }

// activityDelta gathers a transaction's changes to the hourly counts,
// written once at its end (negative counts take away).
type activityDelta map[uint64]*Activity

// at returns the counts of the hour of t.
func (d activityDelta) at(t time.Time) *Activity {
	h := hourOf(t)
	a := d[h]
	if a == nil {
		a = &Activity{}
		d[h] = a
	}
	return a
}

// flush adds the changes to bActivity.
func (d activityDelta) flush(tx *bolt.Tx) error {
	for h, a := range d {
		if err := addActivity(tx.Bucket(bActivity), h, a); err != nil {
			return err
		}
	}
	return nil
}

// activity returns the batch's counts for the hour of t.
func (w *hitTx) activity(t time.Time) *Activity { return w.act.at(t) }

func addActivity(b *bolt.Bucket, h uint64, d *Activity) error {
	k := hourKey(h)
	var cur Activity
	if v := b.Get(k); v != nil {
		var err error
		if cur, err = decodeActivity(v); err != nil {
			cur = Activity{} // a damaged record starts over
		}
	}
	cur.Add(*d)
	return b.Put(k, encodeActivity(&cur))
}

// ActivityBetween returns the hourly counts from the hour holding from up
// to (excluding) the hour holding to, oldest first; hours without any
// activity are left out.
func (s *Store) ActivityBetween(from, to time.Time) ([]Activity, error) {
	out := []Activity{}
	err := s.view(func(tx *bolt.Tx) error {
		end := hourOf(to)
		c := tx.Bucket(bActivity).Cursor()
		for k, v := c.Seek(hourKey(hourOf(from))); k != nil && len(k) == 8 && beU64(k) < end; k, v = c.Next() {
			a, err := decodeActivity(v)
			if err != nil {
				return fmt.Errorf("store: activity of hour %d: %w", beU64(k), err)
			}
			a.Start = time.Unix(int64(beU64(k))*3600, 0).UTC()
			out = append(out, a)
		}
		return nil
	})
	return out, err
}

// buildActivity fills bActivity from the stored opens and copies, once: for
// a database made before the bucket existed. Opens already purged are not
// counted.
func (s *Store) buildActivity() error {
	var done bool
	err := s.view(func(tx *bolt.Tx) error {
		done = tx.Bucket(bMeta).Get(mActivity) != nil
		return nil
	})
	if err != nil || done {
		return err
	}
	start := time.Now()
	var n int
	err = s.update(func(tx *bolt.Tx) error {
		act, err := countActivity(tx)
		if err != nil {
			return err
		}
		n = len(act)
		b := tx.Bucket(bActivity)
		for h, a := range act {
			if err := addActivity(b, h, a); err != nil {
				return err
			}
		}
		return tx.Bucket(bMeta).Put(mActivity, []byte{1})
	})
	if err == nil && n > 0 {
		s.log.Info("store: hourly activity counts built", "hours", n, "duration", time.Since(start).Round(time.Millisecond))
	}
	return err
}

// countActivity counts the stored opens and copies per hour.
func countActivity(tx *bolt.Tx) (map[uint64]*Activity, error) {
	act := map[uint64]*Activity{}
	at := func(t time.Time) *Activity {
		h := hourOf(t)
		if act[h] == nil {
			act[h] = &Activity{}
		}
		return act[h]
	}
	c := tx.Bucket(bOpensByTime).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) != 16 || len(v) == 0 {
			continue
		}
		a := at(fromTS(beU64(k)))
		if v[0]&flagBot != 0 {
			a.OpensMachine++
		} else {
			a.OpensHuman++
		}
	}
	err := tx.Bucket(bCopies).ForEach(func(_, v []byte) error {
		cp, err := decodeCopy(v)
		if err != nil {
			return nil // a damaged record is not counted
		}
		at(cp.QueuedAt).Queued++
		if !cp.SentAt.IsZero() {
			at(cp.SentAt).Sent++
		}
		if !cp.FirstHumanOpen.IsZero() {
			at(cp.FirstHumanOpen).FirstHuman++
		}
		return nil
	})
	return act, err
}
