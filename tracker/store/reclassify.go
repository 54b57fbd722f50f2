package store

import (
	"bytes"
	"context"
	"net/netip"
	"time"

	bolt "go.etcd.io/bbolt"

	"pixelrelay/tracker/classify"
)

// Judge classifies again the stored fetches of one copy delivered at
// sentAt (zero if never), returning one verdict per fetch, in order
// (classify.Classifier.Reclassify with the current config is one).
type Judge func(sentAt time.Time, fetches []classify.Fetch) []classify.Result

// ReclassifyResult reports a reclassify: how many stored opens were
// examined and changed class, and the counts per class (classify.Label:
// "human", "proxy:gmail", "bot:scanner", ...) of the examined opens before
// and after.
type ReclassifyResult struct {
	Copies   int            `json:"copies"`
	Examined int            `json:"examined"`
	Changed  int            `json:"changed"`
	Before   map[string]int `json:"before"`
	After    map[string]int `json:"after"`
	// Clicks counts the clicks examined the same way (nil in a click's
	// own counts).
	Clicks *ReclassifyResult `json:"clicks,omitempty"`
}

// reclassifyChunk is the number of copies re-examined per write
// transaction, so the hit writer is never held off for long.
const reclassifyChunk = 200

// Reclassify classifies again the opens stored at or after since (zero:
// all) with judge, copy by copy, and stores the new verdicts and reasons.
// Each copy's counters follow: opens_human, first_human_open, the first
// flags and the unopened index (a human open that purge already deleted
// still counts, as everywhere else). The judge sees all of a copy's stored
// opens, older ones too, so rules that look at the whole copy (a scanner
// burst) can apply; only those since are changed.
func (s *Store) Reclassify(ctx context.Context, since time.Time, judge Judge) (ReclassifyResult, error) {
	res := ReclassifyResult{Before: map[string]int{}, After: map[string]int{},
		Clicks: &ReclassifyResult{Before: map[string]int{}, After: map[string]int{}}}
	if err := s.reclassifyClicks(ctx, since, judge, res.Clicks); err != nil {
		return res, err
	}
	ids, err := s.copiesWithOpensSince(ts(since))
	if err != nil {
		return res, err
	}
	for len(ids) > 0 {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		n := min(len(ids), reclassifyChunk)
		chunk := ids[:n]
		ids = ids[n:]
		var part ReclassifyResult
		err := s.update(func(tx *bolt.Tx) error {
			part = ReclassifyResult{Before: map[string]int{}, After: map[string]int{}}
			rt := reclassTx{tx: tx, since: ts(since), judge: judge, res: &part, act: activityDelta{}}
			for _, id := range chunk {
				if err := rt.copy(id); err != nil {
					return err
				}
			}
			if err := rt.act.flush(tx); err != nil {
				return err
			}
			return addCounter(tx.Bucket(bMeta), mOpensHuman, rt.dHuman)
		})
		if err != nil {
			return res, err
		}
		res.add(part)
	}
	s.log.Info("reclassify: done", "since", since, "copies", res.Copies, "examined", res.Examined, "changed", res.Changed,
		"clicks_examined", res.Clicks.Examined, "clicks_changed", res.Clicks.Changed)
	return res, nil
}

func (r *ReclassifyResult) add(p ReclassifyResult) {
	r.Copies += p.Copies
	r.Examined += p.Examined
	r.Changed += p.Changed
	for k, v := range p.Before {
		r.Before[k] += v
	}
	for k, v := range p.After {
		r.After[k] += v
	}
}

// copiesWithOpensSince lists the tracking ids with an open at or after
// since, from the time index.
func (s *Store) copiesWithOpensSince(since uint64) ([]string, error) {
	var ids []string
	err := s.view(func(tx *bolt.Tx) error {
		seen := map[string]bool{}
		c := tx.Bucket(bOpensByTime).Cursor()
		for k, v := c.Seek(appendU64(nil, since)); k != nil; k, v = c.Next() {
			_, id, _, ok := parseTimeIndexValue(v)
			if ok && !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
		return nil
	})
	return ids, err
}

// reclassTx re-examines copies inside one write transaction.
type reclassTx struct {
	tx     *bolt.Tx
	since  uint64
	judge  Judge
	res    *ReclassifyResult
	dHuman int64
	act    activityDelta // the hourly counts follow the new verdicts
}

// storedOpen is one open of the copy being re-examined.
type storedOpen struct {
	key []byte // id 0 opened(8) seq(8)
	at  uint64
	rec openRec
}

// copy re-examines one copy's opens and fixes its counters.
func (rt *reclassTx) copy(id string) error {
	copies := rt.tx.Bucket(bCopies)
	v := copies.Get([]byte(id))
	if v == nil {
		return nil // purged meanwhile
	}
	c, err := decodeCopy(v)
	if err != nil {
		return nil // a damaged copy record takes no part, as for hits
	}
	opens, err := rt.opensOf(id)
	if err != nil || len(opens) == 0 {
		return err
	}
	fetches := make([]classify.Fetch, len(opens))
	for i, o := range opens {
		ip, _ := netip.ParseAddr(o.rec.IP)
		fetches[i] = classify.Fetch{At: fromTS(o.at), IP: ip, UserAgent: o.rec.UserAgent, Old: verdictOf(&o.rec)}
	}
	verdicts := rt.judge(c.SentAt, fetches)
	rt.byClicks(id, opens, verdicts)
	rt.res.Copies++
	humanDelta := 0
	for i := range opens {
		o := &opens[i]
		if o.at < rt.since || i >= len(verdicts) {
			continue
		}
		old, nv := fetches[i].Old, verdicts[i]
		rt.res.Examined++
		rt.res.Before[classify.Label(old)]++
		rt.res.After[classify.Label(nv)]++
		if classify.Label(old) != classify.Label(nv) {
			rt.res.Changed++
		}
		humanDelta += b2i(!nv.Bot) - b2i(!old.Bot)
		if old.Bot != nv.Bot {
			a := rt.act.at(fromTS(o.at))
			a.OpensHuman += b2i(!nv.Bot) - b2i(!old.Bot)
			a.OpensMachine += b2i(nv.Bot) - b2i(old.Bot)
		}
		o.rec.BotType, o.rec.Proxy, o.rec.Reason = nv.BotType, nv.Proxy, nv.Reason
		o.rec.Flags &^= flagBot
		if nv.Bot {
			o.rec.Flags |= flagBot
		}
	}
	first := firstHuman(&c, opens)
	if err := rt.write(id, normAddr(c.Recipient), opens, first); err != nil {
		return err
	}
	return rt.fixCopy(&c, humanDelta, first, opens)
}

// byClicks gives an open a click made (flagByClick) the verdict of its
// click, not the open rules': it stands while the click is a person's.
func (rt *reclassTx) byClicks(id string, opens []storedOpen, verdicts []classify.Result) {
	for i := range opens {
		if opens[i].rec.Flags&flagByClick == 0 || i >= len(verdicts) {
			continue
		}
		if humanClickAt(rt.tx, id, opens[i].at) {
			verdicts[i] = classify.Result{Reason: ReasonByClick}
		} else {
			verdicts[i] = classify.Result{Bot: true, BotType: classify.Scanner, Reason: ReasonClickMachine}
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// verdictOf is a stored open's verdict.
func verdictOf(o *openRec) classify.Result {
	return classify.Result{Bot: o.Flags&flagBot != 0, BotType: o.BotType, Proxy: o.Proxy, Reason: o.Reason}
}

// opensOf returns a copy's stored opens, oldest first.
func (rt *reclassTx) opensOf(id string) ([]storedOpen, error) {
	prefix := prefixed(id)
	var out []storedOpen
	c := rt.tx.Bucket(bOpens).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		tsq := k[len(prefix):]
		if len(tsq) != 16 {
			continue
		}
		rec, err := decodeOpen(v)
		if err != nil {
			continue // a damaged open is left as it is
		}
		out = append(out, storedOpen{key: append([]byte(nil), k...), at: beU64(tsq), rec: rec})
	}
	return out, nil
}

// firstHuman returns the index of the open that is the copy's first human
// open, or -1: none is when a human open purge deleted came earlier.
func firstHuman(c *copyRec, opens []storedOpen) int {
	if !c.FirstHumanOpen.IsZero() && ts(c.FirstHumanOpen) < opens[0].at {
		return -1
	}
	for i, o := range opens {
		if o.rec.Flags&flagBot == 0 {
			return i
		}
	}
	return -1
}

// write stores the opens whose record changed, with their time index
// entries (which carry the flags).
func (rt *reclassTx) write(id, rcpt string, opens []storedOpen, first int) error {
	ob, byTime := rt.tx.Bucket(bOpens), rt.tx.Bucket(bOpensByTime)
	for i := range opens {
		o := &opens[i]
		o.rec.Flags &^= flagFirst
		if i == first {
			o.rec.Flags |= flagFirst
		}
		nv := encodeOpen(&o.rec)
		if bytes.Equal(nv, ob.Get(o.key)) {
			continue
		}
		if err := ob.Put(o.key, nv); err != nil {
			return err
		}
		tsq := o.key[len(o.key)-16:]
		if err := byTime.Put(append([]byte(nil), tsq...), timeIndexValue(o.rec.Flags, id, rcpt)); err != nil {
			return err
		}
	}
	return nil
}

// fixCopy updates the copy's human count, first human open and its place
// in the unopened index.
func (rt *reclassTx) fixCopy(c *copyRec, humanDelta, first int, opens []storedOpen) error {
	before := *c
	c.OpensHuman = max(0, c.OpensHuman+humanDelta)
	rt.dHuman += int64(c.OpensHuman - before.OpensHuman)
	switch {
	case first >= 0:
		c.FirstHumanOpen = fromTS(opens[first].at)
	case !c.FirstHumanOpen.IsZero() && ts(c.FirstHumanOpen) < opens[0].at:
		// an earlier human open was purged: it stays the first
	default:
		c.FirstHumanOpen = time.Time{}
	}
	if c.OpensHuman == before.OpensHuman && c.FirstHumanOpen.Equal(before.FirstHumanOpen) {
		return nil
	}
	if !c.FirstHumanOpen.Equal(before.FirstHumanOpen) {
		if !before.FirstHumanOpen.IsZero() {
			rt.act.at(before.FirstHumanOpen).FirstHuman--
		}
		if !c.FirstHumanOpen.IsZero() {
			rt.act.at(c.FirstHumanOpen).FirstHuman++
		}
	}
	unopened := rt.tx.Bucket(bUnopened)
	tk := copyTimeKey(&c.Copy)
	var err error
	if c.OpensHuman == 0 {
		err = unopened.Put(tk, nil)
	} else {
		err = unopened.Delete(tk)
	}
	if err != nil {
		return err
	}
	return rt.tx.Bucket(bCopies).Put([]byte(c.TrackingID), encodeCopy(c))
}
