package store

import (
	"bytes"
	"context"
	"net/netip"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"pixelrelay/tracker/classify"
	"pixelrelay/tracker/record"
	"pixelrelay/tracker/webhook"
)

// Clicks are stored as opens are: through the writer, with dedup (same
// copy, link, IP and user agent within the dedup window) and the per-IP
// hourly limit, which opens and clicks share (a client's fetches of
// pixels and links count together). What differs:
//
//   - The click rules (classify.ClickRules) look at the copy's other
//     clicks, later ones too: a click is applied together with the copy's
//     clicks of the last 2 × classify.HoneypotWindow, and those of the
//     last HoneypotWindow that the new one shows to be a machine's (a
//     honeypot fetch after them, a burst of links) are changed with their
//     counters. Rules only ever add evidence, so a machine click never
//     turns human this way (Reclassify looks at everything again).
//   - A click settles once HoneypotWindow has passed (settle): nothing
//     can change its verdict at request time any more. Then a human click
//     on a copy that has no human open yet makes the copy humanly opened:
//     an open is stored for it (flagByClick, the click's time, address and
//     user agent, reason "human click on a link"), so opens_human,
//     first_human_open and the unopened list follow, and `pixelrelay opens`
//     shows why.

// LinkOf returns the URL of link n of the tracked copy id ("" for the
// honeypot, link 0) and when the copy was sent; found is false when the
// copy or its link is unknown (never recorded, or purged).
func (s *Store) LinkOf(id string, n int) (url string, sentAt time.Time, found bool, err error) {
	if record.IsUntrackedID(id) || n < 0 {
		return "", time.Time{}, false, nil
	}
	err = s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bCopies).Get([]byte(id))
		if v == nil {
			return nil
		}
		c, err := decodeCopyForOpen(v)
		if err != nil {
			return nil // a damaged copy takes no clicks, as no opens
		}
		lv := tx.Bucket(bLinks).Get(linksKey(queueIDOf(v), c.TrackingID))
		if lv == nil {
			return nil
		}
		if n == 0 {
			found = true
		} else {
			url, found = linkURL(lv, n)
		}
		sentAt = c.SentAt
		return nil
	})
	return url, sentAt, found, err
}

// queueIDOf reads the queue id of an encoded copy.
func queueIDOf(v []byte) string {
	d := decoder{b: v}
	d.byte()
	d.skip() // tracking id
	return d.str()
}

// refLinks stores the link URLs of a new tracked copy under its queue
// id, or counts one more copy using them (the URLs are not decoded: a
// plan made again finds the same).
func (w *hitTx) refLinks(c *record.Copy) error {
	if len(c.Links) == 0 {
		return nil
	}
	key := linksKey(c.QueueID, c.TrackingID)
	if v := w.ct.links.Get(key); v != nil {
		if nv, ok := addRefs(v, 1); ok {
			return w.ct.links.Put(key, nv)
		}
	}
	return w.ct.links.Put(key, encodeLinks(&linksRec{Refs: 1, URLs: c.Links}))
}

// linksOf returns the link URLs of tracked copy c (nil when it has none).
func linksOf(tx *bolt.Tx, c *record.Copy) []string {
	if !c.Tracked() {
		return nil
	}
	v := tx.Bucket(bLinks).Get(linksKey(c.QueueID, c.TrackingID))
	if v == nil {
		return nil
	}
	l, err := decodeLinks(v)
	if err != nil {
		return nil
	}
	return l.URLs
}

// unrefLinks counts one copy fewer using the links under key, deleting
// them with the last (purge).
func unrefLinks(b *bolt.Bucket, key []byte) error {
	v := b.Get(key)
	if v == nil {
		return nil
	}
	nv, ok := addRefs(v, -1)
	if !ok {
		return b.Delete(key)
	}
	return b.Put(key, nv)
}

// EnqueueClick hands a click to the writer without waiting (the click
// handler has answered already); failures count in Stats().Dropped.
func (s *Store) EnqueueClick(c ClickHit) error {
	return s.send(request{click: &c})
}

// RecordClick stores a click and waits for its batch; stored is false for
// an unknown copy or link, a duplicate or an IP over its limit.
func (s *Store) RecordClick(c ClickHit) (stored bool, err error) {
	done := make(chan result, 1)
	if err := s.send(request{click: &c, done: done}); err != nil {
		return false, err
	}
	r := <-done
	return r.stored, r.err
}

// clickTx holds the click buckets of a write transaction.
type clickTx struct {
	links, clicks, byTime, byRcpt, pending *bolt.Bucket
}

func newClickTx(tx *bolt.Tx) clickTx {
	return clickTx{links: tx.Bucket(bLinks), clicks: tx.Bucket(bClicks), byTime: tx.Bucket(bClicksByTime),
		byRcpt: tx.Bucket(bClicksByRcpt), pending: tx.Bucket(bClicksPending)}
}

// applyClick stores one click unless its copy or link is unknown, it is
// a duplicate or its IP is over the limit, and applies the click rules.
func (w *hitTx) applyClick(h *ClickHit, now func() time.Time, dedup time.Duration, limit int) (HitOutcome, error) {
	if h.At.IsZero() {
		h.At = now()
	}
	clipClick(h)
	c := w.copy(h.TrackingID)
	if c == nil || !c.Tracked() || !w.hasLink(c, h.Link) {
		return HitUnknown, nil
	}
	dk := keyOf(clickDedupID(h.TrackingID, h.Link), h.IP, h.UserAgent)
	if dedup > 0 && w.lim.duplicate(dk, h.At, dedup) {
		return HitDuplicate, nil
	}
	slot := minute(h.At)
	if limit > 0 && h.IP != "" && w.lim.ipCount(h.IP, slot) >= limit {
		return HitLimited, nil
	}
	at := ts(h.At)
	if err := w.storeClick(h, c, at); err != nil {
		return HitFailed, err
	}
	w.touched[h.TrackingID] = c
	w.lim.note(dk, h.IP, at, slot)
	w.changes = append(w.changes, Change{Kind: ChangeClick, TrackingID: h.TrackingID, At: fromTS(at), Bot: h.Bot})
	return HitStored, nil
}

// hasLink reports whether copy c has link n (0, the honeypot, whenever it
// has links at all).
func (w *hitTx) hasLink(c *copyRec, n int) bool {
	v := w.ct.links.Get(linksKey(c.QueueID, c.TrackingID))
	if v == nil {
		return false
	}
	if n == 0 {
		return true
	}
	_, ok := linkURL(v, n)
	return ok
}

// storeClick writes the click with its index entries and pending mark,
// counts it in c, and applies the click rules to the copy's recent clicks.
func (w *hitTx) storeClick(h *ClickHit, c *copyRec, at uint64) error {
	seq, err := w.ct.clicks.NextSequence()
	if err != nil {
		return err
	}
	r := clickRec{Link: h.Link, IP: h.IP, UserAgent: h.UserAgent, BotType: h.BotType, Reason: h.Reason,
		Country: h.Country, City: h.City}
	if h.Bot {
		r.Flags |= flagBot
	}
	if !h.Bot && h.Link != 0 && c.FirstHumanClick.IsZero() {
		r.Flags |= flagFirst
		c.FirstHumanClick = fromTS(at)
	}
	rcpt := normAddr(c.Recipient)
	tsq := timeSeq(at, seq)
	for _, p := range []struct {
		b    *bolt.Bucket
		k, v []byte
	}{
		{w.ct.clicks, prefixed(h.TrackingID, tsq), encodeClick(&r)},
		{w.ct.byTime, tsq, timeIndexValue(r.Flags, h.TrackingID, rcpt)},
		{w.ct.byRcpt, prefixed(rcpt, tsq), []byte(h.TrackingID)},
		{w.ct.pending, tsq, []byte(h.TrackingID)},
	} {
		if err := p.b.Put(p.k, p.v); err != nil {
			return err
		}
	}
	c.ClicksTotal++
	w.dClicks++
	if w.pendingAt == 0 || at < w.pendingAt {
		w.pendingAt = max(at, 1)
	}
	w.countClick(c, at, &r, +1)
	if !w.recent.quiet(h, at) {
		if err := w.judgeRecent(h.TrackingID, c, at); err != nil {
			return err
		}
	}
	w.recent.note(h, at)
	return nil
}

// countClick adds d (+1 or -1) human or machine click at at to the
// counters (the copy's ClicksHuman, the stored counts, hourly activity).
func (w *hitTx) countClick(c *copyRec, at uint64, r *clickRec, d int) {
	act := w.activity(fromTS(at))
	if r.Flags&flagBot != 0 {
		act.ClicksMachine += d
		return
	}
	c.ClicksHuman += d
	w.dClicksHuman += int64(d)
	act.ClicksHuman += d
}

// storedClick is one click of a copy read back.
type storedClick struct {
	key []byte // id 0 clicked(8) seq(8)
	at  uint64
	rec clickRec
}

// clicksOf returns the copy's clicks from from on, oldest first.
func clicksOf(b *bolt.Bucket, id string, from uint64) []storedClick {
	prefix := prefixed(id)
	var out []storedClick
	cur := b.Cursor()
	for k, v := cur.Seek(prefixed(id, appendU64(nil, from))); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
		tsq := k[len(prefix):]
		if len(tsq) != 16 {
			continue
		}
		rec, err := decodeClick(v)
		if err != nil {
			continue // a damaged click takes no part
		}
		out = append(out, storedClick{key: append([]byte(nil), k...), at: beU64(tsq), rec: rec})
	}
	return out
}

// baseOf is the open rules' verdict of a stored click.
func baseOf(r *clickRec) classify.Result {
	if r.Flags&flagRuled != 0 {
		return classify.Result{Reason: classify.ReasonHuman}
	}
	return classify.Result{Bot: r.Flags&flagBot != 0, BotType: r.BotType, Reason: r.Reason}
}

// asClicks turns stored clicks into what the click rules read.
func asClicks(cs []storedClick) []classify.Click {
	out := make([]classify.Click, len(cs))
	for i := range cs {
		ip, _ := netip.ParseAddr(cs[i].rec.IP)
		out[i] = classify.Click{At: fromTS(cs[i].at), IP: ip, Link: cs[i].rec.Link, Base: baseOf(&cs[i].rec)}
	}
	return out
}

// judgeRecent applies the click rules to the copy's clicks around the
// one just stored at at, turning those of the last HoneypotWindow that
// they show to be a machine's.
func (w *hitTx) judgeRecent(id string, c *copyRec, at uint64) error {
	win := uint64(classify.HoneypotWindow)
	cs := lastClicks(w.ct.clicks, id, at-min(at, 2*win), maxJudged)
	w.recent.load(id, cs)
	verdicts := classify.ClickRules(asClicks(cs))
	changed := false
	for i := range cs {
		v := verdicts[i]
		if cs[i].at+win < at || !v.Bot || cs[i].rec.Flags&flagBot != 0 {
			continue
		}
		w.countClick(c, cs[i].at, &cs[i].rec, -1)
		setVerdict(&cs[i].rec, v)
		w.countClick(c, cs[i].at, &cs[i].rec, +1)
		if err := w.putClick(id, c, &cs[i]); err != nil {
			return err
		}
		changed = true
	}
	if changed {
		return w.fixFirstClick(id, c, cs, max(at-min(at, win), cs[0].at))
	}
	return nil
}

// maxJudged bounds the clicks the rules look at around a new one: a flood
// of fetches of one copy costs each at most this many reads.
const maxJudged = 64

// lastClicks returns the copy's last clicks from from on, at most n,
// oldest first.
func lastClicks(b *bolt.Bucket, id string, from uint64, n int) []storedClick {
	prefix := prefixed(id)
	start := prefixed(id, appendU64(nil, from))
	var out []storedClick
	cur := b.Cursor()
	for k, v := lastWithPrefix(cur, prefix); k != nil && bytes.HasPrefix(k, prefix) && bytes.Compare(k, start) >= 0 && len(out) < n; k, v = cur.Prev() {
		tsq := k[len(prefix):]
		if len(tsq) != 16 {
			continue
		}
		rec, err := decodeClick(v)
		if err != nil {
			continue // a damaged click takes no part
		}
		out = append(out, storedClick{key: append([]byte(nil), k...), at: beU64(tsq), rec: rec})
	}
	slices.Reverse(out)
	return out
}

// setVerdict gives a stored click a verdict; a click rule's is marked
// (flagRuled) when the open rules had said human.
func setVerdict(r *clickRec, v classify.Result) {
	human := r.Flags&flagBot == 0 || r.Flags&flagRuled != 0
	r.Flags &^= flagBot | flagRuled
	r.BotType, r.Reason = v.BotType, v.Reason
	if v.Bot {
		r.Flags |= flagBot
		if human {
			r.Flags |= flagRuled
		}
	}
}

// putClick writes a changed click and its time index entry (which
// carries the flags).
func (w *hitTx) putClick(id string, c *copyRec, sc *storedClick) error {
	if err := w.ct.clicks.Put(sc.key, encodeClick(&sc.rec)); err != nil {
		return err
	}
	tsq := sc.key[len(sc.key)-16:]
	return w.ct.byTime.Put(append([]byte(nil), tsq...), timeIndexValue(sc.rec.Flags, id, normAddr(c.Recipient)))
}

// fixFirstClick sets the first flag on the copy's first human click among
// cs (clicks from since on may have changed) and FirstHumanClick with it.
// A first human click before since stays first.
func (w *hitTx) fixFirstClick(id string, c *copyRec, cs []storedClick, since uint64) error {
	if !c.FirstHumanClick.IsZero() && ts(c.FirstHumanClick) < since {
		return nil
	}
	first := -1
	for i := range cs {
		if cs[i].rec.Flags&flagBot == 0 && cs[i].rec.Link != 0 {
			first = i
			break
		}
	}
	c.FirstHumanClick = time.Time{}
	if first >= 0 {
		c.FirstHumanClick = fromTS(cs[first].at)
	}
	for i := range cs {
		was := cs[i].rec.Flags & flagFirst
		cs[i].rec.Flags &^= flagFirst
		if i == first {
			cs[i].rec.Flags |= flagFirst
		}
		if cs[i].rec.Flags&flagFirst != was {
			if err := w.putClick(id, c, &cs[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// settle handles the clicks stored at least HoneypotWindow before now
// (up to purgeChunk per transaction): a human one on a copy with no human
// open yet gets its open (flagByClick). It returns the time of the
// earliest click still pending (0: none).
func (w *hitTx) settle(now time.Time) (uint64, error) {
	due := ts(now.Add(-classify.HoneypotWindow))
	cur := w.ct.pending.Cursor()
	var done [][]byte
	for k, v := cur.First(); k != nil; k, v = cur.Next() {
		if len(k) != 16 {
			done = append(done, append([]byte(nil), k...))
			continue
		}
		if beU64(k) > due || len(done) >= purgeChunk {
			for _, d := range done {
				if err := w.ct.pending.Delete(d); err != nil {
					return 0, err
				}
			}
			return beU64(k), nil
		}
		if err := w.settleClick(string(v), k, true); err != nil {
			return 0, err
		}
		done = append(done, append([]byte(nil), k...))
	}
	for _, d := range done {
		if err := w.ct.pending.Delete(d); err != nil {
			return 0, err
		}
	}
	return 0, nil
}

// settleClick settles the click of copy id at tsq: a person's click on a
// link of a copy with no human open yet stores the open it makes; with
// events, message.clicked (and message.opened for that open) go to the
// webhook endpoints, with the verdict that stands now (human_only keeps
// machine clicks from them). The honeypot makes no event.
func (w *hitTx) settleClick(id string, tsq []byte, events bool) error {
	v := w.ct.clicks.Get(prefixed(id, tsq))
	c := w.copy(id)
	if v == nil || c == nil {
		return nil // purged meanwhile
	}
	r, err := decodeClick(v)
	if err != nil || r.Link == 0 {
		return nil
	}
	at := beU64(tsq)
	human := r.Flags&flagBot == 0
	if human && c.FirstHumanOpen.IsZero() {
		h := Hit{TrackingID: id, At: fromTS(at), IP: r.IP, UserAgent: r.UserAgent, Reason: ReasonByClick,
			Country: r.Country, City: r.City}
		o, err := w.storeOpen(&h, c, at, flagByClick)
		if err != nil {
			return err
		}
		w.touched[id] = c
		w.changes = append(w.changes, Change{Kind: ChangeOpen, TrackingID: id, At: fromTS(at)})
		if events {
			err := w.hooks.emit(webhook.Opened, h.At, true, func() ([]byte, error) {
				return withMessage(openOf(&c.Copy, at, &o), c.message())
			})
			if err != nil {
				return err
			}
		}
	}
	if !events {
		return nil
	}
	return w.hooks.emit(webhook.Clicked, fromTS(at), human, func() ([]byte, error) {
		url, _ := linkURL(w.ct.links.Get(linksKey(c.QueueID, c.TrackingID)), r.Link)
		return withMessage(clickOf(c, url, at, &r), c.message())
	})
}

// settleDue settles the clicks that are due, inside the batch's
// transaction (writer only).
func (s *Store) settleDue(w *hitTx, now time.Time) error {
	if w.pendingAt == 0 || fromTS(w.pendingAt).Add(classify.HoneypotWindow).After(now) {
		return nil
	}
	next, err := w.settle(now)
	w.pendingAt = next
	return err
}

// armSettle sets t to fire when the earliest pending click is due
// (writer only).
func (s *Store) armSettle(t *time.Timer) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	if s.pendingAt == 0 {
		return
	}
	t.Reset(max(fromTS(s.pendingAt).Add(classify.HoneypotWindow).Sub(s.now())+10*time.Millisecond, time.Millisecond))
}

// loadPending finds the earliest click not settled yet (OpenStore).
func (s *Store) loadPending() error {
	return s.view(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bClicksPending).Cursor().First(); len(k) == 16 {
			s.pendingAt = max(beU64(k), 1)
		}
		return nil
	})
}

// ReasonByClick is the reason of an open a human click made (settle);
// ReasonClickMachine the reason it gets when a reclassify finds that click
// a machine's.
const (
	ReasonByClick      = "human click on a link (the pixel was not fetched)"
	ReasonClickMachine = "the click that counted as this open is a machine's"
)

// clipClick shortens oversized fields of a click, as clip does a hit's.
func clipClick(h *ClickHit) {
	h.UserAgent = clipString(h.UserAgent, maxUserAgent)
	for _, p := range []*string{&h.IP, &h.BotType, &h.Country, &h.City} {
		*p = clipString(*p, maxField)
	}
	h.Reason = clipString(h.Reason, maxReason)
}

// reclassifyClicks classifies again the clicks of the copies that have a
// click at or after since: the open rules (judge) give each click its base
// verdict, then the click rules the final one; the copy's counters, first
// flags and FirstHumanClick follow, and a copy whose human click now
// stands with no human open gets its open as at settle (the opens pass
// that follows judges the opens clicks made by their clicks).
func (s *Store) reclassifyClicks(ctx context.Context, since time.Time, judge Judge, res *ReclassifyResult) error {
	ids, err := s.copiesWithClicksSince(ts(since))
	if err != nil {
		return err
	}
	for len(ids) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(len(ids), reclassifyChunk)
		chunk := ids[:n]
		ids = ids[n:]
		part := ReclassifyResult{Before: map[string]int{}, After: map[string]int{}}
		err := s.update(func(tx *bolt.Tx) error {
			part = ReclassifyResult{Before: map[string]int{}, After: map[string]int{}}
			w := newHitTx(tx, nil)
			for _, id := range chunk {
				if err := w.reclassifyCopyClicks(id, ts(since), judge, &part); err != nil {
					return err
				}
			}
			return w.finish()
		})
		if err != nil {
			return err
		}
		res.add(part)
	}
	return nil
}

// copiesWithClicksSince lists the tracking ids with a click at or after
// since, from the time index.
func (s *Store) copiesWithClicksSince(since uint64) ([]string, error) {
	var ids []string
	err := s.view(func(tx *bolt.Tx) error {
		seen := map[string]bool{}
		c := tx.Bucket(bClicksByTime).Cursor()
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

// reclassifyCopyClicks re-examines one copy's clicks (see
// reclassifyClicks); res counts those at or after since.
func (w *hitTx) reclassifyCopyClicks(id string, since uint64, judge Judge, res *ReclassifyResult) error {
	c := w.copy(id)
	if c == nil {
		return nil // purged meanwhile, or damaged
	}
	cs := clicksOf(w.ct.clicks, id, 0)
	if len(cs) == 0 {
		return nil
	}
	fetches := make([]classify.Fetch, len(cs))
	for i := range cs {
		ip, _ := netip.ParseAddr(cs[i].rec.IP)
		fetches[i] = classify.Fetch{At: fromTS(cs[i].at), IP: ip, UserAgent: cs[i].rec.UserAgent, Old: baseOf(&cs[i].rec)}
	}
	bases := judge(c.SentAt, fetches)
	rules := make([]classify.Click, len(cs))
	for i := range cs {
		rules[i] = classify.Click{At: fetches[i].At, IP: fetches[i].IP, Link: cs[i].rec.Link, Base: fetches[i].Old}
		if i < len(bases) {
			rules[i].Base = bases[i]
		}
		if rules[i].Base.Proxy != "" {
			rules[i].Base = classify.Result{Reason: rules[i].Base.Reason}
		}
	}
	verdicts := classify.ClickRules(rules)
	res.Copies++
	for i := range cs {
		if cs[i].at < since {
			continue
		}
		old := verdictOfClick(&cs[i].rec)
		res.Examined++
		res.Before[classify.Label(old)]++
		res.After[classify.Label(verdicts[i])]++
		if classify.Label(old) == classify.Label(verdicts[i]) && old.Reason == verdicts[i].Reason {
			continue
		}
		res.Changed++
		w.countClick(c, cs[i].at, &cs[i].rec, -1)
		v := verdicts[i]
		cs[i].rec.Flags &^= flagBot | flagRuled
		cs[i].rec.BotType, cs[i].rec.Reason = v.BotType, v.Reason
		if v.Bot {
			cs[i].rec.Flags |= flagBot
			if !rules[i].Base.Bot {
				cs[i].rec.Flags |= flagRuled // a click rule's: its base was human
			}
		}
		w.countClick(c, cs[i].at, &cs[i].rec, +1)
		if err := w.putClick(id, c, &cs[i]); err != nil {
			return err
		}
	}
	w.touched[id] = c
	if err := w.fixFirstClick(id, c, cs, cs[0].at); err != nil {
		return err
	}
	if c.FirstHumanClick.IsZero() || !c.FirstHumanOpen.IsZero() {
		return nil
	}
	tsq := timeSeqOf(cs, c.FirstHumanClick)
	if tsq == nil || w.ct.pending.Get(tsq) != nil {
		return nil // not settled yet: settle will see to it
	}
	return w.settleClick(id, tsq, false) // a reclassify sends no events
}

// verdictOfClick is a stored click's verdict.
func verdictOfClick(r *clickRec) classify.Result {
	return classify.Result{Bot: r.Flags&flagBot != 0, BotType: r.BotType, Reason: r.Reason}
}

// timeSeqOf returns the clicked(8) seq(8) of the click at t among cs.
func timeSeqOf(cs []storedClick, t time.Time) []byte {
	for i := range cs {
		if cs[i].at == ts(t) {
			return cs[i].key[len(cs[i].key)-16:]
		}
	}
	return nil
}

// humanClickAt reports whether copy id has a human click at at (an open
// a click made stands while its click is a person's).
func humanClickAt(tx *bolt.Tx, id string, at uint64) bool {
	prefix := prefixed(id, appendU64(nil, at))
	cur := tx.Bucket(bClicks).Cursor()
	for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
		if r, err := decodeClick(v); err == nil && r.Flags&flagBot == 0 && r.Link != 0 {
			return true
		}
	}
	return false
}
