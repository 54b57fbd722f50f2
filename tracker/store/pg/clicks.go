package pg

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"

	"pixelrelay/tracker/classify"
	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
	"pixelrelay/tracker/webhook"
)

// Clicks are kept as in the bbolt engine (see package store): dedup per
// copy, link, IP and user agent, the per-IP limit shared with opens, the
// click rules applied to the copy's recent clicks at each new one, and a
// click settled once classify.HoneypotWindow has passed (a human click on
// a copy without a human open stores its open then, and message.clicked
// is emitted with the verdict that stands).

// maxJudged bounds the clicks the rules look at around a new one.
const maxJudged = 64

// LinkOf returns the URL of link n of tracked copy id ("" for the
// honeypot, link 0) and when the copy was sent.
func (s *Store) LinkOf(id string, n int) (url string, sentAt time.Time, found bool, err error) {
	if record.IsUntrackedID(id) || n < 0 {
		return "", time.Time{}, false, nil
	}
	ctx := context.Background()
	var lk string
	var sent *time.Time
	err = s.pool.QueryRow(ctx, "SELECT links_key, sent_at FROM copies WHERE key = $1", id).Scan(&lk, &sent)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && lk == "") {
		return "", time.Time{}, false, nil
	}
	if err != nil {
		return "", time.Time{}, false, err
	}
	if n == 0 {
		return "", val(sent), true, nil
	}
	err = s.pool.QueryRow(ctx, "SELECT url FROM links WHERE owner = $1 AND n = $2", lk, n).Scan(&url)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", time.Time{}, false, nil
	}
	return url, val(sent), err == nil, err
}

// hasLink reports whether copy c has link n (the honeypot whenever it
// has links).
func (w *txw) hasLink(c *copyRow, n int) (bool, error) {
	if c.LinksKey == "" || n < 0 {
		return false, nil
	}
	if n == 0 {
		return true, nil
	}
	var ok bool
	err := w.tx.QueryRow(w.ctx, "SELECT EXISTS (SELECT 1 FROM links WHERE owner = $1 AND n = $2)", c.LinksKey, n).Scan(&ok)
	return ok, err
}

// click stores one click unless its copy or link is unknown, it is a
// duplicate or its IP is over the limit, and applies the click rules.
func (w *txw) click(h *store.ClickHit) (store.HitOutcome, error) {
	if h.At.IsZero() {
		h.At = w.s.now()
	}
	h.At = h.At.UTC()
	store.ClipClick(h)
	c, err := w.copy(h.TrackingID)
	if err != nil || c == nil || !c.Tracked() {
		return store.HitUnknown, err
	}
	if ok, err := w.hasLink(c, h.Link); !ok || err != nil {
		return store.HitUnknown, err
	}
	if o, err := w.admit(h.TrackingID, h.Link, h.IP, h.UserAgent, h.At); o != store.HitStored || err != nil {
		return o, err
	}
	first := !h.Bot && h.Link != 0 && c.FirstHumanClick.IsZero()
	_, err = w.tx.Exec(w.ctx, `INSERT INTO clicks (copy, link, at, ip, user_agent, bot, bot_type, reason,
		base_bot, base_type, base_reason, country, city, first) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $6, $7, $8, $9, $10, $11)`,
		h.TrackingID, h.Link, h.At, h.IP, h.UserAgent, h.Bot, h.BotType, h.Reason, h.Country, h.City, first)
	if err != nil {
		return store.HitFailed, err
	}
	if first {
		c.FirstHumanClick = h.At
	}
	c.ClicksTotal++
	w.countClick(c, h.At, h.Bot, 1)
	if err := w.judgeRecent(c, h.At); err != nil {
		return store.HitFailed, err
	}
	w.changes = append(w.changes, store.Change{Kind: store.ChangeClick, TrackingID: h.TrackingID, At: h.At, Bot: h.Bot})
	return store.HitStored, nil
}

// countClick adds d human or machine clicks at at to the counters.
func (w *txw) countClick(c *copyRow, at time.Time, bot bool, d int) {
	act := w.activity(at)
	if bot {
		act.ClicksMachine += d
		return
	}
	c.ClicksHuman += d
	act.ClicksHuman += d
}

// storedClick is a click read back for the rules.
type storedClick struct {
	seq                  int64
	at                   time.Time
	link                 int
	ip                   string
	bot, ruled, first    bool
	baseBot              bool
	baseType, baseReason string
}

// judgeRecent applies the click rules to the copy's clicks of the last
// 2 × HoneypotWindow up to at, turning those of the last HoneypotWindow
// they show to be a machine's, and fixes the first human click.
func (w *txw) judgeRecent(c *copyRow, at time.Time) error {
	rows, err := w.tx.Query(w.ctx, `SELECT seq, at, link, ip, bot, ruled, first, base_bot, base_type, base_reason FROM
		(SELECT * FROM clicks WHERE copy = $1 AND at >= $2 ORDER BY at DESC, seq DESC LIMIT $3) r ORDER BY at, seq`,
		c.Key, at.Add(-2*classify.HoneypotWindow), maxJudged)
	if err != nil {
		return err
	}
	cs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storedClick, error) {
		var k storedClick
		err := r.Scan(&k.seq, &k.at, &k.link, &k.ip, &k.bot, &k.ruled, &k.first, &k.baseBot, &k.baseType, &k.baseReason)
		return k, err
	})
	if err != nil || len(cs) < 2 {
		return err
	}
	in := make([]classify.Click, len(cs))
	for i, k := range cs {
		ip, _ := netip.ParseAddr(k.ip)
		in[i] = classify.Click{At: k.at, IP: ip, Link: k.link,
			Base: classify.Result{Bot: k.baseBot, BotType: k.baseType, Reason: k.baseReason}}
	}
	verdicts := classify.ClickRules(in)
	changed := false
	for i, k := range cs {
		v := verdicts[i]
		if k.at.Add(classify.HoneypotWindow).Before(at) || !v.Bot || k.bot {
			continue
		}
		w.countClick(c, k.at, false, -1)
		w.countClick(c, k.at, true, 1)
		if _, err := w.tx.Exec(w.ctx, "UPDATE clicks SET bot = true, ruled = true, bot_type = $2, reason = $3 WHERE seq = $1",
			k.seq, v.BotType, v.Reason); err != nil {
			return err
		}
		cs[i].bot = true
		changed = true
	}
	if !changed {
		return nil
	}
	return w.fixFirstClick(c, cs, at.Add(-classify.HoneypotWindow))
}

// fixFirstClick moves the first flag to the first human click among cs
// when the copy's first human click is not older than since.
func (w *txw) fixFirstClick(c *copyRow, cs []storedClick, since time.Time) error {
	if !c.FirstHumanClick.IsZero() && c.FirstHumanClick.Before(since) {
		return nil
	}
	first := -1
	for i := range cs {
		if !cs[i].bot && cs[i].link != 0 {
			first = i
			break
		}
	}
	c.FirstHumanClick = time.Time{}
	if first >= 0 {
		c.FirstHumanClick = cs[first].at
	}
	for i := range cs {
		if cs[i].first != (i == first) {
			if _, err := w.tx.Exec(w.ctx, "UPDATE clicks SET first = $2 WHERE seq = $1", cs[i].seq, i == first); err != nil {
				return err
			}
		}
	}
	return nil
}

// settleChunk is the most clicks one batch settles.
const settleChunk = 500

// settle settles the clicks stored at least HoneypotWindow ago: a human
// click on a link of a copy with no human open stores the open it makes,
// and message.clicked goes out with the verdict that stands.
func (w *txw) settle() error {
	rows, err := w.tx.Query(w.ctx, `UPDATE clicks SET settled = true WHERE seq IN
		(SELECT seq FROM clicks WHERE NOT settled AND at <= $1 ORDER BY at LIMIT $2)
		RETURNING copy, link, at, ip, user_agent, bot, bot_type, reason, first, country, city`,
		w.now.Add(-classify.HoneypotWindow), settleChunk)
	if err != nil {
		return err
	}
	due, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Click, error) {
		var k store.Click
		err := r.Scan(&k.TrackingID, &k.Link, &k.ClickedAt, &k.IP, &k.UserAgent, &k.Bot, &k.BotType, &k.Reason, &k.First, &k.Country, &k.City)
		k.ClickedAt = k.ClickedAt.UTC()
		return k, err
	})
	if err != nil {
		return err
	}
	for i := range due {
		if err := w.settleClick(&due[i]); err != nil {
			return err
		}
	}
	return nil
}

func (w *txw) settleClick(k *store.Click) error {
	c, err := w.copy(k.TrackingID)
	if err != nil || c == nil || k.Link == 0 {
		return err
	}
	if !k.Bot && c.FirstHumanOpen.IsZero() {
		h := store.Hit{TrackingID: k.TrackingID, At: k.ClickedAt, IP: k.IP, UserAgent: k.UserAgent,
			Reason: store.ReasonByClick, Country: k.Country, City: k.City}
		if err := w.storeOpen(&h, c, true); err != nil {
			return err
		}
		w.changes = append(w.changes, store.Change{Kind: store.ChangeOpen, TrackingID: k.TrackingID, At: k.ClickedAt})
	}
	if !w.hooks.any() {
		return nil
	}
	if err := w.tx.QueryRow(w.ctx, "SELECT url FROM links WHERE owner = $1 AND n = $2", c.LinksKey, k.Link).Scan(&k.URL); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	k.Recipient, k.Subject = c.Recipient, c.Subject
	ck, m := *k, c.message()
	return w.hooks.emit(webhook.Clicked, k.ClickedAt, !k.Bot, func() ([]byte, error) { return store.WithMessage(ck, m) })
}
