package pg

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
)

func fmtErr(format string, a ...any) error { return fmt.Errorf("store: "+format, a...) }

// copyRow is one row of copies.
type copyRow struct {
	record.Copy
	Key                      string
	DoneAt                   time.Time
	LinksKey                 string
	OpensTotal, OpensHuman   int
	FirstHumanOpen           time.Time
	ClicksTotal, ClicksHuman int
	FirstHumanClick          time.Time
}

// copyCols are the columns scanCopy reads, in order.
const copyCols = `key, tracking_id, queue_id, recipient, sender, subject, message_id, queued_at, sent_at, done_at,
	status, last_error, untracked_reason, account, links_key, opens_total, opens_human, first_human_open,
	clicks_total, clicks_human, first_human_click`

// scanCopy reads one row of copyCols.
func scanCopy(row pgx.Row) (*copyRow, error) {
	var c copyRow
	var sent, done, fho, fhc *time.Time
	err := row.Scan(&c.Key, &c.TrackingID, &c.QueueID, &c.Recipient, &c.From, &c.Subject, &c.MessageID, &c.QueuedAt,
		&sent, &done, &c.Status, &c.LastError, &c.UntrackedReason, &c.Account, &c.LinksKey, &c.OpensTotal, &c.OpensHuman, &fho,
		&c.ClicksTotal, &c.ClicksHuman, &fhc)
	if err != nil {
		return nil, err
	}
	c.QueuedAt = c.QueuedAt.UTC()
	c.SentAt, c.DoneAt, c.FirstHumanOpen, c.FirstHumanClick = val(sent), val(done), val(fho), val(fhc)
	return &c, nil
}

// getCopy reads the copy stored under key; nil when there is none.
func getCopy(ctx context.Context, q querier, key string) (*copyRow, error) {
	c, err := scanCopy(q.QueryRow(ctx, "SELECT "+copyCols+" FROM copies WHERE key = $1", key))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return c, err
}

// querier is a pool, a connection or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// val is *t, or the zero time for nil, in UTC.
func val(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// ptr is t for a nullable column: nil for the zero time.
func ptr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// message is the API's MESSAGE of a copy.
func (c *copyRow) message() store.Message {
	return store.Message{
		TrackingID: c.TrackingID, Recipient: c.Recipient, From: c.From, Subject: c.Subject,
		MessageID: c.MessageID, QueuedAt: c.QueuedAt, SentAt: ptr(c.SentAt),
		Status: c.Status, LastError: c.LastError,
		Tracked: c.Tracked(), UntrackedReason: c.UntrackedReason, Account: c.Account,
		OpensTotal: c.OpensTotal, OpensHuman: c.OpensHuman, FirstHumanOpen: ptr(c.FirstHumanOpen),
		Key:         c.Key,
		ClicksTotal: c.ClicksTotal, ClicksHuman: c.ClicksHuman, FirstHumanClick: ptr(c.FirstHumanClick),
	}
}

// insertCopy stores a new copy.
func insertCopy(ctx context.Context, tx pgx.Tx, c *copyRow) error {
	_, err := tx.Exec(ctx, `INSERT INTO copies (key, tracking_id, queue_id, recipient, rcpt, sender, subject, message_id,
		queued_at, sent_at, done_at, status, last_error, untracked_reason, links_key, opens_total, opens_human,
		first_human_open, clicks_total, clicks_human, first_human_click, account)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)
		ON CONFLICT (key) DO NOTHING`,
		c.Key, c.TrackingID, c.QueueID, c.Recipient, store.NormAddr(c.Recipient), c.From, c.Subject, c.MessageID,
		c.QueuedAt.UTC(), ptr(c.SentAt), ptr(c.DoneAt), c.Status, c.LastError, c.UntrackedReason, c.LinksKey,
		c.OpensTotal, c.OpensHuman, ptr(c.FirstHumanOpen), c.ClicksTotal, c.ClicksHuman, ptr(c.FirstHumanClick), c.Account)
	return err
}
