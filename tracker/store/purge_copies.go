package store

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"pixelrelay/tracker/record"
)

// purgeCopies deletes, in one transaction, the copies done (sent or
// failed) before before, with all their opens, looking at the copies
// queued after the copies_by_time key after (a copy is done after it was
// queued, so only those queued before before can qualify), until about
// purgeChunk records are gone. It returns how many copies and opens it
// deleted, and the key to go on after: nil when no copy is left to look
// at.
func (s *Store) purgeCopies(before uint64, after []byte) (copies, opens int, next []byte, err error) {
	err = s.update(func(tx *bolt.Tx) error {
		p := copyPurger{tx: tx}
		copies, opens, next = 0, 0, nil
		byTime := tx.Bucket(bCopiesByTime)
		c := byTime.Cursor()
		k, _ := c.Seek(after)
		if k != nil && bytes.Equal(k, after) {
			k, _ = c.Next()
		}
		var victims [][]byte // copies_by_time keys, deleted after the walk
		var last []byte
		for ; k != nil && (len(k) < 8 || beU64(k) < before); k, _ = c.Next() {
			if opens+copies >= purgeChunk {
				next = last
				break
			}
			last = append(last[:0], k...)
			if len(k) < 8 {
				continue
			}
			n, gone, err := p.purgeIfDone(k[8:], before)
			if err != nil {
				return err
			}
			if gone {
				victims = append(victims, append([]byte(nil), k...))
				copies++
				opens += n
			}
		}
		for _, v := range victims {
			if err := byTime.Delete(v); err != nil {
				return err
			}
		}
		return p.counters()
	})
	return copies, opens, next, err
}

// copyPurger deletes copies and their opens inside one transaction and
// keeps the counter changes.
type copyPurger struct {
	tx                                  *bolt.Tx
	dCopies, dUntracked, dOpens, dHuman int64
	dClicks, dClicksHuman               int64
}

// purgeIfDone deletes the copy id with its opens, its delivery events and
// index entries (except its copies_by_time entry, the caller's) when it was sent or
// failed before before, and returns the number of opens deleted. A copy
// that cannot be read is left alone.
func (p *copyPurger) purgeIfDone(id []byte, before uint64) (opens int, gone bool, err error) {
	copies := p.tx.Bucket(bCopies)
	v := copies.Get(id)
	if v == nil {
		return 0, false, nil
	}
	c, err := decodeCopy(v)
	if err != nil || c.Status != record.StatusSent && c.Status != record.StatusFailed || ts(c.DoneAt) >= before {
		return 0, false, nil
	}
	if opens, err = p.deleteOpens(string(id), normAddr(c.Recipient)); err != nil {
		return 0, false, err
	}
	if err := p.deleteClicks(&c); err != nil {
		return 0, false, err
	}
	if err := deletePrefix(p.tx.Bucket(bEvents), prefixed(string(id))); err != nil {
		return 0, false, err
	}
	tk := copyTimeKey(&c.Copy)
	for _, d := range []struct {
		b *bolt.Bucket
		k []byte
	}{
		{copies, id},
		{p.tx.Bucket(bCopiesByRcpt), copyRcptKey(&c.Copy)},
		{p.tx.Bucket(bUnopened), tk},
	} {
		if err := d.b.Delete(d.k); err != nil {
			return 0, false, fmt.Errorf("store: purge copy %s: %w", id, err)
		}
	}
	p.dCopies--
	if !c.Tracked() {
		p.dUntracked--
	}
	return opens, true, nil
}

// deleteOpens deletes every open of copy id (whose normalised recipient
// is rcpt) with its index entries.
func (p *copyPurger) deleteOpens(id, rcpt string) (int, error) {
	opensB, byTime, byRcpt := p.tx.Bucket(bOpens), p.tx.Bucket(bOpensByTime), p.tx.Bucket(bOpensByRcpt)
	prefix := prefixed(id)
	var keys [][]byte
	human := 0
	c := opensB.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
		if len(v) < 2 || v[1]&flagBot == 0 { // version, flags: see encodeOpen
			human++
		}
	}
	for _, k := range keys {
		tsq := k[len(prefix):]
		if err := opensB.Delete(k); err != nil {
			return 0, err
		}
		if len(tsq) != 16 {
			continue
		}
		if err := byTime.Delete(tsq); err != nil {
			return 0, err
		}
		if err := byRcpt.Delete(prefixed(rcpt, tsq)); err != nil {
			return 0, err
		}
	}
	p.dOpens -= int64(len(keys))
	p.dHuman -= int64(human)
	return len(keys), nil
}

// deleteClicks deletes every click of copy c with its index and pending
// entries, and its hold on its message's links.
func (p *copyPurger) deleteClicks(c *copyRec) error {
	if !c.Tracked() {
		return nil
	}
	ct := newClickTx(p.tx)
	id := c.TrackingID
	prefix := prefixed(id)
	var keys [][]byte
	human := 0
	cur := ct.clicks.Cursor()
	for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
		keys = append(keys, append([]byte(nil), k...))
		if len(v) < 2 || v[1]&flagBot == 0 { // version, flags: see encodeClick
			human++
		}
	}
	rcpt := normAddr(c.Recipient)
	for _, k := range keys {
		if err := ct.clicks.Delete(k); err != nil {
			return err
		}
		if tsq := k[len(prefix):]; len(tsq) == 16 {
			if err := deleteClickIndexes(ct, tsq, rcpt); err != nil {
				return err
			}
		}
	}
	p.dClicks -= int64(len(keys))
	p.dClicksHuman -= int64(human)
	return unrefLinks(ct.links, linksKey(c.QueueID, c.TrackingID))
}

// deleteClickIndexes deletes the index and pending entries of the click
// at tsq of a copy of recipient rcpt (normalised).
func deleteClickIndexes(ct clickTx, tsq []byte, rcpt string) error {
	for _, d := range []struct {
		b *bolt.Bucket
		k []byte
	}{{ct.byTime, tsq}, {ct.byRcpt, prefixed(rcpt, tsq)}, {ct.pending, tsq}} {
		if err := d.b.Delete(d.k); err != nil {
			return err
		}
	}
	return nil
}

// deletePrefix deletes every key of b that starts with prefix.
func deletePrefix(b *bolt.Bucket, prefix []byte) error {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// counters writes the counter changes.
func (p *copyPurger) counters() error {
	meta := p.tx.Bucket(bMeta)
	for _, c := range []struct {
		name []byte
		d    int64
	}{{mCopies, p.dCopies}, {mUntracked, p.dUntracked}, {mOpens, p.dOpens}, {mOpensHuman, p.dHuman},
		{mClicks, p.dClicks}, {mClicksHuman, p.dClicksHuman}} {
		if err := addCounter(meta, c.name, c.d); err != nil {
			return err
		}
	}
	return nil
}
