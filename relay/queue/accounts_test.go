package queue

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pixelrelay/config"
	"pixelrelay/relay"
	"pixelrelay/tracker/record"
)

// accountsConfig has two named accounts besides [upstream]: "work" for
// @work.test senders (one connection) and "bob" for the SMTP user bob.
func accountsConfig() *config.Config {
	c := testConfig()
	c.Named = []config.Account{
		{Name: "work", Senders: []string{"@work.test"}, Upstream: config.Upstream{Connections: 1, Username: "me@work.test"}},
		{Name: "bob", SMTPUsers: []string{"bob"}, Upstream: config.Upstream{Connections: 1}},
	}
	return c
}

// accountsHarness is a harness whose upstream is one fake per account and
// whose config can be swapped (a reload).
type accountsHarness struct {
	*harness
	cfg atomic.Pointer[config.Config]
	ups map[string]*fakeUpstream
}

func newAccountsHarness(t *testing.T, log *slog.Logger) *accountsHarness {
	h := &accountsHarness{harness: newHarness(t, nil), ups: map[string]*fakeUpstream{}}
	h.cfg.Store(accountsConfig())
	for _, n := range []string{"default", "work", "bob"} {
		h.ups[n] = newFakeUpstream()
	}
	if log == nil {
		log = quiet
	}
	h.openWith(func(o *Options) {
		o.Config = h.cfg.Load
		o.Upstream = func(name string) relay.Upstream { return h.ups[name] }
		o.Log = log
	}, true)
	return h
}

func (h *accountsHarness) spoolAs(user, from string, to ...string) string {
	h.t.Helper()
	id, err := h.q.SpoolUser(user, from, to, strings.NewReader(htmlMsg))
	if err != nil {
		h.t.Fatal(err)
	}
	return id
}

// TestAccountRouting: each message goes to the upstream of the account its
// envelope sender or SMTP user chose, and its records name that account;
// the recipient that is the account's own address is not tracked.
func TestAccountRouting(t *testing.T) {
	h := newAccountsHarness(t, nil)
	tests := []struct {
		user, from, rcpt, want string
	}{
		{"", "Alice@Work.Test", "a@ex.test", "work"},
		{"bob", "bob@home.test", "b@ex.test", "bob"},
		{"bob", "boss@work.test", "c@ex.test", "work"}, // senders come first in the same block order
		{"carol", "carol@home.test", "d@ex.test", "default"},
		{"", "", "e@ex.test", "default"},
	}
	for _, tt := range tests {
		h.spoolAs(tt.user, tt.from, tt.rcpt)
	}
	waitFor(t, "spool to empty", func() bool { return h.q.Len() == 0 })
	for _, tt := range tests {
		n := 0
		for name, up := range h.ups {
			for _, d := range up.deliveries() {
				if d.to[0] == tt.rcpt {
					n++
					if name != tt.want {
						t.Errorf("%s (from %q, user %q) went to %s, want %s", tt.rcpt, tt.from, tt.user, name, tt.want)
					}
				}
			}
		}
		if n != 1 {
			t.Errorf("%s delivered %d times", tt.rcpt, n)
		}
		for _, c := range h.rec.copies {
			if c.Recipient == tt.rcpt && c.Account != tt.want {
				t.Errorf("record of %s: account %q, want %q", tt.rcpt, c.Account, tt.want)
			}
		}
	}

	h.spoolAs("", "alias@work.test", "me@work.test", "f@ex.test")
	waitFor(t, "spool to empty", func() bool { return h.q.Len() == 0 })
	for _, c := range h.rec.copies {
		if c.Recipient == "me@work.test" && c.UntrackedReason != "sender" {
			t.Errorf("the work account's own address: untracked reason %q, want sender", c.UntrackedReason)
		}
		if c.Recipient == "f@ex.test" && !c.Tracked() {
			t.Errorf("f@ex.test not tracked: %s", c.UntrackedReason)
		}
	}
}

// heldUpstreams hold every delivery of one account until released.
type heldFake struct {
	*fakeUpstream
	release chan struct{}
	started chan struct{}
}

func (h *heldFake) Deliver(ctx context.Context, from string, to []string, r io.Reader) error {
	b, _ := io.ReadAll(r)
	h.started <- struct{}{}
	<-h.release
	return h.fakeUpstream.Deliver(ctx, from, to, bytes.NewReader(b))
}

// TestAccountConnections: an account uses at most its own connections,
// and while they are all busy the other accounts' copies still go.
func TestAccountConnections(t *testing.T) {
	h := &accountsHarness{harness: newHarness(t, nil), ups: map[string]*fakeUpstream{}}
	h.cfg.Store(accountsConfig())
	work := &heldFake{fakeUpstream: newFakeUpstream(), release: make(chan struct{}), started: make(chan struct{}, 10)}
	def := newFakeUpstream()
	h.openWith(func(o *Options) {
		o.Config = h.cfg.Load
		o.Upstream = func(name string) relay.Upstream {
			if name == "work" {
				return work
			}
			return def
		}
	}, true)
	for _, r := range []string{"a@ex.test", "b@ex.test", "c@ex.test"} {
		h.spoolAs("", "me@work.test", r)
	}
	<-work.started
	h.spoolAs("", "me@home.test", "d@ex.test")
	waitFor(t, "the default account's copy while work's connection is busy", func() bool { return len(def.deliveries()) == 1 })
	select {
	case <-work.started:
		t.Fatal("a second work copy started: work has one connection")
	case <-time.After(100 * time.Millisecond):
	}
	entries := h.q.Entries()
	for _, e := range entries {
		if e.Account != "work" {
			t.Errorf("queue entry %v: account %q, want work", e.Recipients, e.Account)
		}
	}
	if len(entries) != 3 {
		t.Errorf("%d entries waiting, want 3 (one in flight, two queued)", len(entries))
	}
	close(work.release)
	for range 2 {
		<-work.started
	}
	waitFor(t, "spool to empty", func() bool { return h.q.Len() == 0 })
	if n := len(work.deliveries()); n != 3 || work.maxActive != 1 {
		t.Errorf("work: %d deliveries, at most %d at once; want 3, 1", n, work.maxActive)
	}
}

// SetAccount makes fakeRecorder a record.AccountSetter.
func (r *fakeRecorder) SetAccount(ids []string, account string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		if c, ok := r.copies[id]; ok {
			c.Account = account
			r.copies[id] = c
		}
	}
	return nil
}

func (r *fakeRecorder) accountOf(rcpt string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.copies {
		if c.Recipient == rcpt {
			return c.Account
		}
	}
	return ""
}

// lockedBuffer is a log destination safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestAccountRemoved: a reload that removes an account sends its deferred
// copies to the default account (logged once), and the queue and their
// records show them there.
func TestAccountRemoved(t *testing.T) {
	var logs lockedBuffer
	h := newAccountsHarness(t, slog.New(slog.NewTextHandler(&logs, nil)))
	cfg := accountsConfig()
	cfg.Queue.MinRetry = config.Duration(time.Hour) // deferred until the Kick
	cfg.Queue.MaxRetry = config.Duration(time.Hour)
	h.cfg.Store(cfg)
	h.ups["work"].always["a@ex.test"] = temporary("451 4.3.0 try later")
	h.spoolAs("", "me@work.test", "a@ex.test")
	waitFor(t, "the work copy deferred", func() bool {
		e := h.q.Entries()
		return len(e) == 1 && e[0].Status == record.StatusDeferred && e[0].Account == "work"
	})

	next := *cfg
	next.Named = cfg.Named[1:] // work removed
	h.cfg.Store(&next)
	if e := h.q.Entries(); len(e) != 1 || e[0].Account != "default" {
		t.Errorf("entries after the reload: %+v, want the copy under default", e)
	}
	if a := h.rec.accountOf("a@ex.test"); a != "work" {
		t.Errorf("record's account before the move: %q", a)
	}
	h.q.Reroute()
	h.q.Reroute()
	if a := h.rec.accountOf("a@ex.test"); a != "default" {
		t.Errorf("record's account after the move: %q, want default", a)
	}
	h.q.Kick()
	waitFor(t, "spool to empty", func() bool { return h.q.Len() == 0 })
	if d := h.ups["default"].deliveries(); len(d) != 1 || d[0].to[0] != "a@ex.test" {
		t.Errorf("default account delivered %+v", d)
	}
	if n := strings.Count(logs.String(), "account removed from the config"); n != 1 {
		t.Errorf("%d log lines about the removed account, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "account=work messages=1") {
		t.Errorf("log does not name the account and its messages:\n%s", logs.String())
	}
}
