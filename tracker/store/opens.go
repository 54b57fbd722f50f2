package store

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"pixelrelay/tracker/record"
)

// Opens lists opens newest first: of one copy (ID), of one recipient (To,
// case-insensitive), or the most recent. Since filters on opened_at.
// When both ID and To are given, the copy's recipient must match To.
func (s *Store) Opens(q OpenQuery) ([]Open, error) {
	out := []Open{}
	err := s.view(func(tx *bolt.Tx) error {
		r := openReader{opens: tx.Bucket(bOpens), copies: tx.Bucket(bCopies),
			cache: map[string]*copyRec{}, limit: clampLimit(q.Limit), since: ts(q.Since), out: out}
		var err error
		switch {
		case q.ID != "":
			err = r.byID(q.ID, q.To)
		case q.To != "":
			err = r.byIndex(tx.Bucket(bOpensByRcpt), prefixed(normAddr(q.To)), func(v []byte) []byte { return v })
		default:
			err = r.byIndex(tx.Bucket(bOpensByTime), nil, func(v []byte) []byte {
				if len(v) < 2 {
					return nil
				}
				if i := bytes.IndexByte(v[1:], 0); i >= 0 {
					return v[1 : 1+i]
				}
				return nil
			})
		}
		out = r.out
		return err
	})
	return out, err
}

// openReader collects opens in one read transaction, joining each with its
// copy (cached per query).
type openReader struct {
	opens, copies *bolt.Bucket
	cache         map[string]*copyRec
	limit         int
	since         uint64
	out           []Open
}

// byID walks one copy's opens: a prefix range of bOpens.
func (r *openReader) byID(id, to string) error {
	c, err := r.copy(id)
	if err != nil || c == nil {
		return err
	}
	if to != "" && normAddr(to) != normAddr(c.Recipient) {
		return nil
	}
	prefix := prefixed(id)
	cur := r.opens.Cursor()
	for k, v := lastWithPrefix(cur, prefix); k != nil && bytes.HasPrefix(k, prefix) && len(r.out) < r.limit; k, v = cur.Prev() {
		tsq := k[len(prefix):]
		if len(tsq) != 16 {
			continue
		}
		if beU64(tsq) < r.since {
			break
		}
		if err := r.add(c, tsq, v); err != nil {
			return err
		}
	}
	return nil
}

// byIndex walks an index whose keys end with opened(8) seq(8), newest
// first; idOf extracts the tracking id from an index value.
func (r *openReader) byIndex(idx *bolt.Bucket, prefix []byte, idOf func([]byte) []byte) error {
	cur := idx.Cursor()
	var key []byte
	for k, v := lastWithPrefix(cur, prefix); k != nil && bytes.HasPrefix(k, prefix) && len(r.out) < r.limit; k, v = cur.Prev() {
		tsq := k[len(prefix):]
		if len(tsq) != 16 {
			continue
		}
		if beU64(tsq) < r.since {
			break
		}
		id := idOf(v)
		c, err := r.copyBytes(id)
		if err != nil {
			return err
		}
		key = append(append(append(key[:0], id...), 0), tsq...)
		ov := r.opens.Get(key)
		if c == nil || ov == nil {
			continue // dangling index entry: skip it
		}
		if err := r.add(c, tsq, ov); err != nil {
			return err
		}
	}
	return nil
}

// copy returns a copy by id through the per-query cache; nil if unknown.
func (r *openReader) copy(id string) (*copyRec, error) {
	return r.copyBytes([]byte(id))
}

func (r *openReader) copyBytes(idb []byte) (*copyRec, error) {
	if c, ok := r.cache[string(idb)]; ok {
		return c, nil
	}
	id := string(idb)
	v := r.copies.Get([]byte(id))
	if v == nil {
		r.cache[id] = nil
		return nil, nil
	}
	c, err := decodeCopyForOpen(v)
	if err != nil {
		return nil, fmt.Errorf("store: copy %s: %w", id, err)
	}
	r.cache[id] = &c
	return &c, nil
}

// add decodes one open and appends it joined with its copy.
func (r *openReader) add(c *copyRec, tsq, v []byte) error {
	o, err := decodeOpen(v)
	if err != nil {
		return fmt.Errorf("store: open of %s: %w", c.TrackingID, err)
	}
	r.out = append(r.out, openOf(&c.Copy, beU64(tsq), &o))
	return nil
}

// openOf is the OPEN of a stored open at (as ts()) of copy c.
func openOf(c *record.Copy, at uint64, o *openRec) Open {
	return Open{
		TrackingID: c.TrackingID, Recipient: c.Recipient, Subject: c.Subject, MessageID: c.MessageID,
		SentAt: timePtr(c.SentAt), OpenedAt: fromTS(at),
		IP: o.IP, UserAgent: o.UserAgent, Bot: o.Flags&flagBot != 0, BotType: o.BotType,
		Proxy: o.Proxy, First: o.Flags&flagFirst != 0, Reason: o.Reason, Country: o.Country, City: o.City,
	}
}
