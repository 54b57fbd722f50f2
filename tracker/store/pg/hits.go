package pg

import (
	"time"

	"pixelrelay/tracker/store"
	"pixelrelay/tracker/webhook"
)

// openLink is the dedup table's link for an open (clicks have 0..n).
const openLink = -1

// admit applies the per-IP limit and dedup to a fetch of copy id's link
// (openLink for the pixel) and, when it is to be stored, counts it for
// both: HitStored, HitDuplicate or HitLimited.
func (w *txw) admit(id string, link int, ip, ua string, at time.Time) (store.HitOutcome, error) {
	minute := at.Truncate(time.Minute)
	if w.limit > 0 && ip != "" {
		var n int
		err := w.tx.QueryRow(w.ctx, `SELECT coalesce(sum(n), 0) FROM ip_minutes
			WHERE ip = $1 AND minute > $2 AND minute <= $3`, ip, minute.Add(-time.Hour), minute).Scan(&n)
		if err != nil {
			return store.HitFailed, err
		}
		if n >= w.limit {
			if dup, err := w.duplicate(id, link, ip, ua, at); dup || err != nil {
				return store.HitDuplicate, err
			}
			return store.HitLimited, nil
		}
	}
	if w.dedup > 0 {
		// The row is written only when the fetch is not a duplicate; a
		// concurrent writer (there is none under the write lock, but the
		// unique key holds regardless) would find it.
		tag, err := w.tx.Exec(w.ctx, `INSERT INTO dedup AS d (copy, link, ip, user_agent, last_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (copy, link, ip, user_agent) DO UPDATE SET last_at = excluded.last_at
			WHERE d.last_at <= excluded.last_at - $6::interval`, id, link, ip, ua, at, w.dedup)
		if err != nil {
			return store.HitFailed, err
		}
		if tag.RowsAffected() == 0 {
			return store.HitDuplicate, nil
		}
	}
	if ip != "" {
		_, err := w.tx.Exec(w.ctx, `INSERT INTO ip_minutes AS m (ip, minute, n) VALUES ($1, $2, 1)
			ON CONFLICT (ip, minute) DO UPDATE SET n = m.n + 1`, ip, minute)
		if err != nil {
			return store.HitFailed, err
		}
	}
	return store.HitStored, nil
}

// duplicate reports a stored fetch of the same copy and link from the
// same client within the dedup window.
func (w *txw) duplicate(id string, link int, ip, ua string, at time.Time) (bool, error) {
	if w.dedup <= 0 {
		return false, nil
	}
	var dup bool
	err := w.tx.QueryRow(w.ctx, `SELECT EXISTS (SELECT 1 FROM dedup WHERE copy = $1 AND link = $2 AND ip = $3
		AND user_agent = $4 AND last_at > $5)`, id, link, ip, ua, at.Add(-w.dedup)).Scan(&dup)
	return dup, err
}

// storeOpen writes an open, counts it in its copy and the hourly counts,
// marks the copy's first human open, and emits message.opened.
func (w *txw) storeOpen(h *store.Hit, c *copyRow, byClick bool) error {
	first := !h.Bot && c.FirstHumanOpen.IsZero()
	_, err := w.tx.Exec(w.ctx, `INSERT INTO opens (copy, at, ip, user_agent, bot, bot_type, proxy, reason, country, city, first, by_click)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		h.TrackingID, h.At, h.IP, h.UserAgent, h.Bot, h.BotType, h.Proxy, h.Reason, h.Country, h.City, first, byClick)
	if err != nil {
		return err
	}
	c.OpensTotal++
	act := w.activity(h.At)
	if h.Bot {
		act.OpensMachine++
	} else {
		c.OpensHuman++
		act.OpensHuman++
	}
	if first {
		act.FirstHuman++
		c.FirstHumanOpen = h.At
	}
	o := store.Open{TrackingID: c.TrackingID, Recipient: c.Recipient, Subject: c.Subject, MessageID: c.MessageID,
		SentAt: ptr(c.SentAt), OpenedAt: h.At, IP: h.IP, UserAgent: h.UserAgent, Bot: h.Bot, BotType: h.BotType,
		Proxy: h.Proxy, First: first, Reason: h.Reason, Country: h.Country, City: h.City}
	m := c.message()
	return w.hooks.emit(webhook.Opened, h.At, !h.Bot, func() ([]byte, error) { return store.WithMessage(o, m) })
}
