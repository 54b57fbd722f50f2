package pg

import (
	"time"

	"github.com/jackc/pgx/v5"

	"pixelrelay/tracker/store"
	"pixelrelay/tracker/webhook"
)

// The pixel hits of a batch go to PostgreSQL as one pipeline: one
// statement per hit that checks the copy, dedup and the per-IP limit and,
// when the hit passes, stores the open, counts it for dedup and the limit,
// and updates the copy's counters and the hourly counts. The statements run
// in order inside the batch's transaction, each seeing the ones before, so
// two identical hits in one batch store one open; a batch of hits costs
// one round trip instead of several per hit.

// hitSQL is the statement of one hit. $1 copy, $2 at, $3 ip, $4 user
// agent, $5 bot, $6 bot type, $7 proxy, $8 reason, $9 country, $10 city,
// $11 dedup window (0: off), $12 per-IP limit (0: off), $13 the minute of
// at, $14 its hour.
const hitSQL = `WITH c AS (SELECT first_human_open FROM copies WHERE key = $1 AND untracked_reason = ''),
dup AS (SELECT $11::interval > '0' AND EXISTS (SELECT 1 FROM dedup WHERE copy = $1 AND link = -1 AND ip = $3
	AND user_agent = $4 AND last_at > $2::timestamptz - $11::interval) AS v),
lim AS (SELECT $12::int > 0 AND $3 <> '' AND coalesce((SELECT sum(n) FROM ip_minutes WHERE ip = $3
	AND minute > $13::timestamptz - interval '1 hour' AND minute <= $13), 0) >= $12::int AS v),
ok AS (SELECT EXISTS (SELECT 1 FROM c) AND NOT (SELECT v FROM dup) AND NOT (SELECT v FROM lim) AS v),
d AS (INSERT INTO dedup AS x (copy, link, ip, user_agent, last_at) SELECT $1, -1, $3, $4, $2
	WHERE (SELECT v FROM ok) AND $11::interval > '0'
	ON CONFLICT (copy, link, ip, user_agent) DO UPDATE SET last_at = excluded.last_at),
m AS (INSERT INTO ip_minutes AS x (ip, minute, n) SELECT $3, $13, 1 WHERE (SELECT v FROM ok) AND $3 <> ''
	ON CONFLICT (ip, minute) DO UPDATE SET n = x.n + 1),
o AS (INSERT INTO opens (copy, at, ip, user_agent, bot, bot_type, proxy, reason, country, city, first)
	SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NOT $5 AND c.first_human_open IS NULL FROM c WHERE (SELECT v FROM ok)
	RETURNING first),
u AS (UPDATE copies SET opens_total = opens_total + 1, opens_human = opens_human + (NOT $5)::int,
	first_human_open = CASE WHEN NOT $5 AND first_human_open IS NULL THEN $2 ELSE first_human_open END
	WHERE key = $1 AND (SELECT v FROM ok) RETURNING opens_total, opens_human, first_human_open),
a AS (INSERT INTO activity AS x (hour, opens_human, opens_machine, first_human)
	SELECT $14, (NOT $5)::int, $5::int, (NOT $5 AND c.first_human_open IS NULL)::int FROM c WHERE (SELECT v FROM ok)
	ON CONFLICT (hour) DO UPDATE SET opens_human = x.opens_human + excluded.opens_human,
	opens_machine = x.opens_machine + excluded.opens_machine, first_human = x.first_human + excluded.first_human)
SELECT EXISTS (SELECT 1 FROM c), (SELECT v FROM dup), (SELECT v FROM lim), coalesce((SELECT first FROM o), false),
	coalesce((SELECT opens_total FROM u), 0), coalesce((SELECT opens_human FROM u), 0), (SELECT first_human_open FROM u)`

// hitRow is what hitSQL returns.
type hitRow struct {
	known, dup, limited, first bool
	total, human               int
	firstHuman                 *time.Time
}

// hits stores a run of pixel hits (requests rs, all hits) in one
// pipeline and returns their outcomes.
func (w *txw) hits(rs []request) ([]store.HitOutcome, error) {
	if err := w.flushCopies(); err != nil {
		return nil, err
	}
	var b pgx.Batch
	for _, r := range rs {
		h := r.hit
		if h.At.IsZero() {
			h.At = w.s.now()
		}
		h.At = h.At.UTC()
		store.ClipHit(h)
		b.Queue(hitSQL, h.TrackingID, h.At, h.IP, h.UserAgent, h.Bot, h.BotType, h.Proxy, h.Reason, h.Country, h.City,
			w.dedup, w.limit, h.At.Truncate(time.Minute), h.At.Truncate(time.Hour))
	}
	res := w.tx.SendBatch(w.ctx, &b)
	rows := make([]hitRow, len(rs))
	var err error
	for i := range rs {
		x := &rows[i]
		if err = res.QueryRow().Scan(&x.known, &x.dup, &x.limited, &x.first, &x.total, &x.human, &x.firstHuman); err != nil {
			break
		}
	}
	if cerr := res.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	out := make([]store.HitOutcome, len(rs))
	for i, r := range rs {
		if out[i], err = w.hitDone(r.hit, &rows[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// hitDone turns a hit's row into its outcome, its change for live views
// and its webhook event.
func (w *txw) hitDone(h *store.Hit, x *hitRow) (store.HitOutcome, error) {
	switch {
	case !x.known:
		return store.HitUnknown, nil
	case x.dup:
		return store.HitDuplicate, nil
	case x.limited:
		return store.HitLimited, nil
	}
	w.changes = append(w.changes, store.Change{Kind: store.ChangeOpen, TrackingID: h.TrackingID, At: h.At, Bot: h.Bot})
	if w.hooks == nil {
		return store.HitStored, nil
	}
	c, err := w.copy(h.TrackingID)
	if err != nil || c == nil {
		return store.HitStored, err
	}
	m := c.message()
	m.OpensTotal, m.OpensHuman, m.FirstHumanOpen = x.total, x.human, ptr(val(x.firstHuman))
	o := store.Open{TrackingID: c.TrackingID, Recipient: c.Recipient, Subject: c.Subject, MessageID: c.MessageID,
		SentAt: ptr(c.SentAt), OpenedAt: h.At, IP: h.IP, UserAgent: h.UserAgent, Bot: h.Bot, BotType: h.BotType,
		Proxy: h.Proxy, First: x.first, Reason: h.Reason, Country: h.Country, City: h.City}
	return store.HitStored, w.hooks.emit(webhook.Opened, h.At, !h.Bot, func() ([]byte, error) { return store.WithMessage(o, m) })
}

// flushCopies writes the copies changed so far in the batch and forgets
// them, so statements that change copies in the database (hitSQL) start
// from their current state; they are read again when needed.
func (w *txw) flushCopies() error {
	if len(w.touched) == 0 {
		return nil
	}
	if err := w.writeCopies(); err != nil {
		return err
	}
	clear(w.touched)
	return nil
}
