// Package deliver sends copies upstream. Two relay.Upstream
// implementations: Outbox writes each copy as an .eml file in a
// maildir-style folder (the default, upstream.url = "outbox"); SMTP relays
// to an SMTP server (smtp:// with STARTTLS, smtps:// with implicit TLS)
// over a pool of reused connections. New picks one from the current config
// at every delivery.
package deliver

import (
	"context"
	"io"
	"log/slog"
	"sync"

	"pixelrelay/config"
	"pixelrelay/relay"
)

// New returns the upstream named by upstream.url: "outbox" (or empty)
// writes to data_dir/outbox, anything else goes to NewSMTP. The choice is
// made again at each Deliver, so a hot reload that changes upstream.url or
// data_dir takes effect at once; the upstream it replaces is closed.
func New(cfg func() *config.Config, log *slog.Logger) relay.Upstream {
	if log == nil {
		log = slog.Default()
	}
	return &switcher{cfg: cfg, log: log}
}

type switcher struct {
	cfg func() *config.Config
	log *slog.Logger

	mu  sync.Mutex
	key string
	cur relay.Upstream
}

func (sw *switcher) Deliver(ctx context.Context, from string, to []string, msg io.Reader) error {
	return sw.pick().Deliver(ctx, from, to, msg)
}

// pick returns the upstream for the current config.
func (sw *switcher) pick() relay.Upstream {
	cfg := sw.cfg()
	key, dir := "smtp", ""
	if isOutbox(cfg.Upstream.URL) {
		dir = cfg.OutboxDir()
		key = "outbox:" + dir
	}
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.cur != nil && sw.key == key {
		return sw.cur
	}
	if sw.cur != nil {
		sw.log.Info("upstream changed", "from", sw.key, "to", key)
		sw.cur.Close()
	}
	if dir != "" {
		sw.cur = NewOutbox(dir)
	} else {
		sw.cur = NewSMTP(sw.cfg, sw.log)
	}
	sw.key = key
	return sw.cur
}

func (sw *switcher) Close() error {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.cur == nil {
		return nil
	}
	err := sw.cur.Close()
	sw.cur, sw.key = nil, ""
	return err
}

func isOutbox(url string) bool { return url == "" || url == "outbox" }
