package webhook

import (
	"context"
	"sync"
	"time"
)

// worker delivers one endpoint's events, in order, one at a time.
type worker struct {
	m      *Manager
	wake   chan struct{} // new events, or a reset
	reset  chan struct{} // a test ping got a 2xx: retry now, enable again
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	cfg Config // Events, HumanOnly and SecretFile change in place on reload
}

func (w *worker) setConfig(c Config) {
	w.mu.Lock()
	w.cfg = c
	w.mu.Unlock()
}

func (w *worker) config() Config {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cfg
}

// stop cancels the worker and waits for it.
func (w *worker) stop() {
	w.cancel()
	<-w.done
}

// never is a wait with no end: until woken.
const never = time.Duration(-1)

// retryStoreError is the wait after the store failed to answer.
const retryStoreError = 5 * time.Second

func (w *worker) run(ctx context.Context) {
	defer close(w.done)
	for {
		wait, err := w.round(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			w.m.log.Error("webhook: the store failed; trying again", "webhook", w.cfg.Name, "err", err, "in", retryStoreError)
			wait = retryStoreError
		}
		if !w.sleep(ctx, wait) {
			return
		}
	}
}

// sleep waits for d (never: no timeout), a wake or a reset; false when
// the worker is stopped.
func (w *worker) sleep(ctx context.Context, d time.Duration) bool {
	if d == 0 {
		return ctx.Err() == nil
	}
	var timer <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ctx.Done():
		return false
	case <-w.wake:
	case <-timer:
	}
	return true
}

// round makes the attempts that are due and saves their outcome; it
// returns how long to wait before the next round.
func (w *worker) round(ctx context.Context) (time.Duration, error) {
	cfg := w.config()
	st, err := w.m.opt.Outbox.WebhookState(cfg.Name)
	if err != nil {
		return 0, err
	}
	now := w.m.opt.Now()
	changed := false
	if st.URL != cfg.URL { // a new endpoint, or a new URL: start afresh
		st = State{URL: cfg.URL, Delivered: st.Delivered, Expired: st.Expired, Dropped: st.Dropped,
			LastSuccess: st.LastSuccess, LastError: st.LastError, LastErrorAt: st.LastErrorAt}
		changed = true
	}
	select {
	case <-w.reset:
		st.Disabled, st.DisabledReason, st.DisabledAt = false, "", time.Time{}
		st.Failures, st.NextAttempt = 0, time.Time{}
		changed = true
	default:
	}
	if st.Disabled {
		return never, nil
	}
	if st.NextAttempt.After(now) {
		return st.NextAttempt.Sub(now), nil
	}
	evs, err := w.m.opt.Outbox.PendingEvents(cfg.Name, w.m.opt.Batch)
	if err != nil || len(evs) == 0 {
		if err == nil && changed {
			_, err = w.m.opt.Outbox.RecordWebhook(cfg.Name, nil, time.Time{}, st)
		}
		return never, err
	}
	return w.deliver(ctx, &cfg, st, evs)
}

// deliver posts evs in order until one fails, then saves the outcome in
// one transaction.
func (w *worker) deliver(ctx context.Context, cfg *Config, st State, evs []Event) (time.Duration, error) {
	var done []uint64
	var expireBefore time.Time
	wait := time.Duration(0) // more may be waiting
	for _, ev := range evs {
		res := Post(ctx, w.m.opt.Client, &cfg.Endpoint, ev.ID, ev.Body, w.m.opt.Now())
		now := w.m.opt.Now()
		if ctx.Err() != nil {
			break // stopping: the attempt does not count
		}
		if res.OK() {
			done = append(done, ev.Seq)
			st.Delivered++
			st.LastSuccess, st.Failures, st.NextAttempt = now, 0, time.Time{}
			continue
		}
		st.LastError, st.LastErrorAt = res.Err, now
		if res.Gone() {
			return never, w.disable(cfg, st, done, res, now)
		}
		st.Failures++
		st.NextAttempt = now.Add(w.m.delay(st.Failures, res.RetryAfter))
		expireBefore = now.Add(-w.m.opt.MaxAge)
		wait = st.NextAttempt.Sub(now)
		w.m.log.Warn("webhook: delivery failed; will retry", "webhook", cfg.Name, "event", ev.Type, "webhook_id", ev.ID,
			"err", res.Err, "failures", st.Failures, "next_attempt", st.NextAttempt.UTC().Format(time.RFC3339))
		break
	}
	expired, err := w.m.opt.Outbox.RecordWebhook(cfg.Name, done, expireBefore, st)
	if expired > 0 {
		w.m.log.Warn("webhook: events dropped after retrying for their maximum age", "webhook", cfg.Name,
			"events", expired, "max_age", w.m.opt.MaxAge, "last_error", st.LastError)
	}
	return wait, err
}

// disable handles 410 Gone: the delivered events are saved, then the
// endpoint is disabled and its waiting events dropped.
func (w *worker) disable(cfg *Config, st State, done []uint64, res Result, now time.Time) error {
	if len(done) > 0 {
		if _, err := w.m.opt.Outbox.RecordWebhook(cfg.Name, done, time.Time{}, st); err != nil {
			return err
		}
	}
	st.DisabledReason = "410 Gone: the endpoint asked for no more events"
	st.DisabledAt = now
	st.Failures, st.NextAttempt = 0, time.Time{}
	dropped, err := w.m.opt.Outbox.DisableWebhook(cfg.Name, st)
	w.m.log.Warn("webhook: endpoint answered 410 Gone; it is disabled and its waiting events are dropped "+
		"(change its url, or get a 2xx from `pixelrelay webhooks test`, to enable it again)",
		"webhook", cfg.Name, "url", cfg.URL, "dropped", dropped)
	return err
}
