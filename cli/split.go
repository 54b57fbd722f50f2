package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"pixelrelay/config"
	"pixelrelay/tracker/classify"
	"pixelrelay/tracker/httpd"
	"pixelrelay/tracker/record"
	"pixelrelay/tracker/remote"
	"pixelrelay/tracker/store"
	"pixelrelay/tracker/token"
)

// split is how `serve` takes part in a split deployment (CONTRACT.md
// "Where the tracker runs"): as the public tracker (serve --tracker-only),
// as a relay whose tracker runs elsewhere (tracker.remote_url), or neither
// (all in one; every method then keeps the all-in-one behaviour).
type split struct {
	trackerOnly bool
	keys        *token.Keyring
	clock       func() time.Time
	log         *slog.Logger

	handler *remote.Handler // a public tracker's relay API

	// A relay with a remote tracker:
	remoteKeys *token.RemoteKeys
	client     *remote.Client
	syncer     *remote.Syncer
}

// newSplit prepares the split deployment's parts for cfg. A relay with
// tracker.remote_url needs its relay key file.
func newSplit(cfg *config.Config, keys *token.Keyring, trackerOnly bool, log *slog.Logger) (*split, error) {
	sp := &split{trackerOnly: trackerOnly, keys: keys, clock: testClock(log), log: log}
	if trackerOnly && cfg.Split() {
		return nil, fmt.Errorf("tracker.remote_url is set: this config is a relay's, and --tracker-only runs the tracker; drop one")
	}
	if !cfg.Split() {
		return sp, nil
	}
	rk, err := token.OpenRemoteKeys(cfg.RemoteKeyPath())
	if err != nil {
		return nil, fmt.Errorf("tracker.remote_key_file: %w", err)
	}
	sp.remoteKeys = rk
	sp.client = remote.NewClient(cfg.Tracker.RemoteURL, func() string { _, s := rk.Relay(); return s }, sp.clock)
	return sp, nil
}

// relay reports a relay whose tracker runs elsewhere.
func (sp *split) relay() bool { return sp.remoteKeys != nil }

// storeOptions sets the store's part in the deployment.
func (sp *split) storeOptions(o *store.Options, current func() *config.Config) {
	o.Now = sp.clock
	o.RelayOutbox = sp.relay()
	if !sp.trackerOnly {
		return
	}
	o.TrackerOnly = true
	o.Rejudge = func(h *store.Hit, sentAt time.Time) {
		window := current().Tracking.PrefetchWindow.D()
		if window > 0 && h.Reason == classify.ReasonHuman && classify.InPrefetchWindow(sentAt, h.At, window) {
			r := classify.WindowResult(window)
			h.Bot, h.BotType, h.Proxy, h.Reason = r.Bot, r.BotType, r.Proxy, r.Reason
		}
	}
}

// minter is what the queue mints tokens with: the tracker's keys on a
// relay whose tracker runs elsewhere, else this process's own.
func (sp *split) minter() record.Minter {
	if sp.relay() {
		return sp.remoteKeys
	}
	return sp.keys
}

// linkMinter is what the queue makes link tokens with: like minter, the
// tracker's keys on a relay whose tracker runs elsewhere (which takes
// each copy's link URLs with its registration).
func (sp *split) linkMinter() record.LinkMinter {
	if sp.relay() {
		return sp.remoteKeys
	}
	return sp.keys
}

// httpOptions sets the HTTP server's part in the deployment.
func (sp *split) httpOptions(o *httpd.Options, st store.DB, current func() *config.Config) {
	o.Now = sp.clock
	switch {
	case sp.trackerOnly:
		o.Role = "tracker"
		o.KeepUnknown = true
		sp.handler = &remote.Handler{Store: st, Keys: sp.keys, Log: sp.log, Now: sp.clock}
		o.Relay = sp.handler
		o.AdminRoutes = &remote.AdminHandler{Keys: sp.keys, BaseURL: func() string { return current().Tracking.BaseURL }}
	case sp.relay():
		o.Keys = &remote.RelayKeys{Local: sp.keys, Remote: sp.remoteKeys, Client: sp.client}
		sp.syncer = &remote.Syncer{Store: st, Client: sp.client, Keys: sp.remoteKeys, Log: sp.log,
			Details: func() bool { return current().Tracker.ShareDetails }}
		o.Remote = func() any {
			n := 0
			if s, err := st.Stats(); err == nil {
				n = s.RelayOutbox
			}
			return sp.syncer.Status(n)
		}
	}
}

// start keeps a relay and its tracker in step until ctx ends; the
// returned channel is closed when it has stopped.
func (sp *split) start(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	if sp.syncer == nil {
		close(done)
		return done
	}
	sp.log.Info("registering copies with the remote tracker and taking its opens", "tracker", sp.client.Base(),
		"relay_key", sp.remoteKeys.Path(), "share_details", sp.syncer.Details())
	go func() {
		defer close(done)
		sp.syncer.Run(ctx)
	}()
	return done
}

// shutdown ends a public tracker's long polls, so that the HTTP server's
// shutdown does not wait for them.
func (sp *split) shutdown() {
	if sp.handler != nil {
		sp.handler.Shutdown()
	}
}

// ClockOffsetEnv shifts the clock of serve's tracker and relay bookkeeping
// by a Go duration. TESTS ONLY: the split deployment's tests run a tracker
// whose clock is minutes off the relay's.
const ClockOffsetEnv = "PIXELRELAY_TEST_CLOCK_OFFSET"

// testClock is time.Now, shifted by $PIXELRELAY_TEST_CLOCK_OFFSET.
func testClock(log *slog.Logger) func() time.Time {
	v := os.Getenv(ClockOffsetEnv)
	if v == "" {
		return time.Now
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		log.Warn(ClockOffsetEnv+" is not a Go duration; ignored", "value", v)
		return time.Now
	}
	log.Warn(ClockOffsetEnv+" is set: this process's tracker clock is shifted (tests only)", "offset", d)
	return func() time.Time { return time.Now().Add(d) }
}
