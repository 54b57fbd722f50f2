package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"pixelrelay/config"
)

// listeners holds the SMTP and HTTP listeners in use and moves them when a
// reload changes smtp.listen or http.listen.
type listeners struct {
	mu      sync.Mutex
	smtp    binding
	http    binding
	stopped bool
	addr    atomic.Pointer[string] // the SMTP address in use, for /api/status

	errc chan error // a server that failed (not one whose listener was closed)
	log  *slog.Logger
}

// binding is one server's listener and the configured address it was bound
// for.
type binding struct {
	key   string // config key: smtp.listen or http.listen
	want  string // the configured address ln was bound for
	ln    net.Listener
	serve func(net.Listener) error
}

// start serves both listeners.
func (l *listeners) start() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.smtp.ln != nil { // serve --tracker-only has no SMTP listener
		l.setSMTPAddr()
		go l.run(&l.smtp, l.smtp.ln)
	}
	go l.run(&l.http, l.http.ln)
}

// run serves ln until it is closed (by a re-bind or Shutdown) and reports
// any other error.
func (l *listeners) run(b *binding, ln net.Listener) {
	l.report(serveErr(strings.TrimSuffix(b.key, ".listen"), b.serve(ln)))
}

// report hands a failure to waitForStop; nil is dropped.
func (l *listeners) report(err error) {
	if err == nil {
		return
	}
	select {
	case l.errc <- err:
	default: // already stopping
		l.log.Error("server failed while stopping", "err", err)
	}
}

// smtpAddr is the SMTP address in use.
func (l *listeners) smtpAddr() string {
	if p := l.addr.Load(); p != nil {
		return *p
	}
	return ""
}

func (l *listeners) setSMTPAddr() {
	a := l.smtp.ln.Addr().String()
	l.addr.Store(&a)
}

// stop makes later reloads leave the listeners alone (the servers are
// shutting down and close them).
func (l *listeners) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
}

// apply re-binds each listener whose configured address differs from cfg.
// It is also the retry after a failed bind.
func (l *listeners) apply(cfg *config.Config) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	if l.smtp.ln != nil && l.move(&l.smtp, cfg.SMTP.Listen) {
		l.setSMTPAddr()
	}
	l.move(&l.http, cfg.HTTP.Listen)
}

// move binds want first and serves it, then closes the old listener only:
// sessions and requests already open on it run to their end. When want
// cannot be bound the old listener stays in use. It reports whether the
// listener moved. l.mu must be held.
func (l *listeners) move(b *binding, want string) bool {
	if want == b.want {
		return false
	}
	ln, err := net.Listen("tcp", want)
	if err != nil {
		l.log.Error(fmt.Sprintf("%s: cannot listen on %s; still listening on %s (saving the config again or SIGHUP retries)", b.key, want, b.ln.Addr()),
			"key", b.key, "err", err)
		return false
	}
	old := b.ln
	b.ln, b.want = ln, want
	go l.run(b, ln)
	if err := old.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		l.log.Warn(b.key+": closing the old listener", "err", err)
	}
	l.log.Info(fmt.Sprintf("%s: now listening on %s (was %s)", b.key, ln.Addr(), old.Addr()))
	return true
}
