package store

import (
	"encoding/binary"
	"fmt"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"pixelrelay/tracker/record"
	"pixelrelay/tracker/webhook"
)

// request is one hit, one copy's delivery state (upd) or a flush marker
// for the writer.
type request struct {
	hit    Hit
	click  *ClickHit
	upd    *statusUpdate
	add    []record.Copy
	reg    *registration // split.go
	imp    []Hit         // split.go
	impRes *ImportResult
	flush  bool
	done   chan result // nil for Enqueue
}

// isHit reports whether r is a pixel hit (not a click, an update, an
// addition, a registration, an import or a flush).
func (r *request) isHit() bool {
	return !r.flush && r.upd == nil && r.add == nil && r.reg == nil && r.imp == nil && r.click == nil
}

// statusUpdate is a copy's new delivery state (Update).
type statusUpdate struct {
	id, status, lastError string
	at                    time.Time
}

type result struct {
	stored bool
	err    error
}

// HitOutcome is what became of a hit (Options.OnHit).
type HitOutcome uint8

// Outcomes of a hit.
const (
	HitStored    HitOutcome = iota // stored as an open
	HitDuplicate                   // same copy, IP and user agent within the dedup window
	HitLimited                     // its IP is over ip_hourly_limit (or the limiter is full)
	HitUnknown                     // no such copy (purged, or never recorded)
	HitFailed                      // the batch could not be committed
)

func (o HitOutcome) String() string {
	switch o {
	case HitStored:
		return "stored"
	case HitDuplicate:
		return "duplicate"
	case HitLimited:
		return "limited"
	case HitUnknown:
		return "unknown"
	case HitEarly:
		return "early"
	}
	return "failed"
}

// Record stores a hit and waits until its batch is committed. stored is
// false for an unknown tracking id, a duplicate (same id, IP and user agent
// within the dedup window) or an IP over its hourly limit.
func (s *Store) Record(h Hit) (stored bool, err error) {
	done := make(chan result, 1)
	if err := s.send(request{hit: h, done: done}); err != nil {
		return false, err
	}
	r := <-done
	return r.stored, r.err
}

// Enqueue hands a hit to the writer without waiting for it to be
// committed; use it where the caller answers immediately anyway (the pixel
// handler). Hits that fail to commit are counted in Stats().Dropped. It
// blocks only while QueueSize hits are already waiting.
func (s *Store) Enqueue(h Hit) error {
	return s.send(request{hit: h})
}

// Flush waits until every hit sent before it is committed.
func (s *Store) Flush() error {
	done := make(chan result, 1)
	if err := s.send(request{flush: true, done: done}); err != nil {
		return err
	}
	return (<-done).err
}

func (s *Store) send(r request) error {
	s.sendMu.RLock()
	defer s.sendMu.RUnlock()
	if s.closed {
		if r.isHit() {
			s.dropped.Add(1)
		}
		return ErrClosed
	}
	s.in <- r
	return nil
}

// writer is the single goroutine that commits hits.
func (s *Store) writer() {
	defer close(s.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	settle := time.NewTimer(time.Hour)
	defer settle.Stop()
	var batch []request
	for {
		s.armSettle(settle)
		select {
		case r := <-s.in:
			batch = append(batch[:0], r)
		case <-settle.C:
			batch = append(batch[:0], request{flush: true}) // a transaction that settles clicks
		case <-s.stop:
			s.commitAll(s.drain(batch[:0]))
			return
		}
		batch = s.collect(batch, timer)
		s.commitAll(batch)
	}
}

// collect adds waiting hits to batch, up to MaxBatch, waiting at most
// BatchDelay after the first.
func (s *Store) collect(batch []request, timer *time.Timer) []request {
	waiting := false
	defer func() {
		if waiting {
			timer.Stop()
		}
	}()
	for len(batch) < s.opt.MaxBatch {
		select {
		case r := <-s.in:
			batch = append(batch, r)
			continue
		default:
		}
		if s.opt.BatchDelay < 0 {
			return batch
		}
		if !waiting {
			timer.Reset(s.opt.BatchDelay)
			waiting = true
		}
		select {
		case r := <-s.in:
			batch = append(batch, r)
		case <-timer.C:
			waiting = false
			return batch
		case <-s.stop:
			return batch
		}
	}
	return batch
}

// drain takes every request still queued; senders are gone after Close.
func (s *Store) drain(batch []request) []request {
	for {
		select {
		case r := <-s.in:
			batch = append(batch, r)
		default:
			return batch
		}
	}
}

// commitAll commits batch in MaxBatch chunks. While a compaction holds
// wmu, incoming hits are kept in memory and committed after it.
func (s *Store) commitAll(batch []request) {
	if len(batch) == 0 {
		return
	}
	tick := time.NewTicker(5 * time.Millisecond)
	for !s.wmu.TryRLock() {
		select {
		case r := <-s.in:
			batch = append(batch, r)
		case <-tick.C:
		}
	}
	tick.Stop()
	defer s.wmu.RUnlock()
	for len(batch) > 0 {
		n := min(len(batch), s.opt.MaxBatch)
		s.commit(batch[:n])
		clear(batch[:n])
		batch = batch[n:]
	}
}

// commit stores one batch in one write transaction and answers waiters.
func (s *Store) commit(batch []request) {
	outcome := make([]HitOutcome, len(batch))
	errs := make([]error, len(batch)) // per request: an Update's unknown id
	dedup := time.Duration(s.dedup.Load())
	limit := int(s.ipHourly.Load())
	now := s.now()
	if now.Sub(s.lim.lastSweep) >= time.Minute || now.Before(s.lim.lastSweep) {
		s.lim.sweep(now, dedup)
	}
	var changes []Change
	var hooks *hookEvents
	var pendingAt uint64
	err := s.updateLocked(func(tx *bolt.Tx) error {
		w := newHitTx(tx, s.lim)
		hooks = s.newHookEvents(tx)
		w.hooks = hooks
		w.split = s.newSplitTx(tx)
		w.pendingAt = s.pendingAt
		w.recent = &s.recent
		for i := range batch {
			if batch[i].flush {
				continue
			}
			if u := batch[i].upd; u != nil {
				errs[i] = w.update(u, s.now)
				continue
			}
			if batch[i].add != nil {
				if err := w.add(batch[i].add, s.now); err != nil {
					return err
				}
				continue
			}
			if r := batch[i].reg; r != nil {
				if err := w.register(r, s.now); err != nil {
					return err
				}
				continue
			}
			if batch[i].imp != nil {
				if err := w.importHits(batch[i].imp, batch[i].impRes, s.now); err != nil {
					return err
				}
				continue
			}
			var o HitOutcome
			var err error
			if batch[i].click != nil {
				o, err = w.applyClick(batch[i].click, s.now, dedup, limit)
			} else {
				o, err = w.apply(&batch[i].hit, s.now, dedup, limit)
			}
			if err != nil {
				return err
			}
			outcome[i] = o
		}
		if err := s.settleDue(w, now); err != nil {
			return err
		}
		err := w.finish()
		changes, pendingAt = w.changes, w.pendingAt
		return err
	})
	if err != nil {
		s.lim.rollback()
		hits := 0
		for i := range batch {
			if batch[i].isHit() || batch[i].click != nil {
				hits++
			}
		}
		s.dropped.Add(int64(hits))
		s.log.Error("store: hits not stored", "count", hits, "err", err)
	} else {
		s.lim.commit()
		s.feed.publish(changes)
		hooks.wake()
		s.pendingAt = pendingAt
	}
	s.reportRefused(now)
	for i, r := range batch {
		isHit := r.isHit()
		if err != nil {
			outcome[i] = HitFailed
		}
		if isHit && s.opt.OnHit != nil {
			s.opt.OnHit(outcome[i], &batch[i].hit)
		}
		if r.click != nil && s.opt.OnClick != nil {
			s.opt.OnClick(outcome[i], r.click)
		}
		if r.done != nil {
			e := err
			if e == nil {
				e = errs[i]
			}
			r.done <- result{stored: outcome[i] == HitStored && err == nil, err: e}
		}
	}
}

// reportRefused publishes the limiter's refused count for Stats and, at
// most once a minute, warns about the hits it refused since the last
// warning. Called by the writer after each commit.
func (s *Store) reportRefused(now time.Time) {
	total := s.lim.refused
	s.refused.Store(total)
	n := total - s.refusedWarned
	last := s.refusedWarnAt
	if n <= 0 || (!last.IsZero() && !now.Before(last) && now.Sub(last) < time.Minute) {
		return
	}
	opens := "opens"
	if n == 1 {
		opens = "open"
	}
	span := ""
	if !last.IsZero() && now.After(last) {
		span = " in the last " + now.Sub(last).Round(time.Second).String()
	}
	s.log.Warn(fmt.Sprintf("tracker limiter full: %d %s not stored%s; a flood from many addresses?", n, opens, span),
		"refused_total", total, "dedup_entries", len(s.lim.dedup), "max_dedup", s.lim.maxDedup,
		"ips", len(s.lim.ips), "max_ips", s.lim.maxIPs)
	s.refusedWarned, s.refusedWarnAt = total, now
}

// hitTx applies hits inside one write transaction.
type hitTx struct {
	tx                                            *bolt.Tx
	copies, unopened, opens, byTime, byRcpt, meta *bolt.Bucket
	byQueued, copiesByRcpt, events                *bolt.Bucket
	ct                                            clickTx
	lim                                           *limiter
	hooks                                         *hookEvents // webhook events; nil: no endpoints
	split                                         *splitTx    // nil: no split deployment (split.go)
	dOpens, dHuman, dCopies, dUntracked           int64
	dClicks, dClicksHuman                         int64
	pendingAt                                     uint64        // the earliest click not settled (0: none)
	recent                                        *recentClicks // the writer's; nil outside it
	// touched holds the copies changed in this batch; they are written
	// once, by finish, however many hits they got.
	touched map[string]*copyRec
	act     activityDelta  // hourly counts of this batch (activity.go)
	nEvents map[string]int // events per copy, as counted in this batch
	changes []Change       // for live views, published after the commit
}

func newHitTx(tx *bolt.Tx, lim *limiter) *hitTx {
	return &hitTx{
		tx:     tx,
		copies: tx.Bucket(bCopies), unopened: tx.Bucket(bUnopened),
		opens: tx.Bucket(bOpens), byTime: tx.Bucket(bOpensByTime), byRcpt: tx.Bucket(bOpensByRcpt),
		meta: tx.Bucket(bMeta), lim: lim, touched: map[string]*copyRec{},
		byQueued: tx.Bucket(bCopiesByTime), copiesByRcpt: tx.Bucket(bCopiesByRcpt),
		events: tx.Bucket(bEvents), act: activityDelta{}, nEvents: map[string]int{},
		ct: newClickTx(tx),
	}
}

// apply stores one hit unless it is unknown, a duplicate or over the limit.
func (w *hitTx) apply(h *Hit, now func() time.Time, dedup time.Duration, limit int) (HitOutcome, error) {
	if h.At.IsZero() {
		h.At = now()
	}
	clip(h)
	c := w.copy(h.TrackingID)
	if (c == nil && !w.split.keepsEarly()) || (c != nil && !c.Tracked()) {
		return HitUnknown, nil
	}
	dk := keyOf(h.TrackingID, h.IP, h.UserAgent)
	if dedup > 0 && w.lim.duplicate(dk, h.At, dedup) {
		return HitDuplicate, nil
	}
	slot := minute(h.At)
	if limit > 0 && h.IP != "" && w.lim.ipCount(h.IP, slot) >= limit {
		return HitLimited, nil
	}
	at := ts(h.At)
	if c == nil {
		if err := w.split.keepEarly(h, at); err != nil {
			return HitFailed, err
		}
		w.lim.note(dk, h.IP, at, slot)
		return HitEarly, nil
	}
	o, err := w.store(h, c, at)
	if err != nil {
		return HitFailed, err
	}
	if err := w.emitOpen(h, c, at, &o); err != nil {
		return HitFailed, err
	}
	if err := w.split.fed(h, at); err != nil {
		return HitFailed, err
	}
	w.touched[h.TrackingID] = c
	w.lim.note(dk, h.IP, at, slot)
	w.changes = append(w.changes, Change{Kind: ChangeOpen, TrackingID: h.TrackingID, At: fromTS(at), Bot: h.Bot})
	return HitStored, nil
}

// emitOpen writes the message.opened webhook event of an open just stored.
func (w *hitTx) emitOpen(h *Hit, c *copyRec, at uint64, o *openRec) error {
	return w.hooks.emit(webhook.Opened, h.At, !h.Bot, func() ([]byte, error) {
		return withMessage(openOf(&c.Copy, at, o), c.message())
	})
}

// update sets a copy's delivery state; the copy is written once, by
// finish, with whatever hits it also got in this batch.
func (w *hitTx) update(u *statusUpdate, now func() time.Time) error {
	c := w.copy(u.id)
	if c == nil {
		if w.copies.Get([]byte(u.id)) != nil {
			return fmt.Errorf("store: copy %s: unreadable record", u.id)
		}
		return fmt.Errorf("%w: %s", ErrNotFound, u.id)
	}
	at := u.at
	if at.IsZero() {
		at = now()
	}
	at = at.UTC()
	if finalAgain(c, u, at) {
		return nil // a restart reports final states again: nothing happened
	}
	was := c.Status
	c.Status, c.LastError = u.status, u.lastError
	c.DoneAt = time.Time{}
	switch u.status {
	case record.StatusSent:
		if c.SentAt.IsZero() {
			w.activity(at).Sent++
		}
		c.SentAt = at
		c.DoneAt = at
	case record.StatusFailed:
		c.DoneAt = at
	}
	w.touched[u.id] = c
	if err := w.split.markOut(u.id); err != nil {
		return err
	}
	w.changes = append(w.changes, Change{Kind: ChangeStatus, TrackingID: u.id, At: at, Status: u.status})
	if err := w.noteEvent(u.id, Event{At: at, Status: u.status, Error: u.lastError}); err != nil {
		return err
	}
	if typ := statusEvent[u.status]; typ != "" && u.status != was {
		return w.hooks.emit(typ, at, true, func() ([]byte, error) { return marshal(c.message()) })
	}
	return nil
}

// finalAgain reports an update that repeats a copy's final state exactly
// (sent at the same time, or failed with the same error).
func finalAgain(c *copyRec, u *statusUpdate, at time.Time) bool {
	if u.status != c.Status || u.lastError != c.LastError {
		return false
	}
	return u.status == record.StatusFailed || (u.status == record.StatusSent && c.SentAt.Equal(at))
}

// statusEvent is the webhook event of a copy entering a delivery state:
// sent once, deferred once (not at every retry), bounced once.
var statusEvent = map[string]string{
	record.StatusSent:     webhook.Sent,
	record.StatusDeferred: webhook.Deferred,
	record.StatusFailed:   webhook.Bounced,
}

// Longest stored user agent and other hit fields, in bytes: a client
// cannot grow the database by sending a huge header.
const (
	maxUserAgent = 1024
	maxField     = 128
	maxReason    = 256
)

// clip shortens oversized fields of a hit (on a UTF-8 boundary).
func clip(h *Hit) {
	h.UserAgent = clipString(h.UserAgent, maxUserAgent)
	for _, p := range []*string{&h.IP, &h.BotType, &h.Proxy, &h.Country, &h.City} {
		*p = clipString(*p, maxField)
	}
	h.Reason = clipString(h.Reason, maxReason)
}

func clipString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// copy returns the copy a hit is for, as changed by earlier hits of the
// batch; nil if unknown or unreadable (a damaged record takes no opens).
func (w *hitTx) copy(id string) *copyRec {
	if c, ok := w.touched[id]; ok {
		return c
	}
	v := w.copies.Get([]byte(id))
	if v == nil {
		return nil
	}
	c, err := decodeCopy(v)
	if err != nil {
		return nil
	}
	return &c
}

// store writes the open and its index entries and counts it in c.
func (w *hitTx) store(h *Hit, c *copyRec, at uint64) (openRec, error) {
	return w.storeOpen(h, c, at, 0)
}

// storeOpen is store with extra flags on the open (flagByClick).
func (w *hitTx) storeOpen(h *Hit, c *copyRec, at uint64, flags byte) (openRec, error) {
	seq, err := w.opens.NextSequence()
	if err != nil {
		return openRec{}, err
	}
	o := openRec{Flags: flags, IP: h.IP, UserAgent: h.UserAgent, BotType: h.BotType, Proxy: h.Proxy, Country: h.Country, City: h.City, Reason: h.Reason}
	if h.Bot {
		o.Flags |= flagBot
	}
	first := !h.Bot && c.FirstHumanOpen.IsZero()
	if first {
		o.Flags |= flagFirst
	}
	rcpt := normAddr(c.Recipient)
	tsq := timeSeq(at, seq)
	puts := []struct {
		b    *bolt.Bucket
		k, v []byte
	}{
		{w.opens, prefixed(h.TrackingID, tsq), encodeOpen(&o)},
		{w.byTime, tsq, timeIndexValue(o.Flags, h.TrackingID, rcpt)},
		{w.byRcpt, prefixed(rcpt, tsq), []byte(h.TrackingID)},
	}
	for _, p := range puts {
		if err := p.b.Put(p.k, p.v); err != nil {
			return o, err
		}
	}
	c.OpensTotal++
	w.dOpens++
	act := w.activity(h.At)
	if h.Bot {
		act.OpensMachine++
	} else {
		c.OpensHuman++
		w.dHuman++
		act.OpensHuman++
	}
	if first {
		act.FirstHuman++
		c.FirstHumanOpen = fromTS(at)
		if err := w.unopened.Delete(copyTimeKey(&c.Copy)); err != nil {
			return o, err
		}
	}
	return o, nil
}

// finish writes the changed copies and the batch's counter changes.
func (w *hitTx) finish() error {
	for id, c := range w.touched {
		if err := w.copies.Put([]byte(id), encodeCopy(c)); err != nil {
			return err
		}
	}
	if err := w.act.flush(w.tx); err != nil {
		return err
	}
	if err := addCounter(w.meta, mCopies, w.dCopies); err != nil {
		return err
	}
	if err := addCounter(w.meta, mUntracked, w.dUntracked); err != nil {
		return err
	}
	for _, c := range []struct {
		name []byte
		d    int64
	}{{mOpens, w.dOpens}, {mOpensHuman, w.dHuman}, {mClicks, w.dClicks}, {mClicksHuman, w.dClicksHuman}} {
		if err := addCounter(w.meta, c.name, c.d); err != nil {
			return err
		}
	}
	return nil
}

// addCounter adds d to a counter in bMeta.
func addCounter(meta *bolt.Bucket, name []byte, d int64) error {
	if d == 0 {
		return nil
	}
	return meta.Put(name, appendU64(nil, uint64(counter(meta, name)+d)))
}

func counter(meta *bolt.Bucket, name []byte) int64 {
	v := meta.Get(name)
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}
