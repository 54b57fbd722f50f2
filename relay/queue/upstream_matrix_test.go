package queue

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"pixelrelay/config"
	"pixelrelay/relay"
	"pixelrelay/relay/deliver"
	"pixelrelay/relay/smtptest"
	"pixelrelay/tracker/record"
)

// The upstream fault matrix (issue 7): the real queue delivering through the
// real SMTP upstream client (relay/deliver) to a scripted fake server
// (relay/smtptest). Every row injects one fault and asserts, by counting
// what the server accepted, that the copy ends as CONTRACT.md §7 says:
// delivered once the fault is gone, or exactly one DSN to the sender.

// matrixOutcome is what a row's fault must lead to.
type matrixOutcome int

const (
	// retried: a temporary failure; the copy is deferred and retried, and
	// delivered exactly once after the fault is removed.
	retried matrixOutcome = iota
	// waits: a setup failure (our credentials, certificate, sending
	// limit); deferred with the reason in last_error, never bounced, and
	// delivered exactly once after the fault is fixed.
	waits
	// bounced: a permanent failure; exactly one DSN to the sender lists
	// exactly the faulty recipients, which are tried once and get nothing.
	bounced
)

func (o matrixOutcome) String() string {
	return [...]string{"retried then delivered", "waits (setup) then delivered", "bounced"}[o]
}

// matrixRow is one fault.
type matrixRow struct {
	name    string
	script  smtptest.Script  // the server while the fault lasts
	healthy *smtptest.Script // the server after the fix; nil: smtptest.Script{}
	down    bool             // the server is not listening (connection refused) until the fix
	scheme  string           // "smtp" (default) or "smtps"
	tls     string           // upstream.tls: "none" (default) or "required"
	// config puts a fault on our side (credentials, CA); fixConfig fixes
	// it (a hot reload).
	config, fixConfig func(u *config.Upstream, srv *smtptest.Server)
	rcpts             []string // default: one tracked recipient
	faulty            []string // the recipients the fault hits; default: all
	outcome           matrixOutcome
	reason            string // in last_error (and the DSN's Diagnostic-Code)
	status            string // the DSN's Status (bounced rows)
	noMail            bool   // no MAIL FROM may reach the server during the fault
	msg               string // the message; default htmlMsg
}

// bigHTMLMsg is over maxCached: the queue streams it from the spool file
// through the rewrite, and the upstream can drop the connection while it
// is still being written.
var bigHTMLMsg = htmlMsg + strings.Repeat("<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p>\r\n", maxCached/64+1000)

const (
	matrixSender = "alice@example.com"
	// matrixTimeout is the upstream client's timeout for the stage a row
	// stalls at (the greeting and commands, or the reply after DATA): a
	// stalled server must be given up on after it.
	matrixTimeout = 400 * time.Millisecond
	// matrixPatience is every other timeout. A healthy but slow server
	// must not be given up on: on a loaded machine go-smtp under the race
	// detector can take more than matrixTimeout to take in 1 MB, and a
	// client that stops waiting for the reply after the whole message was
	// sent cannot know whether the upstream took it, so it sends it again
	// (at least once, RFC 1047) while the server stored the first one too:
	// two deliveries where the rows count exactly one.
	matrixPatience = 20 * time.Second
	// matrixAttempts: a deferred row is checked once the faulty copy was
	// tried this many times (it keeps retrying and never bounces).
	matrixAttempts = 2
)

func upstreamMatrix() []matrixRow {
	users := map[string]string{"alice": "right"}
	withUser := func(user, pass string) func(*config.Upstream, *smtptest.Server) {
		return func(u *config.Upstream, _ *smtptest.Server) { u.Username, u.Password = user, pass }
	}
	refuseData := func(r *smtp.SMTPError) func(smtptest.Message) *smtp.SMTPError {
		return func(m smtptest.Message) *smtp.SMTPError {
			if m.From == "" {
				return nil // the bounce itself goes through
			}
			return r
		}
	}
	// byName: upstream.url names localhost, so the certificate is checked
	// against a host name (the smtps row checks it against an IP address).
	byName := func(u *config.Upstream, _ *smtptest.Server) {
		u.URL = strings.Replace(u.URL, "127.0.0.1", "localhost", 1)
	}
	starttls, smtps := smtptest.Script{StartTLS: true}, smtptest.Script{ImplicitTLS: true}
	authOK := smtptest.Script{AuthUsers: users}
	requireTLS := smtptest.Script{RequireTLS: true}
	shared := []string{"x@untracked.test", "y@untracked.test", "z@untracked.test"}
	return []matrixRow{
		{name: "connection refused", down: true, outcome: retried, reason: "connection refused", noMail: true},
		{name: "TLS handshake failure STARTTLS", script: smtptest.Script{StartTLS: true, FailTLS: true}, healthy: &starttls,
			tls: "required", outcome: retried, reason: "tls: internal error", noMail: true},
		{name: "TLS handshake failure smtps", script: smtptest.Script{ImplicitTLS: true, FailTLS: true}, healthy: &smtps,
			scheme: "smtps", tls: "required", outcome: retried, reason: "tls: internal error", noMail: true},
		{name: "wrong-name certificate STARTTLS", script: smtptest.Script{StartTLS: true, WrongCert: true}, healthy: &starttls,
			tls: "required", config: byName, outcome: waits, reason: "certificate is valid for wrong.invalid, not localhost", noMail: true},
		{name: "wrong-name certificate smtps", script: smtptest.Script{ImplicitTLS: true, WrongCert: true}, healthy: &smtps,
			scheme: "smtps", tls: "required", outcome: waits, reason: "127.0.0.1 because it doesn't contain any IP SANs", noMail: true},
		{name: "untrusted certificate", script: requireTLS, healthy: &requireTLS, tls: "required",
			config:    func(u *config.Upstream, _ *smtptest.Server) { u.CAFile = "" },
			fixConfig: func(u *config.Upstream, srv *smtptest.Server) { u.CAFile = srv.CAFile },
			outcome:   waits, reason: "untrusted upstream certificate", noMail: true},
		{name: "AUTH 535", script: authOK, healthy: &authOK, config: withUser("alice", "wrong"), fixConfig: withUser("alice", "right"),
			outcome: waits, reason: "535 5.7.8", noMail: true},
		{name: "AUTH 534", script: smtptest.Script{AuthUsers: users, AuthFail: smtptest.Reply(534, 5, 7, 9, "Application-specific password required")},
			healthy: &authOK, config: withUser("alice", "right"), outcome: waits, reason: "534 5.7.9", noMail: true},
		{name: "530 authentication required", script: authOK, healthy: &authOK, fixConfig: withUser("alice", "right"),
			outcome: waits, reason: "530 5.7.0"},
		{name: "421 on greeting", script: smtptest.Script{Greeting: smtptest.Reply(421, 4, 3, 2, "Service not available")},
			outcome: retried, reason: "421 4.3.2", noMail: true},
		{name: "451 on one RCPT of three", script: smtptest.Script{RcptReplies: map[string]*smtp.SMTPError{
			"y@untracked.test": smtptest.Reply(451, 4, 7, 1, "Greylisted, try again")}},
			rcpts: shared, faulty: []string{"y@untracked.test"}, outcome: retried, reason: "451 4.7.1"},
		{name: "452 on RCPT", script: smtptest.Script{RcptReplies: map[string]*smtp.SMTPError{
			"a@ex.test": smtptest.Reply(452, 4, 2, 2, "Mailbox full")}},
			outcome: retried, reason: "452 4.2.2"},
		{name: "552 on DATA", script: smtptest.Script{OnData: refuseData(smtptest.Reply(552, 5, 3, 4, "Message too big"))},
			outcome: bounced, reason: "552 5.3.4 Message too big", status: "5.3.4"},
		{name: "554 on DATA", script: smtptest.Script{OnData: refuseData(smtptest.Reply(554, 5, 7, 1, "Message rejected as spam"))},
			outcome: bounced, reason: "554 5.7.1 Message rejected as spam", status: "5.7.1"},
		{name: "connection reset mid-DATA", script: smtptest.Script{ResetMidData: true}, outcome: retried, reason: "data: the upstream closed the connection: EOF"},
		{name: "connection reset mid-DATA while writing 1 MB", script: smtptest.Script{ResetMidData: true}, msg: bigHTMLMsg,
			outcome: retried, reason: "data: "},
		{name: "stall at greeting", script: smtptest.Script{Stall: "greeting"}, outcome: retried, reason: "i/o timeout", noMail: true},
		{name: "stall at RCPT", script: smtptest.Script{Stall: "rcpt"}, outcome: retried, reason: "i/o timeout"},
		{name: "stall after DATA", script: smtptest.Script{Stall: "data"}, outcome: retried, reason: "i/o timeout"},
		{name: "Gmail 550 5.4.5 daily limit", script: smtptest.Script{MailReply: smtptest.Reply(550, 5, 4, 5, "Daily user sending limit exceeded")},
			outcome: waits, reason: "550 5.4.5 Daily user sending limit exceeded"},
		{name: "Gmail 550 5.4.5 daily limit at DATA", script: smtptest.Script{OnData: refuseData(smtptest.Reply(550, 5, 4, 5, "Daily user sending limit exceeded"))},
			outcome: waits, reason: "550 5.4.5 Daily user sending limit exceeded"},
		{name: "550 on one RCPT of three shared", script: smtptest.Script{RcptReplies: map[string]*smtp.SMTPError{
			"y@untracked.test": smtptest.Reply(550, 5, 1, 1, "No such user")}},
			rcpts: shared, faulty: []string{"y@untracked.test"}, outcome: bounced, reason: "550 5.1.1 No such user", status: "5.1.1"},
		{name: "550 on one RCPT of three tracked", script: smtptest.Script{RcptReplies: map[string]*smtp.SMTPError{
			"b@ex.test": smtptest.Reply(550, 5, 1, 1, "No such user")}},
			rcpts: []string{"a@ex.test", "b@ex.test", "c@ex.test"}, faulty: []string{"b@ex.test"},
			outcome: bounced, reason: "550 5.1.1 No such user", status: "5.1.1"},
	}
}

// TestUpstreamMatrix runs every fault of upstreamMatrix (see matrixRow).
// A row that defers runs twice: "fixed" removes the fault and wants the
// copy delivered; "expired" moves the clock past queue.max_age while the
// fault lasts and wants the copy bounced with 4.4.7 (the bounce waits in
// the queue while the same fault keeps the upstream from taking it, and is
// delivered after the fix).
func TestUpstreamMatrix(t *testing.T) {
	for _, row := range upstreamMatrix() {
		t.Run(strings.ReplaceAll(row.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			if row.outcome == bounced {
				startMatrix(t, row).checkBounced(false)
				return
			}
			t.Run("fixed", func(t *testing.T) {
				t.Parallel()
				m := startMatrix(t, row)
				m.checkDeferred()
				m.fix()
				m.checkDelivered()
			})
			t.Run("expired", func(t *testing.T) {
				t.Parallel()
				m := startMatrix(t, row)
				m.checkDeferred()
				m.skew.Add(int64(time.Hour)) // queue.max_age
				m.q.Kick()
				m.waitExpired()
				m.fix()
				m.checkBounced(true)
			})
		})
	}
}

// matrixRun is one row running: the fake server, the config (hot
// reloadable), the real upstream client and the real queue.
type matrixRun struct {
	t     *testing.T
	row   matrixRow
	srv   *smtptest.Server
	cfg   atomic.Pointer[config.Config]
	rec   *fakeRecorder
	q     *Queue
	start time.Time
	skew  atomic.Int64 // added to the queue's clock (time.Duration)
}

func startMatrix(t *testing.T, row matrixRow) *matrixRun {
	if row.scheme == "" {
		row.scheme = "smtp"
	}
	if row.tls == "" {
		row.tls = "none"
	}
	if row.rcpts == nil {
		row.rcpts = []string{"a@ex.test"}
	}
	if row.faulty == nil {
		row.faulty = row.rcpts
	}
	if row.msg == "" {
		row.msg = htmlMsg
	}
	m := &matrixRun{t: t, row: row, rec: newFakeRecorder()}
	m.srv = smtptest.Start(t, row.script)
	if row.down {
		m.srv.Down()
	}
	cfg := testConfig()
	cfg.Upstream = config.Upstream{URL: m.srv.URL(row.scheme), TLS: row.tls, CAFile: m.srv.CAFile, Connections: 2}
	cfg.Queue.MinRetry = config.Duration(20 * time.Millisecond)
	cfg.Queue.MaxRetry = config.Duration(100 * time.Millisecond)
	cfg.Queue.MaxAge = config.Duration(time.Hour)
	if row.config != nil {
		row.config(&cfg.Upstream, m.srv)
	}
	m.cfg.Store(cfg)

	up := deliver.NewSMTP(m.cfg.Load, quiet)
	up.DialTimeout, up.CommandTimeout, up.DataTimeout = matrixPatience, matrixPatience, matrixPatience
	switch row.script.Stall {
	case "data":
		up.DataTimeout = matrixTimeout
	case "":
	default:
		up.CommandTimeout = matrixTimeout
	}
	t.Cleanup(func() { up.Close() })
	q, err := New(Options{
		Dir:             filepath.Join(t.TempDir(), "spool"),
		Config:          m.cfg.Load,
		Upstream:        func(string) relay.Upstream { return up },
		Recorder:        m.rec,
		Minter:          &fakeMinter{},
		Log:             quiet,
		Now:             func() time.Time { return time.Now().Add(time.Duration(m.skew.Load())) },
		ShutdownTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	q.Start()
	m.q = q
	m.start = time.Now()
	if _, err := q.Spool(matrixSender, row.rcpts, strings.NewReader(row.msg)); err != nil {
		t.Fatal(err)
	}
	return m
}

// fix removes the fault: the server listens again and behaves, our config
// is corrected (hot reload), and the deferred copies are kicked as a
// reload does.
func (m *matrixRun) fix() {
	if m.row.down {
		if err := m.srv.Up(); err != nil {
			m.t.Fatal(err)
		}
	}
	healthy := smtptest.Script{}
	if m.row.healthy != nil {
		healthy = *m.row.healthy
	}
	m.srv.SetScript(healthy)
	if m.row.fixConfig != nil {
		c := *m.cfg.Load()
		m.row.fixConfig(&c.Upstream, m.srv)
		m.cfg.Store(&c)
	}
	m.q.Kick()
}

// received counts the messages the server accepted from the sender per
// recipient, and returns the DSNs (from <>).
func (m *matrixRun) received() (perRcpt map[string]int, dsns []delivery) {
	perRcpt = map[string]int{}
	for _, msg := range m.srv.Messages() {
		if msg.From == "" {
			dsns = append(dsns, delivery{from: msg.From, to: msg.To, body: string(msg.Data)})
			continue
		}
		if msg.From != matrixSender {
			m.t.Errorf("envelope sender %q", msg.From)
		}
		for _, r := range msg.To {
			perRcpt[r]++
		}
	}
	return perRcpt, dsns
}

// faultyEntry returns the queue entry of the copy holding a faulty
// recipient, or false.
func (m *matrixRun) faultyEntry() (record.QueueEntry, bool) {
	for _, e := range m.q.Entries() {
		for _, r := range e.Recipients {
			if slices.Contains(m.row.faulty, r) {
				return e, true
			}
		}
	}
	return record.QueueEntry{}, false
}

// checkDeferred: while the fault lasts the faulty copy is deferred and
// retried (matrixAttempts tries) with the reason in last_error; the faulty
// recipients get nothing and nobody gets a bounce.
func (m *matrixRun) checkDeferred() {
	t := m.t
	var e record.QueueEntry
	var ok bool
	waitFor(t, "retries of the faulty copy", func() bool {
		e, ok = m.faultyEntry()
		return ok && e.Attempts >= matrixAttempts || !ok && m.q.Len() == 0
	})
	if !ok {
		perRcpt, dsns := m.received()
		t.Fatalf("the faulty copy left the queue during a %s fault: delivered %v, %d bounces", m.row.outcome, perRcpt, len(dsns))
	}
	t.Logf("after %d attempts (%v): last_error %q", e.Attempts, time.Since(m.start).Round(time.Millisecond), e.LastError)
	if e.Status != record.StatusDeferred || !strings.Contains(e.LastError, m.row.reason) {
		t.Errorf("entry %+v: want deferred, last_error containing %q", e, m.row.reason)
	}
	if e.TrackingID != "" && !m.recorded(e.TrackingID, record.StatusDeferred, m.row.reason) {
		t.Errorf("recorder has no deferred update with %q for %s: %+v", m.row.reason, e.TrackingID, m.updates(e.TrackingID))
	}
	perRcpt, dsns := m.received()
	for _, r := range m.row.rcpts {
		want := 1 // a recipient the fault does not hit is not held back by it
		if slices.Contains(m.row.faulty, r) {
			want = 0
		}
		if perRcpt[r] != want {
			t.Errorf("%s got %d messages while the fault lasted, want %d", r, perRcpt[r], want)
		}
	}
	if len(dsns) != 0 {
		t.Errorf("%d bounces for a %s failure", len(dsns), m.row.outcome)
	}
	if m.row.noMail && strings.Contains(m.srv.Transcript(), "MAIL FROM") {
		t.Errorf("MAIL FROM reached the server during the fault:\n%s", m.srv.Transcript())
	}
}

// waitExpired waits until the original copy left the queue and its bounce
// was queued or delivered.
func (m *matrixRun) waitExpired() {
	waitFor(m.t, "the copy to expire", func() bool {
		original, bounce := false, false
		for _, e := range m.q.Entries() {
			original = original || e.From == matrixSender
			bounce = bounce || e.From == "" && slices.Equal(e.Recipients, []string{matrixSender})
		}
		_, dsns := m.received()
		return !original && (bounce || len(dsns) > 0)
	})
}

// checkDelivered: after the fix every recipient gets exactly one message,
// nobody a bounce, and the tracked copies end sent.
func (m *matrixRun) checkDelivered() {
	t := m.t
	waitFor(t, "delivery after the fix", func() bool { return m.q.Len() == 0 })
	time.Sleep(50 * time.Millisecond) // a late duplicate would show
	perRcpt, dsns := m.received()
	for _, r := range m.row.rcpts {
		if perRcpt[r] != 1 {
			t.Errorf("%s got %d messages, want exactly 1; the attempts' outcomes: %s", r, perRcpt[r], m.outcomes())
		}
	}
	tail := m.row.msg[len(m.row.msg)-16:] // after the pixel in both test messages
	for _, msg := range m.srv.Messages() {
		if msg.From == matrixSender && (len(msg.Data) < len(m.row.msg) || !strings.HasSuffix(string(msg.Data), tail)) {
			t.Errorf("message to %v truncated: %d bytes (the original has %d), ends %q", msg.To, len(msg.Data), len(m.row.msg),
				string(msg.Data[max(0, len(msg.Data)-40):]))
		}
	}
	if len(dsns) != 0 {
		t.Errorf("%d bounces for a %s failure", len(dsns), m.row.outcome)
	}
	for tid, c := range m.copies() {
		st := m.rec.statuses(tid)
		if len(st) == 0 || st[len(st)-1] != record.StatusSent || slices.Contains(st, record.StatusFailed) {
			t.Errorf("copy to %s: updates %v, want deferred... then sent", c.Recipient, st)
		}
		if slices.Contains(m.row.faulty, c.Recipient) && !slices.Contains(st, record.StatusDeferred) {
			t.Errorf("faulty copy to %s: updates %v, want deferred first", c.Recipient, st)
		}
	}
}

// checkBounced: the faulty recipients are listed in exactly one DSN to
// the sender, with the upstream's status for a permanent failure (tried
// once, never retried) or 4.4.7 for a copy that expired (queue.max_age)
// still failing; they get nothing, the others their message exactly once.
func (m *matrixRun) checkBounced(expired bool) {
	t := m.t
	status, diag := m.row.status, []string{m.row.reason}
	if expired {
		status, diag = "4.4.7", append(diag, "delivery time expired")
	}
	waitFor(t, "the bounce", func() bool {
		_, dsns := m.received()
		return m.q.Len() == 0 && len(dsns) > 0
	})
	time.Sleep(50 * time.Millisecond)
	perRcpt, dsns := m.received()
	for _, r := range m.row.rcpts {
		want := 1
		if slices.Contains(m.row.faulty, r) {
			want = 0
		}
		if perRcpt[r] != want {
			t.Errorf("%s got %d messages, want %d", r, perRcpt[r], want)
		}
	}
	if len(dsns) != 1 {
		t.Fatalf("%d bounces, want 1", len(dsns))
	}
	info := parseDSN(t, dsns[0])
	if !slices.Equal(info.to, []string{matrixSender}) {
		t.Errorf("bounce to %v, want the sender", info.to)
	}
	if len(info.recipient) != len(m.row.faulty) {
		t.Errorf("bounce lists %d recipients, want %v", len(info.recipient), m.row.faulty)
	}
	for _, r := range m.row.faulty {
		f, ok := info.recipient[r]
		if !ok {
			t.Errorf("%s missing from the bounce", r)
			continue
		}
		if f.Get("Status") != status || f.Get("Action") != "failed" {
			t.Errorf("bounce fields for %s: %v, want Status %s, Action failed", r, f.Map(), status)
		}
		for _, d := range diag {
			if !strings.Contains(f.Get("Diagnostic-Code"), d) {
				t.Errorf("bounce for %s: Diagnostic-Code %q lacks %q", r, f.Get("Diagnostic-Code"), d)
			}
		}
		if n := strings.Count(m.srv.Transcript(), "RCPT TO:<"+r+">"); !expired && n != 1 {
			t.Errorf("%s tried %d times, want once (a permanent failure is not retried)", r, n)
		}
	}
	for tid, c := range m.copies() {
		st := m.rec.statuses(tid)
		want := record.StatusSent
		if slices.Contains(m.row.faulty, c.Recipient) {
			want = record.StatusFailed
		}
		if len(st) == 0 || st[len(st)-1] != want || (!expired && len(st) != 1) {
			t.Errorf("copy to %s: updates %v, want %s at the end", c.Recipient, st, want)
		}
	}
}

// copies returns the tracked copies recorded.
func (m *matrixRun) copies() map[string]record.Copy {
	m.rec.mu.Lock()
	defer m.rec.mu.Unlock()
	out := map[string]record.Copy{}
	for tid, c := range m.rec.copies {
		out[tid] = c
	}
	return out
}

func (m *matrixRun) updates(tid string) []event {
	m.rec.mu.Lock()
	defer m.rec.mu.Unlock()
	var out []event
	for _, e := range m.rec.updates {
		if e.tid == tid {
			out = append(out, e)
		}
	}
	return out
}

// outcomes lists every recorded update as "status (last_error)": what
// each attempt ended with, to tell a real double delivery from a reply
// the client stopped waiting for.
func (m *matrixRun) outcomes() string {
	m.rec.mu.Lock()
	defer m.rec.mu.Unlock()
	var out []string
	for _, e := range m.rec.updates {
		out = append(out, fmt.Sprintf("%s (%s)", e.status, e.lastErr))
	}
	return strings.Join(out, "; ")
}

// recorded reports whether tid got an update to status whose last_error
// contains reason.
func (m *matrixRun) recorded(tid, status, reason string) bool {
	for _, e := range m.updates(tid) {
		if e.status == status && strings.Contains(e.lastErr, reason) {
			return true
		}
	}
	return false
}

// TestNoReplyAfterData is the one duplicate the relay cannot avoid: the
// upstream takes the whole message and drops the connection before its
// reply. The relay cannot know the copy was taken, so it retries it (at
// least once), and last_error says that the upstream may have it. A reset
// before the end of the message (the matrix rows) never makes one.
func TestNoReplyAfterData(t *testing.T) {
	const ambiguous = "(no reply after the whole message was sent: the upstream may have taken it)"
	m := startMatrix(t, matrixRow{name: "drop after DATA", script: smtptest.Script{DropAfterData: true}})
	waitFor(t, "a retry", func() bool {
		e, ok := m.faultyEntry()
		return ok && e.Attempts >= matrixAttempts
	})
	m.fix()
	waitFor(t, "delivery after the fix", func() bool { return m.q.Len() == 0 })
	perRcpt, dsns := m.received()
	var attempts, unsure int
	for tid := range m.copies() {
		for _, e := range m.updates(tid) {
			attempts++
			if e.status == record.StatusDeferred && strings.Contains(e.lastErr, ambiguous) {
				unsure++
			}
		}
	}
	if unsure < matrixAttempts || unsure != attempts-1 {
		t.Errorf("%d of %d attempts say %q; want every one before the last: %s", unsure, attempts, ambiguous, m.outcomes())
	}
	if perRcpt["a@ex.test"] != attempts || len(dsns) != 0 {
		t.Errorf("the server took %d copies and %d bounces in %d attempts; want one copy per attempt, no bounce: %s",
			perRcpt["a@ex.test"], len(dsns), attempts, m.outcomes())
	}
}
