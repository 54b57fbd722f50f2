package pg

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
	"pixelrelay/tracker/webhook"
)

// txw applies a batch inside one write transaction (holding the write
// lock, so it sees every earlier commit of every process).
type txw struct {
	s       *Store
	ctx     context.Context
	tx      pgx.Tx
	now     time.Time
	dedup   time.Duration
	limit   int
	touched map[string]*copyRow // read once per batch, written by finish
	act     map[time.Time]*store.Activity
	changes []store.Change
	hooks   *hookEvents
}

func (s *Store) newTxw(ctx context.Context, tx pgx.Tx) *txw {
	return &txw{s: s, ctx: ctx, tx: tx, now: s.now().UTC(), dedup: time.Duration(s.dedup.Load()),
		limit: int(s.ipHourly.Load()), touched: map[string]*copyRow{}, act: map[time.Time]*store.Activity{},
		hooks: s.hooks.events(ctx, tx)}
}

// apply runs one request other than a pixel hit (hits: hitsql.go).
func (w *txw) apply(r *request) (outcome, error) {
	switch {
	case r.click != nil:
		o, err := w.click(r.click)
		return outcome{o: o}, err
	case r.add != nil:
		return outcome{}, w.add(r.add)
	case r.upd != nil:
		return w.update(r.upd)
	}
	return outcome{}, nil
}

// copy returns the copy stored under key as changed by this batch; nil
// when unknown.
func (w *txw) copy(key string) (*copyRow, error) {
	if c, ok := w.touched[key]; ok {
		return c, nil
	}
	c, err := getCopy(w.ctx, w.tx, key)
	if err != nil || c == nil {
		return nil, err
	}
	w.touched[key] = c
	return c, nil
}

// activity returns the hourly counts of the hour of t.
func (w *txw) activity(t time.Time) *store.Activity {
	h := t.UTC().Truncate(time.Hour)
	a := w.act[h]
	if a == nil {
		a = &store.Activity{Start: h}
		w.act[h] = a
	}
	return a
}

// add stores the copies not stored yet.
func (w *txw) add(copies []record.Copy) error {
	for _, rc := range copies {
		key := rc.ID()
		if c, err := w.copy(key); err != nil || c != nil {
			if err != nil {
				return err
			}
			continue
		}
		if rc.QueuedAt.IsZero() {
			rc.QueuedAt = w.s.now()
		}
		rc.QueuedAt = rc.QueuedAt.UTC()
		if rc.Status == "" {
			rc.Status = record.StatusQueued
		}
		c := &copyRow{Copy: rc, Key: key}
		if !rc.SentAt.IsZero() && (rc.Status == record.StatusSent || rc.Status == record.StatusFailed) {
			c.DoneAt = rc.SentAt
		}
		if rc.Tracked() && len(rc.Links) > 0 {
			c.LinksKey = rc.QueueID
			if c.LinksKey == "" {
				c.LinksKey = rc.TrackingID
			}
			if err := w.putLinks(c.LinksKey, rc.Links); err != nil {
				return err
			}
		}
		if err := insertCopy(w.ctx, w.tx, c); err != nil {
			return err
		}
		w.touched[key] = c
		w.activity(rc.QueuedAt).Queued++
		w.changes = append(w.changes, store.Change{Kind: store.ChangeCopy, TrackingID: key, At: rc.QueuedAt, Status: rc.Status})
	}
	return nil
}

// putLinks stores a message's link URLs once.
func (w *txw) putLinks(owner string, urls []string) error {
	var b pgx.Batch
	for i, u := range urls {
		b.Queue("INSERT INTO links (owner, n, url) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", owner, i+1, u)
	}
	return w.tx.SendBatch(w.ctx, &b).Close()
}

// statusEvent is the webhook event of a copy entering a delivery state.
var statusEvent = map[string]string{
	record.StatusSent:     webhook.Sent,
	record.StatusDeferred: webhook.Deferred,
	record.StatusFailed:   webhook.Bounced,
}

// update sets a copy's delivery state.
func (w *txw) update(u *update) (outcome, error) {
	c, err := w.copy(u.id)
	if err != nil {
		return outcome{}, err
	}
	if c == nil {
		return outcome{err: fmtErr("%w: %s", record.ErrNotFound, u.id)}, nil
	}
	at := u.at
	if at.IsZero() {
		at = w.s.now()
	}
	at = at.UTC()
	if u.status == c.Status && u.lastError == c.LastError &&
		(u.status == record.StatusFailed || (u.status == record.StatusSent && c.SentAt.Equal(at))) {
		return outcome{}, nil // a restart reports final states again
	}
	was := c.Status
	c.Status, c.LastError, c.DoneAt = u.status, u.lastError, time.Time{}
	switch u.status {
	case record.StatusSent:
		if c.SentAt.IsZero() {
			w.activity(at).Sent++
		}
		c.SentAt, c.DoneAt = at, at
	case record.StatusFailed:
		c.DoneAt = at
	}
	w.changes = append(w.changes, store.Change{Kind: store.ChangeStatus, TrackingID: u.id, At: at, Status: u.status})
	if _, err := w.tx.Exec(w.ctx, "INSERT INTO copy_events (copy, at, status, error) VALUES ($1, $2, $3, $4)",
		u.id, at, u.status, u.lastError); err != nil {
		return outcome{}, err
	}
	if typ := statusEvent[u.status]; typ != "" && u.status != was {
		m := c.message()
		return outcome{}, w.hooks.emit(typ, at, true, func() ([]byte, error) { return store.Marshal(m) })
	}
	return outcome{}, nil
}

// writeCopies writes the batch's changed copies.
func (w *txw) writeCopies() error {
	var b pgx.Batch
	for _, c := range w.touched {
		b.Queue(`UPDATE copies SET sent_at = $2, done_at = $3, status = $4, last_error = $5,
		opens_total = $6, opens_human = $7, first_human_open = $8, clicks_total = $9, clicks_human = $10,
		first_human_click = $11 WHERE key = $1`,
			c.Key, ptr(c.SentAt), ptr(c.DoneAt), c.Status, c.LastError, c.OpensTotal, c.OpensHuman, ptr(c.FirstHumanOpen),
			c.ClicksTotal, c.ClicksHuman, ptr(c.FirstHumanClick))
	}
	if b.Len() == 0 {
		return nil
	}
	return w.tx.SendBatch(w.ctx, &b).Close()
}

// finish writes the batch's copies and hourly counts.
func (w *txw) finish() error {
	if err := w.writeCopies(); err != nil {
		return err
	}
	var b pgx.Batch
	for h, a := range w.act {
		b.Queue(`INSERT INTO activity AS a (hour, opens_human, opens_machine, clicks_human, clicks_machine, queued, sent, first_human)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (hour) DO UPDATE SET
			opens_human = a.opens_human + excluded.opens_human, opens_machine = a.opens_machine + excluded.opens_machine,
			clicks_human = a.clicks_human + excluded.clicks_human, clicks_machine = a.clicks_machine + excluded.clicks_machine,
			queued = a.queued + excluded.queued, sent = a.sent + excluded.sent, first_human = a.first_human + excluded.first_human`,
			h, a.OpensHuman, a.OpensMachine, a.ClicksHuman, a.ClicksMachine, a.Queued, a.Sent, a.FirstHuman)
	}
	if b.Len() == 0 {
		return nil
	}
	return w.tx.SendBatch(w.ctx, &b).Close()
}
