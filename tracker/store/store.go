// Package store keeps tracked copies and their opens in a bbolt file.
//
// Layout (see codec.go for the exact keys): copies by tracking id, with
// their open counters in the record so listing messages needs no scan;
// indexes of copies by queued time, by lowercased recipient and of copies
// without a human open; opens keyed id+time+seq so one copy's opens are a
// prefix range; indexes of opens by time (for recent, since and purge) and
// by recipient. Dedup and the per-IP limit are kept in memory and rebuilt
// from the last hour's opens (or the dedup window, if longer) on open, so a
// hit costs no random page writes for them and restarts forget nothing.
//
// Hits go through one writer goroutine that commits them in batches: one
// write transaction and one fsync for all hits that arrived while the
// previous batch was being committed (plus up to BatchDelay). A kill -9
// loses at most the hits of the batch being collected. Dedup and the per-IP
// limit are applied hit by hit inside the batch's transaction, so two
// identical hits in one batch store one open.
//
// Copies: every recipient's copy has a record, tracked ones under their
// tracking id, untracked ones (no pixel: excluded, not HTML, signed, ...)
// under record.UntrackedID; untracked copies never take opens and are not
// in the unopened index. Records are versioned (codec.go): files written
// before untracked copies were recorded read as they were.
//
// Counters: a copy's opens_total, opens_human and first_human_open are
// historical totals: Purge deletes old opens but does not lower them, so
// /api/messages keeps saying a message was opened after its opens aged out,
// until the copy itself is purged (done, sent or failed, before the
// cutoff; with all its opens). Stats.Copies, Stats.Opens and
// Stats.OpensHuman count what is currently stored.
package store

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"pixelrelay/tracker/record"
)

// ErrClosed is returned after Close.
var ErrClosed = errors.New("store: closed")

// ErrNotFound is returned by Update for an unknown id; it wraps
// record.ErrNotFound.
var ErrNotFound = fmt.Errorf("store: %w", record.ErrNotFound)

// Options configures a Store. The zero value works: no dedup, no per-IP
// limit, the real clock, slog.Default().
type Options struct {
	// DedupWindow: an open with the same tracking id, IP and user agent as
	// a stored open less than this long ago is not stored. 0 disables.
	DedupWindow time.Duration
	// IPHourlyLimit: at most this many opens are stored per IP in the last
	// hour (minute resolution). 0 disables. Both can be changed later with
	// SetLimits.
	IPHourlyLimit int
	// Now is the clock (default time.Now); hits without a time get Now().
	Now func() time.Time
	// Log receives progress and errors (default slog.Default()).
	Log *slog.Logger
	// BatchDelay is how long the writer waits for more hits after the first
	// one of a batch (default 5ms; negative means do not wait).
	BatchDelay time.Duration
	// MaxBatch caps the hits per write transaction (default 2000).
	MaxBatch int
	// QueueSize is the number of hits that may wait for the writer before
	// senders block (default 16384).
	QueueSize int
	// OnHit, if set, is told what became of every hit once its batch is
	// committed (or failed), from the writer goroutine: it must be quick
	// (metrics count outcomes with it).
	OnHit func(HitOutcome, *Hit)
	// OnClick is OnHit for clicks.
	OnClick func(HitOutcome, *ClickHit)

	// TrackerOnly is a public tracker that relays register their copies
	// with (split.go): the opens of genuine tokens whose copy is not
	// registered yet are kept and joined to it when it is, and each
	// relay's opens wait in its feed until it takes them.
	TrackerOnly bool
	// Rejudge, on a TrackerOnly store, is called for each early open as it
	// is joined to its copy, with the copy's delivery time (zero if not
	// delivered yet), to classify it again now that the time is known.
	Rejudge func(h *Hit, sentAt time.Time)
	// RelayOutbox is a relay whose tracker runs elsewhere: every copy
	// recorded or changed is listed until the tracker acknowledges it
	// (RelayPending, RelayDone).
	RelayOutbox bool
}

// Store is the tracker's database. All methods are safe for concurrent use.
type Store struct {
	path string
	opt  Options
	log  *slog.Logger
	now  func() time.Time

	dedup    atomic.Int64 // time.Duration
	ipHourly atomic.Int64
	hooks    atomic.Pointer[hookSet] // webhook endpoints; nil: none (outbox.go)

	// wmu is held shared by every write and exclusively by compaction, so
	// compaction sees a stable file while hits are held in memory.
	wmu sync.RWMutex
	// dbMu guards the db pointer, which compaction replaces.
	dbMu sync.RWMutex
	db   *bolt.DB

	// sendMu orders sends to in against Close.
	sendMu sync.RWMutex
	closed bool
	in     chan request
	stop   chan struct{}
	done   chan struct{} // writer exited
	lim    *limiter      // owned by the writer goroutine

	purgeMu sync.Mutex
	dropped atomic.Int64
	// refused is the limiter's refused count as of the last commit (the
	// limiter itself is the writer's); refusedWarned and refusedWarnAt
	// are the count and time of the last warning about it (writer only).
	refused       atomic.Int64
	refusedWarned int64
	refusedWarnAt time.Time
	closeOnce     sync.Once
	closeErr      error

	feed feed // live changes for Subscribe

	// pendingAt is the time (ts) of the earliest click not settled yet,
	// 0 when none (writer only; see settle).
	pendingAt uint64
	recent    recentClicks // the last clicks of recent copies (writer only)
}

// boltOptions are used for the database and for compaction targets.
func boltOptions() *bolt.Options {
	return &bolt.Options{
		Timeout:        2 * time.Second, // another process holds the file: fail, do not hang
		FreelistType:   bolt.FreelistMapType,
		NoFreelistSync: true, // no freelist write per commit; rebuilt on open
	}
}

// OpenStore opens or creates the database at path (mode 0600) and starts the
// writer. (It is not called Open: that name is the OPEN record type.)
func OpenStore(path string, opt Options) (*Store, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.BatchDelay == 0 {
		opt.BatchDelay = 5 * time.Millisecond
	}
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 2000
	}
	if opt.QueueSize <= 0 {
		opt.QueueSize = 16384
	}
	if err := verify(path); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db, err := openBolt(path)
	if err != nil {
		return nil, err
	}
	removeCompactLeftover(path, opt.Log)
	s := &Store{
		path: path, opt: opt, log: opt.Log, now: opt.Now, db: db,
		in:   make(chan request, opt.QueueSize),
		stop: make(chan struct{}),
		done: make(chan struct{}),
		lim:  newLimiter(),
	}
	s.SetLimits(opt.DedupWindow, opt.IPHourlyLimit)
	if err := s.buildActivity(); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := s.rebuildLimiter(); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := s.loadPending(); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	go s.writer()
	return s, nil
}

// openBolt opens the file and makes sure every bucket exists.
func openBolt(path string) (db *bolt.DB, err error) {
	defer func() {
		// bbolt panics in the caller's goroutine when the free-page scan
		// of a damaged file reports an error (verify catches most first).
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("store: open %s: %w: %v", path, ErrDamaged, r)
		}
	}()
	db, err = bolt.Open(path, 0o600, boltOptions())
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: init %s: %w", path, err)
	}
	return db, nil
}

// removeCompactLeftover deletes PATH.compact, the half-written copy left by
// a compaction that was killed before its swap (the next compaction would
// remove it too; this frees its space at start). It is called with the
// database open, so its lock keeps any other process from compacting.
func removeCompactLeftover(path string, log *slog.Logger) {
	tmp := compactPath(path)
	if err := os.Remove(tmp); err == nil {
		log.Warn("store: removed the leftover of an interrupted compaction", "path", tmp)
	} else if !errors.Is(err, os.ErrNotExist) {
		log.Warn("store: cannot remove the leftover of an interrupted compaction", "path", tmp, "err", err)
	}
}

// SetLimits changes the dedup window and the per-IP hourly limit (hot
// reload). 0 disables either.
func (s *Store) SetLimits(dedup time.Duration, ipHourly int) {
	s.dedup.Store(int64(dedup))
	s.ipHourly.Store(int64(ipHourly))
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// view runs fn in a read transaction on the current database.
func (s *Store) view(fn func(*bolt.Tx) error) error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	return s.db.View(fn)
}

// update runs fn in a write transaction, waiting while a compaction runs.
func (s *Store) update(fn func(*bolt.Tx) error) error {
	s.wmu.RLock()
	defer s.wmu.RUnlock()
	return s.updateLocked(fn)
}

// updateLocked is update for callers that already hold wmu.
func (s *Store) updateLocked(fn func(*bolt.Tx) error) error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	return s.db.Update(fn)
}

// Close commits the hits still waiting, stops the writer and closes the
// database. Hits sent after Close fail with ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.sendMu.Lock()
		s.closed = true
		s.sendMu.Unlock()
		close(s.stop)
		<-s.done
		s.purgeMu.Lock() // wait for a running purge
		defer s.purgeMu.Unlock()
		s.dbMu.Lock()
		defer s.dbMu.Unlock()
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}

// rebuildLimiter loads dedup and per-IP state from the recent opens.
func (s *Store) rebuildLimiter() error {
	now := s.now()
	window := max(time.Duration(s.dedup.Load()), time.Hour)
	var n int
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		n, err = s.lim.rebuild(tx, now.Add(-window))
		return err
	})
	if err != nil {
		return fmt.Errorf("store: rebuild dedup state: %w", err)
	}
	s.lim.lastSweep = now
	if n > 0 {
		s.log.Info("store: dedup and per-IP state rebuilt", "opens", n, "window", window)
	}
	return nil
}

// fileSize returns the database file's size in bytes.
func (s *Store) fileSize() int64 {
	st, err := os.Stat(s.path)
	if err != nil {
		return 0
	}
	return st.Size()
}
