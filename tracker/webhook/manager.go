package webhook

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultSchedule is the wait after the 1st, 2nd, ... failed attempt in a
// row (Standard Webhooks' example schedule); the last entry repeats. With
// MaxAge of 3 days an event gets about ten attempts.
var DefaultSchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour,
	5 * time.Hour, 10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour,
}

// DefaultMaxAge is how long an event is retried: a failed attempt drops
// the events that are older than this.
const DefaultMaxAge = 72 * time.Hour

// Options configures a Manager. Outbox is required.
type Options struct {
	Outbox Outbox
	// Client makes the attempts (default NewClient(DefaultTimeout)).
	Client *http.Client
	Log    *slog.Logger     // default slog.Default()
	Now    func() time.Time // default time.Now
	// Schedule and MaxAge: see DefaultSchedule and DefaultMaxAge.
	Schedule []time.Duration
	MaxAge   time.Duration
	// Batch is how many events a worker reads at a time; their
	// deliveries are saved in one transaction (default 50).
	Batch int
	// PurgeEvery is how often the events of endpoints removed from the
	// config are purged (default 24h; the first purge runs at Apply).
	PurgeEvery time.Duration
}

// Config is one endpoint to run: where to, with what key, which events.
type Config struct {
	Endpoint
	Events    []string
	HumanOnly bool
	// SecretFile is where the secret came from ("" when it was written in
	// the config); Status shows it.
	SecretFile string
}

// Manager runs one worker per endpoint and answers the admin API.
type Manager struct {
	opt Options
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	workers map[string]*worker
	order   []string // endpoint names in config order
	closed  bool
	purged  chan struct{}          // closed when the purger exits; nil before the first Apply
	wakers  atomic.Pointer[wakers] // for the store's wake calls, lock-free
}

type wakers map[string]chan struct{}

// New returns a Manager with no endpoints; Apply gives it some.
func New(opt Options) *Manager {
	if opt.Client == nil {
		opt.Client = NewClient(DefaultTimeout)
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if len(opt.Schedule) == 0 {
		opt.Schedule = DefaultSchedule
	}
	if opt.MaxAge <= 0 {
		opt.MaxAge = DefaultMaxAge
	}
	if opt.Batch <= 0 {
		opt.Batch = 50
	}
	if opt.PurgeEvery <= 0 {
		opt.PurgeEvery = 24 * time.Hour
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{opt: opt, log: opt.Log, ctx: ctx, cancel: cancel, workers: map[string]*worker{}}
	m.wakers.Store(&wakers{})
	return m
}

// Apply makes the endpoints those of cfgs (a reload): new ones start, a
// changed URL or key restarts its worker, removed ones stop (their waiting
// events are kept for MaxAge, in case the endpoint comes back).
func (m *Manager) Apply(cfgs []Config) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	keep := map[string]bool{}
	var targets []Target
	m.order = m.order[:0]
	for _, c := range cfgs {
		keep[c.Name] = true
		m.order = append(m.order, c.Name)
		targets = append(targets, Target{Name: c.Name, URL: c.URL, Events: c.Events, HumanOnly: c.HumanOnly})
	}
	for name, w := range m.workers {
		if !keep[name] {
			w.stop()
			delete(m.workers, name)
			m.log.Info("webhook removed; its waiting events are kept for a while in case it comes back", "webhook", name)
		}
	}
	ws := wakers{}
	for _, c := range cfgs {
		w := m.workers[c.Name]
		if w != nil && (w.cfg.URL != c.URL || string(w.cfg.Key) != string(c.Key)) {
			w.stop()
			w = nil
		}
		if w == nil {
			w = m.start(c)
		}
		w.setConfig(c)
		ws[c.Name] = w.wake
	}
	m.wakers.Store(&ws)
	m.opt.Outbox.SetWebhooks(targets, m.wake)
	if m.purged == nil { // the first Apply: the configured names are known
		m.purged = make(chan struct{})
		go m.purger()
	}
}

// start starts a worker for c. m.mu is held.
func (m *Manager) start(c Config) *worker {
	ctx, cancel := context.WithCancel(m.ctx)
	w := &worker{m: m, cfg: c, wake: make(chan struct{}, 1), reset: make(chan struct{}, 1),
		cancel: cancel, done: make(chan struct{})}
	m.workers[c.Name] = w
	go w.run(ctx)
	return w
}

// wake is what the store calls after committing events for names.
func (m *Manager) wake(names []string) {
	ws := *m.wakers.Load()
	for _, n := range names {
		if c, ok := ws[n]; ok {
			select {
			case c <- struct{}{}:
			default:
			}
		}
	}
}

// Close stops every worker (an attempt in flight is cancelled; its event
// is sent again after a restart) and the purger.
func (m *Manager) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	m.cancel()
	for _, w := range m.workers {
		<-w.done
	}
	purged := m.purged
	m.mu.Unlock()
	if purged != nil {
		<-purged
	}
	// The store keeps writing events for the endpoints until it closes:
	// opens still being committed are delivered after the next start.
}

// purger deletes, at start and then every PurgeEvery, the expired events
// of endpoints no longer configured.
func (m *Manager) purger() {
	defer close(m.purged)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
		keep := *m.wakers.Load()
		n, err := m.opt.Outbox.PurgeWebhookEvents(m.opt.Now().Add(-m.opt.MaxAge), func(name string) bool {
			_, ok := keep[name]
			return ok
		})
		if err != nil {
			m.log.Error("webhooks: purging the events of removed endpoints", "err", err)
		} else if n > 0 {
			m.log.Info("webhooks: purged the expired events of removed endpoints", "events", n)
		}
		t.Reset(m.opt.PurgeEvery)
	}
}

// delay is the wait after the nth failure in a row (n >= 1), with ±10%
// jitter, at least as long as the answer's Retry-After (within the
// schedule's longest wait).
func (m *Manager) delay(n int, retryAfter time.Duration) time.Duration {
	s := m.opt.Schedule
	d := s[min(n, len(s))-1]
	longest := s[len(s)-1]
	if retryAfter > d {
		d = min(retryAfter, longest)
	}
	return d*9/10 + time.Duration(rand.Int64N(int64(d/5)+1))
}
