package pg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"pixelrelay/tracker/store"
	"pixelrelay/tracker/webhook"
)

// The webhook outbox: events are written in the transaction of what they
// report, as in the bbolt engine. Every process writes events, but one
// process sends each endpoint's: the one holding the endpoint's session
// advisory lock on a connection it keeps (PendingEvents returns nothing
// to the others). When that process dies its connection closes, the lock
// is free, and another process's poll (every hookPoll) takes it over.

// hookPoll is how often a process looks for events it may send that it
// was not woken for (written by other processes, or left by a dead one).
const hookPoll = 2 * time.Second

// hookLockClass is the first key of the endpoints' advisory locks.
const hookLockClass = 0x7069786f // "pixo"

type hookSet struct {
	targets []webhook.Target
	wake    func(names []string)
}

// hookOwner holds the configured endpoints and the locks of those this
// process sends.
type hookOwner struct {
	s    *Store
	set  atomic.Pointer[hookSet]
	once sync.Once
	stop chan struct{}

	mu    sync.Mutex
	conn  *pgxpool.Conn   // holds the locks; nil until one is taken
	owned map[string]bool // endpoints whose lock conn holds
}

// SetWebhooks sets the endpoints that receive events (webhook.Outbox).
func (s *Store) SetWebhooks(targets []webhook.Target, wake func(names []string)) {
	if len(targets) == 0 {
		s.hooks.set.Store(nil)
		return
	}
	s.hooks.set.Store(&hookSet{targets: append([]webhook.Target(nil), targets...), wake: wake})
	s.hooks.once.Do(func() {
		s.hooks.stop = make(chan struct{})
		go s.hooks.poll()
	})
}

// poll wakes the workers of endpoints with waiting events.
func (h *hookOwner) poll() {
	t := time.NewTicker(hookPoll)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		set := h.set.Load()
		if set == nil || set.wake == nil {
			continue
		}
		var names []string
		for _, t := range set.targets {
			var any bool
			err := h.s.pool.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM webhook_outbox WHERE endpoint = $1)", t.Name).Scan(&any)
			if err == nil && any {
				names = append(names, t.Name)
			}
		}
		if len(names) > 0 {
			set.wake(names)
		}
	}
}

// wake tells the workers of endpoints that got events in a commit.
func (h *hookOwner) wake(names []string) {
	if set := h.set.Load(); set != nil && set.wake != nil && len(names) > 0 {
		set.wake(names)
	}
}

// own reports whether this process sends name's events, taking the
// endpoint's lock when it is free.
func (h *hookOwner) own(name string) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.owned[name] {
		return true, nil
	}
	ctx := context.Background()
	if h.conn == nil {
		c, err := h.s.pool.Acquire(ctx)
		if err != nil {
			return false, err
		}
		h.conn, h.owned = c, map[string]bool{}
	}
	var got bool
	err := h.conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, hashtext($2))", hookLockClass, name).Scan(&got)
	if err != nil {
		h.conn.Release() // a broken connection: its locks are gone with it
		h.conn, h.owned = nil, nil
		return false, err
	}
	h.owned[name] = got
	if !got {
		delete(h.owned, name)
	}
	return got, nil
}

func (h *hookOwner) close() {
	if h.stop != nil {
		close(h.stop)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conn != nil {
		h.conn.Conn().Close(context.Background()) // frees the locks
		h.conn.Release()
		h.conn = nil
	}
}

// hookEvents writes one transaction's events; nil: no endpoints.
type hookEvents struct {
	ctx     context.Context
	tx      pgx.Tx
	set     *hookSet
	enabled []*webhook.Target
	checked bool
	names   map[string]bool
}

func (h *hookOwner) events(ctx context.Context, tx pgx.Tx) *hookEvents {
	set := h.set.Load()
	if set == nil {
		return nil
	}
	return &hookEvents{ctx: ctx, tx: tx, set: set, names: map[string]bool{}}
}

func (e *hookEvents) any() bool { return e != nil }

// emit stores an event for every enabled endpoint that takes it.
func (e *hookEvents) emit(typ string, at time.Time, human bool, data func() ([]byte, error)) error {
	if e == nil {
		return nil
	}
	targets, err := e.targets()
	if err != nil {
		return err
	}
	var body []byte
	id := ""
	for _, t := range targets {
		if !t.Takes(typ, human) {
			continue
		}
		if body == nil {
			d, err := data()
			if err != nil {
				return fmt.Errorf("store: %s event: %w", typ, err)
			}
			if body, err = store.EventBody(typ, at, d); err != nil {
				return err
			}
			id = webhook.NewID()
		}
		_, err := e.tx.Exec(e.ctx, "INSERT INTO webhook_outbox (endpoint, event_id, type, created, body) VALUES ($1, $2, $3, $4, $5)",
			t.Name, id, typ, at.UTC(), body)
		if err != nil {
			return err
		}
		e.names[t.Name] = true
	}
	return nil
}

// targets are the endpoints a 410 has not disabled (read once).
func (e *hookEvents) targets() ([]*webhook.Target, error) {
	if e.checked {
		return e.enabled, nil
	}
	for i := range e.set.targets {
		t := &e.set.targets[i]
		st, err := webhookState(e.ctx, e.tx, t.Name)
		if err != nil {
			return nil, err
		}
		if st.Disabled && st.URL == t.URL {
			continue
		}
		e.enabled = append(e.enabled, t)
	}
	e.checked = true
	return e.enabled, nil
}

func (e *hookEvents) woken() []string {
	if e == nil {
		return nil
	}
	names := make([]string, 0, len(e.names))
	for n := range e.names {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func webhookState(ctx context.Context, q querier, name string) (webhook.State, error) {
	var st webhook.State
	var b []byte
	err := q.QueryRow(ctx, "SELECT state FROM webhook_state WHERE endpoint = $1", name).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

func putWebhookState(ctx context.Context, tx pgx.Tx, name string, st webhook.State) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO webhook_state (endpoint, state) VALUES ($1, $2)
		ON CONFLICT (endpoint) DO UPDATE SET state = excluded.state`, name, b)
	return err
}

// PendingEvents returns up to n of the endpoint's events, oldest first,
// to the one process that sends them (none to the others).
func (s *Store) PendingEvents(name string, n int) ([]webhook.Event, error) {
	if ok, err := s.hooks.own(name); !ok || err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(context.Background(), `SELECT seq, event_id, type, created, body FROM webhook_outbox
		WHERE endpoint = $1 ORDER BY seq LIMIT $2`, name, n)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (webhook.Event, error) {
		var ev webhook.Event
		var seq int64
		err := r.Scan(&seq, &ev.ID, &ev.Type, &ev.Created, &ev.Body)
		ev.Seq, ev.Created = uint64(seq), ev.Created.UTC()
		return ev, err
	})
}

// WebhookState returns an endpoint's state.
func (s *Store) WebhookState(name string) (webhook.State, error) {
	return webhookState(context.Background(), s.pool, name)
}

// RecordWebhook saves a round of attempts.
func (s *Store) RecordWebhook(name string, done []uint64, expireBefore time.Time, st webhook.State) (int, error) {
	expired := 0
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		seqs := make([]int64, len(done))
		for i, d := range done {
			seqs[i] = int64(d)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM webhook_outbox WHERE endpoint = $1 AND seq = ANY($2)", name, seqs); err != nil {
			return err
		}
		expired = 0
		if !expireBefore.IsZero() {
			tag, err := tx.Exec(ctx, "DELETE FROM webhook_outbox WHERE endpoint = $1 AND created < $2", name, expireBefore)
			if err != nil {
				return err
			}
			expired = int(tag.RowsAffected())
		}
		st.Expired += uint64(expired)
		return putWebhookState(ctx, tx, name, st)
	})
	return expired, err
}

// DisableWebhook saves st (disabled) and drops the endpoint's events.
func (s *Store) DisableWebhook(name string, st webhook.State) (int, error) {
	st.Disabled = true
	n := 0
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM webhook_outbox WHERE endpoint = $1", name)
		if err != nil {
			return err
		}
		n = int(tag.RowsAffected())
		st.Dropped += uint64(n)
		return putWebhookState(ctx, tx, name, st)
	})
	return n, err
}

// WebhookBacklog counts an endpoint's waiting events.
func (s *Store) WebhookBacklog(name string) (n int, oldest time.Time, err error) {
	var o *time.Time
	err = s.pool.QueryRow(context.Background(), "SELECT count(*), min(created) FROM webhook_outbox WHERE endpoint = $1", name).Scan(&n, &o)
	return n, val(o), err
}

// PurgeWebhookEvents deletes old events of endpoints for which keep is
// false.
func (s *Store) PurgeWebhookEvents(before time.Time, keep func(name string) bool) (int, error) {
	ctx := context.Background()
	rows, err := s.pool.Query(ctx, "SELECT DISTINCT endpoint FROM webhook_outbox WHERE created < $1", before)
	if err != nil {
		return 0, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, err
	}
	total := 0
	for _, name := range names {
		if keep(name) {
			continue
		}
		tag, err := s.pool.Exec(ctx, "DELETE FROM webhook_outbox WHERE endpoint = $1 AND created < $2", name, before)
		if err != nil {
			return total, err
		}
		total += int(tag.RowsAffected())
	}
	return total, nil
}
