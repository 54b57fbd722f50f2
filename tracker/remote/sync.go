package remote

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"pixelrelay/tracker/store"
	"pixelrelay/tracker/token"
)

// RelayStore is what the Syncer needs of the relay's own store.
// *store.Store implements it (with Options.RelayOutbox).
type RelayStore interface {
	RelayPending(limit int) ([]store.PendingCopy, error)
	RelayDone([]store.PendingCopy) error
	Import([]store.Hit) (store.ImportResult, error)
	Subscribe() *store.Subscription
}

// Syncer keeps a relay and its remote tracker in step: it registers the
// copies of the store's outbox, takes the opens waiting at the tracker into
// the store, and adopts the tracker's tracking keys when they change.
// While the tracker is unreachable it retries with growing delays (1s to
// a minute); nothing waits for it.
type Syncer struct {
	Store  RelayStore
	Client *Client
	Keys   *token.RemoteKeys
	// Details reports tracker.share_details now (hot reload); nil: false.
	Details func() bool
	Log     *slog.Logger // nil: slog.Default()

	// Wait is the long poll for opens (default 25s); Idle how often the
	// outbox is looked at without news from the store (default 30s).
	Wait, Idle time.Duration
	// MinBackoff and MaxBackoff bound the delay after a failure
	// (defaults 1s and 1 minute).
	MinBackoff, MaxBackoff time.Duration

	mu sync.Mutex
	st Status
}

// Status is the relay's view of its tracker, for `pixelrelay status`.
type Status struct {
	URL          string     `json:"url"`
	Relay        string     `json:"relay"`
	KeyVersion   int        `json:"key_version"`
	Reachable    bool       `json:"reachable"`
	LastContact  *time.Time `json:"last_contact"`
	LastError    string     `json:"last_error"`
	LastErrorAt  *time.Time `json:"last_error_at"`
	Registered   int64      `json:"registered"`    // copy states the tracker took since start
	Imported     int64      `json:"imported"`      // opens taken since start
	ClockSkewSec float64    `json:"clock_skew_s"`  // the tracker's clock minus this relay's, at the last contact
	Waiting      int        `json:"waiting"`       // copies the tracker has not been told yet
	ShareDetails bool       `json:"share_details"` // tracker.share_details
}

// batch is how many copies one registration carries and how many opens
// one pull takes.
const batch = 500

func (s *Syncer) defaults() {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if s.Wait <= 0 {
		s.Wait = 25 * time.Second
	}
	if s.Idle <= 0 {
		s.Idle = 30 * time.Second
	}
	if s.MinBackoff <= 0 {
		s.MinBackoff = time.Second
	}
	if s.MaxBackoff <= 0 {
		s.MaxBackoff = time.Minute
	}
}

// Run pushes and pulls until ctx ends.
func (s *Syncer) Run(ctx context.Context) {
	s.defaults()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.pushLoop(ctx) }()
	go func() { defer wg.Done(); s.pullLoop(ctx) }()
	wg.Wait()
}

// Status returns the syncer's view; waiting is the store's outbox count.
func (s *Syncer) Status(waiting int) Status {
	s.mu.Lock()
	st := s.st
	s.mu.Unlock()
	st.URL = s.Client.Base()
	st.Relay, _ = s.Keys.Relay()
	st.KeyVersion = s.Keys.Current()
	st.Waiting = waiting
	st.ShareDetails = s.details()
	return st
}

func (s *Syncer) details() bool { return s.Details != nil && s.Details() }

// pushLoop registers the outbox with the tracker.
func (s *Syncer) pushLoop(ctx context.Context) {
	sub := s.Store.Subscribe()
	defer sub.Close()
	fails := 0
	for ctx.Err() == nil {
		n, err := s.pushOnce(ctx)
		switch {
		case err != nil:
			fails++
			s.failed("registering copies", err)
			sleep(ctx, s.backoff(fails))
		case n == 0:
			fails = 0
			select {
			case <-sub.C:
				sub.Take()
			case <-time.After(s.Idle):
			case <-ctx.Done():
			}
		default:
			fails = 0
		}
	}
}

// pushOnce registers one batch of the outbox and returns its size.
func (s *Syncer) pushOnce(ctx context.Context) (int, error) {
	s.reloadKey()
	pending, err := s.Store.RelayPending(batch)
	if err != nil || len(pending) == 0 {
		return 0, err
	}
	details := s.details()
	states := make([]CopyState, 0, len(pending))
	for i := range pending {
		if token.ValidID(pending[i].TrackingID) { // an untracked copy has no pixel to tell about
			states = append(states, stateOf(&pending[i].Copy, details))
		}
	}
	if len(states) > 0 {
		resp, err := s.Client.Register(ctx, states)
		if err != nil {
			return 0, err
		}
		s.contact(resp.Now, func(st *Status) { st.Registered += int64(len(states)) })
		s.checkKeys(ctx, resp.KeyVersion)
	}
	return len(pending), s.Store.RelayDone(pending)
}

// pullLoop takes the waiting opens into the store.
func (s *Syncer) pullLoop(ctx context.Context) {
	s.refreshKeys(ctx)
	fails := 0
	for ctx.Err() == nil {
		if err := s.pullOnce(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			fails++
			s.failed("taking opens", err)
			sleep(ctx, s.backoff(fails))
			continue
		}
		fails = 0
	}
}

// pullOnce takes one batch of opens (waiting for the first), stores it and
// acknowledges it. A crash between the two only means the same opens are
// offered again, and Import stores each once.
func (s *Syncer) pullOnce(ctx context.Context) error {
	s.reloadKey()
	resp, err := s.Client.Opens(ctx, batch, s.Wait)
	if err != nil {
		return err
	}
	s.contact(resp.Now, nil)
	s.checkKeys(ctx, resp.KeyVersion)
	if len(resp.Opens) == 0 {
		return nil
	}
	hits := make([]store.Hit, len(resp.Opens))
	seqs := make([]uint64, len(resp.Opens))
	for i := range resp.Opens {
		hits[i] = resp.Opens[i].Hit()
		seqs[i] = resp.Opens[i].Seq
	}
	res, err := s.Store.Import(hits)
	if err != nil {
		return err
	}
	if _, err := s.Client.Ack(ctx, seqs); err != nil {
		return err
	}
	s.note(func(st *Status) { st.Imported += int64(res.Stored) })
	if res.Unknown > 0 {
		s.Log.Warn("opens of copies this relay does not know (purged here?) were dropped", "count", res.Unknown)
	}
	return nil
}

// reloadKey takes a relay key imported while serve runs.
func (s *Syncer) reloadKey() {
	changed, err := s.Keys.Reload()
	if err != nil {
		s.failed("reading the relay key", err)
	} else if changed {
		name, _ := s.Keys.Relay()
		s.Log.Info("relay key file changed; using it", "relay", name, "path", s.Keys.Path())
	}
}

// checkKeys fetches the tracker's keys when its current version is not
// the one this relay mints with.
func (s *Syncer) checkKeys(ctx context.Context, version int) {
	if version != 0 && version != s.Keys.Current() {
		s.refreshKeys(ctx)
	}
}

// refreshKeys adopts the tracker's tracking keys.
func (s *Syncer) refreshKeys(ctx context.Context) {
	resp, err := s.Client.Keys(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.failed("fetching tracking keys", err)
		}
		return
	}
	changed, err := s.Keys.SetKeys(resp.CurrentVersion, resp.TrackingKeys)
	if err != nil {
		s.failed("saving tracking keys", err)
		return
	}
	if changed {
		s.Log.Info("tracking keys updated from the tracker", "current_version", resp.CurrentVersion, "versions", len(resp.TrackingKeys))
	}
}

// contact notes a successful exchange and the tracker's clock.
func (s *Syncer) contact(trackerNow time.Time, fn func(*Status)) {
	now := s.Client.now().UTC()
	s.note(func(st *Status) {
		st.Reachable = true
		st.LastContact = &now
		if !trackerNow.IsZero() {
			st.ClockSkewSec = trackerNow.Sub(now).Round(time.Second).Seconds()
		}
		if fn != nil {
			fn(st)
		}
	})
}

// failed notes and logs a failure (at most once a minute for the same
// message while it lasts).
func (s *Syncer) failed(what string, err error) {
	now := time.Now().UTC()
	msg := what + ": " + err.Error()
	var again bool
	s.note(func(st *Status) {
		again = st.LastError == msg && st.LastErrorAt != nil && now.Sub(*st.LastErrorAt) < time.Minute
		st.Reachable = false
		if !again {
			st.LastError, st.LastErrorAt = msg, &now
		}
	})
	if again {
		return
	}
	level := slog.LevelWarn
	if errors.Is(err, ErrRefused) {
		level = slog.LevelError
	}
	s.Log.Log(context.Background(), level, "remote tracker: "+what+" failed; will retry (mail is accepted and delivered meanwhile)", "tracker", s.Client.Base(), "err", err)
}

func (s *Syncer) note(fn func(*Status)) {
	s.mu.Lock()
	fn(&s.st)
	s.mu.Unlock()
}

// backoff is the delay after the n-th failure in a row: doubling from
// MinBackoff, at most MaxBackoff.
func (s *Syncer) backoff(n int) time.Duration {
	d := s.MinBackoff
	for i := 1; i < n && d < s.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, s.MaxBackoff)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
