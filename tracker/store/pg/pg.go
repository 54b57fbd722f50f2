// Package pg is the tracker's store on PostgreSQL (store.url =
// "postgres://..."): the same seam (store.DB) as the embedded bbolt file,
// for a team that runs several tracker processes behind one address.
//
// Every promise of package store holds across processes, because every
// write (hits, clicks, Add, Update, purge and reclassify steps) runs in a
// transaction that first takes one transaction-level advisory lock: the
// writers of all processes take turns, each committing a whole batch of
// hits in one transaction, so dedup (the dedup table, keyed copy, link, IP
// and user agent), the per-IP hourly limit (fetches counted per IP and
// minute in ip_minutes), first-open marking and the counters see every
// earlier commit of every process. Reads take no lock.
//
// Hits: Record and Enqueue both wait until the hit's batch is committed,
// so a pixel answered after them (serve answers after commit on
// PostgreSQL) is never lost when a process is killed; concurrent hits of
// one process share a transaction.
//
// Schema versions are embedded SQL files (migrations/NNNN_name.sql),
// applied in order under a session advisory lock and recorded in
// schema_migrations, so several processes starting at once apply each
// once. Subscribe reports the changes every process commits (LISTEN and
// NOTIFY, notify.go). The webhook
// outbox has one sender per endpoint across processes: the process holding
// the endpoint's session advisory lock. The split deployment's methods
// (Register, RelayFeed, ...) are not supported with PostgreSQL yet.
package pg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
)

// ErrSplit is the split deployment's methods' error.
var ErrSplit = errors.New("store: the split deployment is not supported with store.url=postgres yet")

// writeLock is the advisory lock every write transaction takes first.
const writeLock = 0x7069786c // "pixl"

// Store is the tracker's database on PostgreSQL. All methods are safe for
// concurrent use.
type Store struct {
	pool *pgxpool.Pool
	url  string
	opt  store.Options
	log  *slog.Logger
	now  func() time.Time

	dedup    atomic.Int64 // time.Duration
	ipHourly atomic.Int64
	dropped  atomic.Int64

	sendMu sync.RWMutex
	closed bool
	in     chan request
	stop   chan struct{}
	done   chan struct{}

	feed       store.Feed
	node       string             // this process, in notifications (notify.go)
	stopListen context.CancelFunc // ends listen
	listening  chan struct{}      // closed when listen has ended
	hooks      hookOwner
	purgeMu    sync.Mutex
	closeOnce  sync.Once
}

// Open connects to the database at url, applies the schema migrations it
// lacks and starts the writer. opt is the bbolt engine's: TrackerOnly and
// RelayOutbox (the split deployment) are refused.
func Open(ctx context.Context, url string, opt store.Options) (*Store, error) {
	if opt.TrackerOnly || opt.RelayOutbox {
		return nil, ErrSplit
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.BatchDelay == 0 {
		opt.BatchDelay = 2 * time.Millisecond
	}
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 500
	}
	if opt.QueueSize <= 0 {
		opt.QueueSize = 16384
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("store.url: %w", err)
	}
	cfg.MaxConns = max(cfg.MaxConns, 8)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: connect %s: %w", Redact(url), err)
	}
	if err := Migrate(ctx, pool, opt.Log); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: %s: %w", Redact(url), err)
	}
	s := &Store{pool: pool, url: url, opt: opt, log: opt.Log, now: opt.Now,
		in: make(chan request, opt.QueueSize), stop: make(chan struct{}), done: make(chan struct{})}
	s.hooks.s = s
	s.SetLimits(opt.DedupWindow, opt.IPHourlyLimit)
	s.node, s.listening = newNode(), make(chan struct{})
	lctx, cancel := context.WithCancel(context.Background())
	s.stopListen = cancel
	go s.listen(lctx)
	go s.writer()
	return s, nil
}

// Redact is url without its password, for messages.
func Redact(url string) string {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return "postgres://..."
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

// SetLimits changes the dedup window and the per-IP hourly limit (hot
// reload). 0 disables either.
func (s *Store) SetLimits(dedup time.Duration, ipHourly int) {
	s.dedup.Store(int64(dedup))
	s.ipHourly.Store(int64(ipHourly))
}

// Subscribe receives the changes every process commits.
func (s *Store) Subscribe() *store.Subscription { return s.feed.Subscribe() }

// Close commits what is waiting, stops the writer and the webhook lock
// holder, and closes the connections.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.sendMu.Lock()
		s.closed = true
		s.sendMu.Unlock()
		close(s.stop)
		<-s.done
		s.stopListen()
		<-s.listening
		s.purgeMu.Lock()
		defer s.purgeMu.Unlock()
		s.hooks.close()
		s.pool.Close()
	})
	return nil
}

// write runs fn in a transaction that holds the write lock.
func (s *Store) write(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", writeLock); err != nil {
			return err
		}
		return fn(tx)
	})
}

// Split deployment: not supported yet.

func (s *Store) Register(string, []record.Copy) (store.RegisterResult, error) {
	return store.RegisterResult{}, ErrSplit
}
func (s *Store) RelayFeed(string, int) ([]store.FeedOpen, error) { return nil, ErrSplit }
func (s *Store) AckRelayFeed(string, []uint64) (int, error)      { return 0, ErrSplit }
func (s *Store) RelayPending(int) ([]store.PendingCopy, error)   { return nil, nil }
func (s *Store) RelayDone([]store.PendingCopy) error             { return nil }
func (s *Store) Import([]store.Hit) (store.ImportResult, error) {
	return store.ImportResult{}, ErrSplit
}
