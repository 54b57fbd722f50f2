// Package deliver sends copies upstream. Two relay.Upstream
// implementations: Outbox writes each copy as an .eml file in a
// maildir-style folder (the default, upstream.url = "outbox"); SMTP relays
// to an SMTP server (smtp:// with STARTTLS, smtps:// with implicit TLS)
// over a pool of reused connections. New picks one from the current config
// at every delivery; Accounts keeps one such upstream per account.
package deliver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

	"pixelrelay/config"
	"pixelrelay/relay"
)

// New returns the upstream named by upstream.url: "outbox" (or empty)
// writes to data_dir/outbox, anything else goes to NewSMTP. The choice is
// made again at each Deliver, so a hot reload that changes upstream.url or
// data_dir takes effect at once; the upstream it replaces is closed.
func New(cfg func() *config.Config, log *slog.Logger) relay.Upstream {
	return newSwitcher(cfg, config.DefaultAccount, log)
}

func newSwitcher(cfg func() *config.Config, account string, log *slog.Logger) *switcher {
	if log == nil {
		log = slog.Default()
	}
	return &switcher{cfg: cfg, account: account, log: log}
}

type switcher struct {
	cfg     func() *config.Config
	account string
	log     *slog.Logger

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
	if isOutbox(upstreamOf(cfg, sw.account).URL) {
		dir = cfg.OutboxDir()
		key = "outbox:" + dir
	}
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.cur != nil && sw.key == key {
		return sw.cur
	}
	if sw.cur != nil {
		sw.log.Info("upstream changed", "account", sw.account, "from", sw.key, "to", key)
		sw.cur.Close()
	}
	if dir != "" {
		sw.cur = NewOutbox(dir)
	} else {
		sw.cur = NewAccountSMTP(sw.cfg, sw.account, sw.log)
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

// Accounts keeps one upstream per account ([upstream] is "default", see
// config.Accounts), each with its own settings, credentials and connection
// pool, made when first used. Safe for concurrent use.
type Accounts struct {
	cfg func() *config.Config
	log *slog.Logger

	mu   sync.Mutex
	seen *config.Config // the config the set of upstreams was last checked against
	by   map[string]*switcher
}

// NewAccounts returns the upstreams of cfg's accounts.
func NewAccounts(cfg func() *config.Config, log *slog.Logger) *Accounts {
	if log == nil {
		log = slog.Default()
	}
	return &Accounts{cfg: cfg, log: log, by: map[string]*switcher{}}
}

// For returns the upstream of the account called name: "" and an account
// the config does not have (removed by a reload) get [upstream]'s. After a
// reload the upstreams of removed accounts are closed.
func (a *Accounts) For(name string) relay.Upstream {
	cfg := a.cfg()
	if _, ok := cfg.Account(name); !ok {
		name = config.DefaultAccount
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if cfg != a.seen {
		a.seen = cfg
		for n, sw := range a.by {
			if _, ok := cfg.Account(n); !ok {
				a.log.Info("account removed: its upstream connections are closed", "account", n)
				go sw.Close()
				delete(a.by, n)
			}
		}
	}
	sw := a.by[name]
	if sw == nil {
		sw = newSwitcher(a.cfg, name, a.log)
		a.by[name] = sw
	}
	if name == config.DefaultAccount {
		return sw
	}
	return accountUpstream{sw, accountKey(cfg, name)}
}

// Close closes every account's upstream.
func (a *Accounts) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	for n, sw := range a.by {
		errs = append(errs, sw.Close())
		delete(a.by, n)
	}
	return errors.Join(errs...)
}

// accountKey is the config key of the [[accounts]] block called name
// ("accounts[1]").
func accountKey(cfg *config.Config, name string) string {
	for i, a := range cfg.Named {
		if a.Name == name {
			return fmt.Sprintf("accounts[%d]", i)
		}
	}
	return "upstream"
}

// accountUpstream is a named account's upstream: the hints of its setup
// failures name its own keys ("check accounts[1].username ..."), not
// [upstream]'s.
type accountUpstream struct {
	relay.Upstream
	key string
}

func (u accountUpstream) Deliver(ctx context.Context, from string, to []string, msg io.Reader) error {
	err := u.Upstream.Deliver(ctx, from, to, msg)
	if de, ok := err.(*relay.DeliveryError); ok && de.Class == relay.Setup {
		cp := *de
		cp.Err = keyedError{err: de.Err, key: u.key}
		return &cp
	}
	return err
}

// keyedError names an account's keys in place of [upstream]'s.
type keyedError struct {
	err error
	key string
}

func (e keyedError) Error() string {
	var pairs []string
	for _, k := range upstreamKeys {
		pairs = append(pairs, "upstream."+k, e.key+"."+k)
	}
	return strings.NewReplacer(pairs...).Replace(e.err.Error())
}

// upstreamKeys are the keys setup failures name (not a host such as
// upstream.example.com), longest first where one starts another.
var upstreamKeys = []string{"password_file", "password", "username", "url", "tls", "ca_file",
	"oauth_client_id", "oauth_client_secret", "oauth_token_url", "oauth_auth_url", "auth"}

func (e keyedError) Unwrap() error { return e.err }
