package pg

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
)

var _ store.DB = (*Store)(nil)

// Copy returns the stored tracked copy with this tracking id.
func (s *Store) Copy(id string) (record.Copy, bool, error) {
	if record.IsUntrackedID(id) {
		return record.Copy{}, false, nil
	}
	c, err := getCopy(context.Background(), s.pool, id)
	if err != nil || c == nil {
		return record.Copy{}, false, err
	}
	return c.Copy, true, nil
}

// ByKey returns the copy stored under key (Message.Key).
func (s *Store) ByKey(key string) (store.Message, bool, error) {
	c, err := getCopy(context.Background(), s.pool, key)
	if err != nil || c == nil {
		return store.Message{}, false, err
	}
	return c.message(), true, nil
}

// where builds a WHERE clause with numbered arguments.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, arg any) {
	w.args = append(w.args, arg)
	w.conds = append(w.conds, strings.ReplaceAll(cond, "?", fmt.Sprintf("$%d", len(w.args))))
}

func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// copies lists copies matching w, newest queued first.
func (s *Store) copies(w *where, limit int) ([]store.Message, error) {
	rows, err := s.pool.Query(context.Background(), "SELECT "+copyCols+" FROM copies"+w.String()+
		fmt.Sprintf(" ORDER BY queued_at DESC, key DESC LIMIT %d", limit), w.args...)
	if err != nil {
		return nil, err
	}
	out := []store.Message{}
	for rows.Next() {
		c, err := scanCopy(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, c.message())
	}
	return out, rows.Err()
}

// Messages lists copies, tracked or not, newest queued first.
func (s *Store) Messages(q store.MessageQuery) ([]store.Message, error) {
	var w where
	if id := strings.ToLower(strings.TrimSpace(q.ID)); id != "" {
		if record.IsUntrackedID(id) {
			return []store.Message{}, nil
		}
		w.add("key = ?", id)
		return s.copies(&w, 1)
	}
	if q.To != "" {
		w.add("rcpt = ?", store.NormAddr(q.To))
	}
	if q.Unopened {
		w.conds = append(w.conds, "untracked_reason = '' AND first_human_open IS NULL AND opens_human = 0")
	}
	if !q.Since.IsZero() {
		w.add("queued_at >= ?", q.Since.UTC())
	}
	return s.copies(&w, store.ClampLimit(q.Limit))
}

// List returns a page of the dashboard's list, newest first. PostgreSQL's
// indexes answer every filter, so a page is never cut short by a scan
// budget.
func (s *Store) List(q store.ListQuery) (store.ListPage, error) {
	if q.Limit <= 0 {
		q.Limit = 50
	}
	q.Limit = min(q.Limit, 500)
	q.Search = strings.TrimSpace(q.Search)
	page := store.ListPage{Messages: []store.Message{}}
	var w where
	switch q.Filter {
	case store.FilterOpened:
		w.conds = append(w.conds, "opens_human > 0")
	case store.FilterClicked:
		w.conds = append(w.conds, "clicks_human > 0")
	case store.FilterUnopened:
		w.conds = append(w.conds, "opens_human = 0 AND untracked_reason = '' AND status = 'sent'")
	case store.FilterPending:
		w.conds = append(w.conds, "status IN ('queued', 'deferred')")
	case store.FilterFailed:
		w.conds = append(w.conds, "status = 'failed'")
	case store.FilterUntracked:
		w.conds = append(w.conds, "untracked_reason <> ''")
	}
	if !q.QueuedBefore.IsZero() {
		w.add("queued_at < ?", q.QueuedBefore.UTC())
	}
	if q.Before != nil {
		w.add("(queued_at, key) < (?", q.Before.QueuedAt.UTC())
		w.args = append(w.args, q.Before.ID)
		w.conds[len(w.conds)-1] += fmt.Sprintf(", $%d)", len(w.args))
	}
	if q.Search != "" {
		like := likeEscape(strings.ToLower(q.Search))
		in := q.SearchIn
		if in == "" {
			in = store.SearchText
			var any bool
			if err := s.pool.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM copies WHERE rcpt LIKE $1)", like+"%").Scan(&any); err != nil {
				return page, err
			}
			if any {
				in = store.SearchRecipient
			}
		}
		page.SearchIn = in
		if in == store.SearchRecipient {
			w.add("rcpt LIKE ?", like+"%")
		} else {
			w.add("(lower(recipient) LIKE ? OR lower(subject) LIKE $"+fmt.Sprint(len(w.args)+1)+")", "%"+like+"%")
			w.args = append(w.args, "%"+like+"%")
		}
	}
	ms, err := s.copies(&w, q.Limit+1)
	if err != nil {
		return page, err
	}
	if len(ms) > q.Limit {
		ms = ms[:q.Limit]
		last := ms[len(ms)-1]
		page.Next = &store.Cursor{QueuedAt: last.QueuedAt, ID: last.Key}
	}
	page.Messages = ms
	return page, nil
}

// likeEscape escapes LIKE's wildcards.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// Opens lists opens newest first: of one copy, of one recipient, or the
// most recent; Since filters on opened_at.
func (s *Store) Opens(q store.OpenQuery) ([]store.Open, error) {
	w := fetchWhere(q, "o")
	rows, err := s.pool.Query(context.Background(), `SELECT c.tracking_id, c.recipient, c.subject, c.message_id, c.sent_at,
		o.at, o.ip, o.user_agent, o.bot, o.bot_type, o.proxy, o.first, o.reason, o.country, o.city
		FROM opens o JOIN copies c ON c.key = o.copy`+w.String()+
		fmt.Sprintf(" ORDER BY o.at DESC, o.seq DESC LIMIT %d", store.ClampLimit(q.Limit)), w.args...)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Open, error) {
		var o store.Open
		var sent *time.Time
		err := r.Scan(&o.TrackingID, &o.Recipient, &o.Subject, &o.MessageID, &sent, &o.OpenedAt, &o.IP, &o.UserAgent,
			&o.Bot, &o.BotType, &o.Proxy, &o.First, &o.Reason, &o.Country, &o.City)
		o.SentAt, o.OpenedAt = ptr(val(sent)), o.OpenedAt.UTC()
		return o, err
	})
	if out == nil {
		out = []store.Open{}
	}
	return out, err
}

// fetchWhere is the selection of an opens or clicks query (table alias t).
func fetchWhere(q store.OpenQuery, t string) *where {
	var w where
	if q.ID != "" {
		w.add(t+".copy = ?", strings.ToLower(strings.TrimSpace(q.ID)))
	}
	if q.To != "" {
		w.add("c.rcpt = ?", store.NormAddr(q.To))
	}
	if !q.Since.IsZero() {
		w.add(t+".at >= ?", q.Since.UTC())
	}
	return &w
}

// Clicks lists clicks as Opens lists opens.
func (s *Store) Clicks(q store.ClickQuery) ([]store.Click, error) {
	w := fetchWhere(q, "k")
	rows, err := s.pool.Query(context.Background(), `SELECT c.tracking_id, c.recipient, c.subject, coalesce(l.url, ''), k.link,
		k.at, k.ip, k.user_agent, k.bot, k.bot_type, k.reason, k.first, k.country, k.city
		FROM clicks k JOIN copies c ON c.key = k.copy LEFT JOIN links l ON l.owner = c.links_key AND l.n = k.link`+w.String()+
		fmt.Sprintf(" ORDER BY k.at DESC, k.seq DESC LIMIT %d", store.ClampLimit(q.Limit)), w.args...)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Click, error) {
		var k store.Click
		err := r.Scan(&k.TrackingID, &k.Recipient, &k.Subject, &k.URL, &k.Link, &k.ClickedAt, &k.IP, &k.UserAgent,
			&k.Bot, &k.BotType, &k.Reason, &k.First, &k.Country, &k.City)
		k.ClickedAt = k.ClickedAt.UTC()
		return k, err
	})
	if out == nil {
		out = []store.Click{}
	}
	return out, err
}

// Events returns a copy's delivery history, oldest first.
func (s *Store) Events(id string) ([]store.Event, error) {
	rows, err := s.pool.Query(context.Background(), "SELECT at, status, error FROM copy_events WHERE copy = $1 ORDER BY at, seq", id)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Event, error) {
		var e store.Event
		err := r.Scan(&e.At, &e.Status, &e.Error)
		e.At = e.At.UTC()
		return e, err
	})
	if out == nil {
		out = []store.Event{}
	}
	return out, err
}

// ActivityBetween returns the hourly counts from the hour holding from up
// to (excluding) the hour holding to, oldest first.
func (s *Store) ActivityBetween(from, to time.Time) ([]store.Activity, error) {
	rows, err := s.pool.Query(context.Background(), `SELECT hour, opens_human, opens_machine, clicks_human, clicks_machine,
		queued, sent, first_human FROM activity WHERE hour >= $1 AND hour < $2 ORDER BY hour`,
		from.UTC().Truncate(time.Hour), to.UTC().Truncate(time.Hour))
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Activity, error) {
		var a store.Activity
		err := r.Scan(&a.Start, &a.OpensHuman, &a.OpensMachine, &a.ClicksHuman, &a.ClicksMachine, &a.Queued, &a.Sent, &a.FirstHuman)
		a.Start = a.Start.UTC()
		return a, err
	})
	if out == nil {
		out = []store.Activity{}
	}
	return out, err
}

// Stats returns the database's size and the stored counts. Path is the
// URL without its password; FreeBytes is 0 (VACUUM reuses dead space).
func (s *Store) Stats() (store.Stats, error) {
	st := store.Stats{Path: Redact(s.url), Dropped: s.dropped.Load()}
	err := s.pool.QueryRow(context.Background(), `SELECT pg_database_size(current_database()),
		(SELECT count(*) FROM copies), (SELECT count(*) FROM copies WHERE untracked_reason <> ''),
		(SELECT count(*) FROM opens), (SELECT count(*) FROM opens WHERE NOT bot),
		(SELECT count(*) FROM clicks), (SELECT count(*) FROM clicks WHERE NOT bot)`).
		Scan(&st.SizeBytes, &st.Copies, &st.Untracked, &st.Opens, &st.OpensHuman, &st.Clicks, &st.ClicksHuman)
	return st, err
}
