package pg

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"pixelrelay/tracker/classify"
	"pixelrelay/tracker/store"
)

// MoveResult counts what a move copied (and skipped: already there).
type MoveResult struct {
	Copies   int `json:"copies"`
	Skipped  int `json:"skipped"` // already in the database
	Opens    int `json:"opens"`
	Clicks   int `json:"clicks"`
	Events   int `json:"events"`
	Links    int `json:"links"`
	Webhooks int `json:"webhook_events"`
}

// moveChunk is the number of copies written per transaction.
const moveChunk = 200

// MoveFrom copies the bbolt database src into s: every copy with its
// opens, clicks, events and link URLs, the hourly counts, and the webhook
// outbox and states. It is idempotent: a copy already in s is skipped with
// everything of it (a copy is written in one transaction with its opens,
// clicks and events), a webhook event already there is not added again,
// and the hourly counts are the larger of the two. progress is called
// after each chunk.
func (s *Store) MoveFrom(ctx context.Context, src *store.Store, progress func(MoveResult)) (MoveResult, error) {
	var res MoveResult
	var chunk []*store.ExportCopy
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		err := s.write(ctx, func(tx pgx.Tx) error { return moveCopies(ctx, tx, chunk, &res) })
		chunk = chunk[:0]
		if err == nil && progress != nil {
			progress(res)
		}
		return err
	}
	err := src.ExportCopies(func(c *store.ExportCopy) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk = append(chunk, c)
		if len(chunk) < moveChunk {
			return nil
		}
		return flush()
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return res, err
	}
	rest, err := src.ExportRest()
	if err != nil {
		return res, err
	}
	err = s.write(ctx, func(tx pgx.Tx) error { return moveRest(ctx, tx, &rest, &res) })
	return res, err
}

// moveCopies writes the copies of one chunk that s does not have yet.
func moveCopies(ctx context.Context, tx pgx.Tx, chunk []*store.ExportCopy, res *MoveResult) error {
	keys := make([]string, len(chunk))
	for i, c := range chunk {
		keys[i] = c.Key
	}
	rows, err := tx.Query(ctx, "SELECT key FROM copies WHERE key = ANY($1)", keys)
	if err != nil {
		return err
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	skip := map[string]bool{}
	for _, k := range have {
		skip[k] = true
	}
	var b pgx.Batch
	for _, c := range chunk {
		if skip[c.Key] {
			res.Skipped++
			continue
		}
		queueCopy(&b, c, res)
	}
	if b.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, &b).Close()
}

// queueCopy adds one copy and everything of it to b.
func queueCopy(b *pgx.Batch, e *store.ExportCopy, res *MoveResult) {
	m := &e.Copy
	lk := ""
	if m.Tracked && len(e.Links) > 0 {
		lk = e.Queue
		if lk == "" {
			lk = m.TrackingID
		}
		for i, u := range e.Links {
			b.Queue("INSERT INTO links (owner, n, url) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", lk, i+1, u)
			res.Links++
		}
	}
	b.Queue(`INSERT INTO copies (key, tracking_id, queue_id, recipient, rcpt, sender, subject, message_id,
		queued_at, sent_at, done_at, status, last_error, untracked_reason, links_key, opens_total, opens_human,
		first_human_open, clicks_total, clicks_human, first_human_click, account)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)`,
		e.Key, m.TrackingID, e.Queue, m.Recipient, store.NormAddr(m.Recipient), m.From, m.Subject, m.MessageID,
		m.QueuedAt.UTC(), m.SentAt, ptr(e.Rec.DoneAt), m.Status, m.LastError, m.UntrackedReason, lk,
		e.Rec.OpensTotal, e.Rec.OpensHuman, ptr(e.Rec.FirstHumanOpen), e.Rec.ClicksTotal, e.Rec.ClicksHuman, ptr(e.Rec.FirstHumanClick), m.Account)
	res.Copies++
	for _, o := range e.Opens {
		b.Queue(`INSERT INTO opens (copy, at, ip, user_agent, bot, bot_type, proxy, reason, country, city, first, by_click)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			e.Key, o.OpenedAt, o.IP, o.UserAgent, o.Bot, o.BotType, o.Proxy, o.Reason, o.Country, o.City, o.First, o.ByClick)
		res.Opens++
	}
	settledBefore := time.Now().Add(-classify.HoneypotWindow)
	for _, k := range e.Clicks {
		b.Queue(`INSERT INTO clicks (copy, link, at, ip, user_agent, bot, ruled, bot_type, reason, base_bot, base_type,
			base_reason, country, city, first, settled) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
			e.Key, k.Link, k.ClickedAt, k.IP, k.UserAgent, k.Bot, k.Ruled, k.BotType, k.Reason, k.Base.Bot, k.Base.BotType,
			k.Base.Reason, k.Country, k.City, k.First, k.ClickedAt.Before(settledBefore))
		res.Clicks++
	}
	for _, ev := range e.Events {
		b.Queue("INSERT INTO copy_events (copy, at, status, error) VALUES ($1, $2, $3, $4)", e.Key, ev.At, ev.Status, ev.Error)
		res.Events++
	}
}

// moveRest writes the hourly counts and the webhook outbox and states.
func moveRest(ctx context.Context, tx pgx.Tx, rest *store.ExportAll, res *MoveResult) error {
	var b pgx.Batch
	for _, a := range rest.Activity {
		b.Queue(`INSERT INTO activity AS a (hour, opens_human, opens_machine, clicks_human, clicks_machine, queued, sent, first_human)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (hour) DO UPDATE SET
			opens_human = greatest(a.opens_human, excluded.opens_human), opens_machine = greatest(a.opens_machine, excluded.opens_machine),
			clicks_human = greatest(a.clicks_human, excluded.clicks_human), clicks_machine = greatest(a.clicks_machine, excluded.clicks_machine),
			queued = greatest(a.queued, excluded.queued), sent = greatest(a.sent, excluded.sent), first_human = greatest(a.first_human, excluded.first_human)`,
			a.Start.UTC(), a.OpensHuman, a.OpensMachine, a.ClicksHuman, a.ClicksMachine, a.Queued, a.Sent, a.FirstHuman)
	}
	for name, evs := range rest.Outbox {
		for _, ev := range evs {
			b.Queue(`INSERT INTO webhook_outbox (endpoint, event_id, type, created, body) SELECT $1, $2, $3, $4, $5
				WHERE NOT EXISTS (SELECT 1 FROM webhook_outbox WHERE endpoint = $1 AND event_id = $2)`,
				name, ev.ID, ev.Type, ev.Created.UTC(), ev.Body)
			res.Webhooks++
		}
	}
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return err
	}
	for name, st := range rest.States {
		if err := putWebhookState(ctx, tx, name, st); err != nil {
			return err
		}
	}
	return nil
}
