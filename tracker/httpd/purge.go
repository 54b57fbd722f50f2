package httpd

import (
	"context"
	"errors"
	"time"

	"pixelrelay/tracker/store"
)

// ErrPurgeRunning is returned when a purge is asked for while one runs.
var ErrPurgeRunning = errors.New("a purge is already running")

// defaultRetention applies when tracking.retention is not set.
const defaultRetention = 90 * 24 * time.Hour

// Purge deletes opens older than age and compacts the database. The store
// logs its start, progress and result; a failure is logged here. Only one
// purge runs at a time; a second gets ErrPurgeRunning.
func (s *Server) Purge(ctx context.Context, age time.Duration) (store.PurgeResult, error) {
	if !s.purgeMu.TryLock() {
		return store.PurgeResult{}, ErrPurgeRunning
	}
	defer s.purgeMu.Unlock()
	before := s.now().Add(-age).UTC()
	res, err := s.opt.Store.Purge(ctx, before, nil)
	s.opt.Metrics.Purge(res.Deleted, res.DeletedClicks, err)
	if err != nil {
		s.log.Error("purge failed", "older_than", age.String(), "err", err)
	}
	return res, err
}

// retention is tracking.retention, or 90 days when unset.
func (s *Server) retention() time.Duration {
	if d := s.current().cfg.Tracking.Retention.D(); d > 0 {
		return d
	}
	return defaultRetention
}

// RunPurge purges opens older than tracking.retention shortly after start
// (Options.PurgeDelay) and then every Options.PurgeEvery (a day), until ctx
// ends. A purge already running (from the API) is skipped, not waited for.
func (s *Server) RunPurge(ctx context.Context) error {
	delay, every := s.opt.PurgeDelay, s.opt.PurgeEvery
	if delay <= 0 {
		delay = time.Minute
	}
	if every <= 0 {
		every = 24 * time.Hour
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if _, err := s.Purge(ctx, s.retention()); errors.Is(err, ErrPurgeRunning) {
			s.log.Info("scheduled purge skipped: one is already running")
		}
		t.Reset(every)
	}
}
