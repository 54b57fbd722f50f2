package store

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Clicks lists clicks newest first, as Opens lists opens: of one copy
// (ID), of one recipient (To, case-insensitive), or the most recent;
// Since filters on clicked_at. Each is joined with its copy and the URL
// of its link ("" for the honeypot).
func (s *Store) Clicks(q ClickQuery) ([]Click, error) {
	out := []Click{}
	err := s.view(func(tx *bolt.Tx) error {
		r := clickReader{clicks: tx.Bucket(bClicks), copies: tx.Bucket(bCopies), links: tx.Bucket(bLinks),
			cache: map[string]*clickCopy{}, limit: clampLimit(q.Limit), since: ts(q.Since), out: out}
		var err error
		switch {
		case q.ID != "":
			err = r.byID(q.ID, q.To)
		case q.To != "":
			err = r.byIndex(tx.Bucket(bClicksByRcpt), prefixed(normAddr(q.To)), func(v []byte) []byte { return v })
		default:
			err = r.byIndex(tx.Bucket(bClicksByTime), nil, func(v []byte) []byte {
				_, id, _, ok := parseTimeIndexValue(v)
				if !ok {
					return nil
				}
				return []byte(id)
			})
		}
		out = r.out
		return err
	})
	return out, err
}

// clickCopy is what a CLICK shows of its copy, and its links.
type clickCopy struct {
	rec   copyRec
	links []string
}

// clickReader collects clicks in one read transaction, joining each with
// its copy and links (cached per query).
type clickReader struct {
	clicks, copies, links *bolt.Bucket
	cache                 map[string]*clickCopy
	limit                 int
	since                 uint64
	out                   []Click
}

// byID walks one copy's clicks: a prefix range of bClicks.
func (r *clickReader) byID(id, to string) error {
	c, err := r.copy([]byte(id))
	if err != nil || c == nil {
		return err
	}
	if to != "" && normAddr(to) != normAddr(c.rec.Recipient) {
		return nil
	}
	prefix := prefixed(id)
	cur := r.clicks.Cursor()
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

// byIndex walks an index whose keys end with clicked(8) seq(8), newest
// first; idOf extracts the tracking id from an index value.
func (r *clickReader) byIndex(idx *bolt.Bucket, prefix []byte, idOf func([]byte) []byte) error {
	cur := idx.Cursor()
	for k, v := lastWithPrefix(cur, prefix); k != nil && bytes.HasPrefix(k, prefix) && len(r.out) < r.limit; k, v = cur.Prev() {
		tsq := k[len(prefix):]
		if len(tsq) != 16 {
			continue
		}
		if beU64(tsq) < r.since {
			break
		}
		id := idOf(v)
		c, err := r.copy(id)
		if err != nil {
			return err
		}
		cv := r.clicks.Get(prefixed(string(id), tsq))
		if c == nil || cv == nil {
			continue // dangling index entry: skip it
		}
		if err := r.add(c, tsq, cv); err != nil {
			return err
		}
	}
	return nil
}

// copy returns a copy and its links through the per-query cache; nil if
// unknown.
func (r *clickReader) copy(idb []byte) (*clickCopy, error) {
	id := string(idb)
	if c, ok := r.cache[id]; ok {
		return c, nil
	}
	v := r.copies.Get(idb)
	if v == nil {
		r.cache[id] = nil
		return nil, nil
	}
	rec, err := decodeCopy(v)
	if err != nil {
		return nil, fmt.Errorf("store: copy %s: %w", id, err)
	}
	c := &clickCopy{rec: rec}
	if lv := r.links.Get(linksKey(rec.QueueID, rec.TrackingID)); lv != nil {
		if l, err := decodeLinks(lv); err == nil {
			c.links = l.URLs
		}
	}
	r.cache[id] = c
	return c, nil
}

// add decodes one click and appends it joined with its copy.
func (r *clickReader) add(c *clickCopy, tsq, v []byte) error {
	k, err := decodeClick(v)
	if err != nil {
		return fmt.Errorf("store: click of %s: %w", c.rec.TrackingID, err)
	}
	url := ""
	if k.Link >= 1 && k.Link <= len(c.links) {
		url = c.links[k.Link-1]
	}
	r.out = append(r.out, clickOf(&c.rec, url, beU64(tsq), &k))
	return nil
}

// clickOf is the CLICK of a stored click at at (as ts()) of copy c; url
// is its link's ("" for the honeypot).
func clickOf(c *copyRec, url string, at uint64, k *clickRec) Click {
	return Click{
		TrackingID: c.TrackingID, Recipient: c.Recipient, Subject: c.Subject, URL: url, Link: k.Link,
		ClickedAt: fromTS(at), IP: k.IP, UserAgent: k.UserAgent, Bot: k.Flags&flagBot != 0, BotType: k.BotType,
		Reason: k.Reason, First: k.Flags&flagFirst != 0, Country: k.Country, City: k.City,
	}
}
