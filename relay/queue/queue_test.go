package queue

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-smtp"

	"pixelrelay/config"
	"pixelrelay/relay"
	"pixelrelay/relay/rewrite"
	"pixelrelay/tracker/record"
)

// ---- fakes ----

type delivery struct {
	from string
	to   []string
	body string
	at   time.Time
}

// fakeUpstream is an in-memory relay.Upstream whose answers are scripted per
// recipient: script[rcpt] is consumed one error per attempt; a missing or
// nil entry accepts. always[rcpt] answers every attempt.
type fakeUpstream struct {
	mu        sync.Mutex
	script    map[string][]error
	always    map[string]error
	got       []delivery
	active    int
	maxActive int
	delay     time.Duration
}

func newFakeUpstream() *fakeUpstream {
	return &fakeUpstream{script: map[string][]error{}, always: map[string]error{}}
}

func (f *fakeUpstream) Deliver(ctx context.Context, from string, to []string, r io.Reader) error {
	f.mu.Lock()
	f.active++
	f.maxActive = max(f.maxActive, f.active)
	f.mu.Unlock()
	b, err := io.ReadAll(r)
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.active--
	if err != nil {
		return err
	}
	refused := relay.RecipientErrors{}
	for _, rcpt := range to {
		var e error
		if s := f.script[rcpt]; len(s) > 0 {
			e, f.script[rcpt] = s[0], s[1:]
		} else if a := f.always[rcpt]; a != nil {
			e = a
		}
		if e != nil {
			refused[rcpt] = e
		}
	}
	f.got = append(f.got, delivery{from: from, to: slices.Clone(to), body: string(b), at: time.Now()})
	switch {
	case len(refused) == 0:
		return nil
	case len(to) == 1:
		return refused[to[0]]
	default:
		return refused
	}
}

func (f *fakeUpstream) Close() error { return nil }

func (f *fakeUpstream) deliveries() []delivery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got)
}

type fakeMinter struct {
	mu sync.Mutex
	n  int
}

func (m *fakeMinter) Mint() (string, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n++
	return fmt.Sprintf("tid%d", m.n), fmt.Sprintf("tok%dx", m.n), nil
}

func (m *fakeMinter) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n
}

type event struct{ tid, status, lastErr string }

type fakeRecorder struct {
	mu      sync.Mutex
	copies  map[string]record.Copy
	adds    int
	updates []event
	before  func(status string) // if set, runs at the start of Update (a slow store)
}

func newFakeRecorder() *fakeRecorder { return &fakeRecorder{copies: map[string]record.Copy{}} }

func (r *fakeRecorder) Add(cs []record.Copy) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.adds++
	for _, c := range cs {
		r.copies[c.ID()] = c
	}
	return nil
}

func (r *fakeRecorder) Update(tid, status, lastErr string, at time.Time) error {
	if r.before != nil {
		r.before(status)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.copies[tid]; !ok {
		return fmt.Errorf("%w: %q", record.ErrNotFound, tid)
	}
	if at.IsZero() {
		return errors.New("zero time")
	}
	r.updates = append(r.updates, event{tid, status, lastErr})
	return nil
}

func (r *fakeRecorder) statuses(tid string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.updates {
		if e.tid == tid {
			out = append(out, e.status)
		}
	}
	return out
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// ---- harness ----

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type harness struct {
	t    *testing.T
	dir  string
	cfg  *config.Config
	up   *fakeUpstream
	rec  *fakeRecorder
	mint *fakeMinter
	q    *Queue
	now  func() time.Time
}

func testConfig() *config.Config {
	c := &config.Config{}
	c.SMTP.Hostname = "relay.test"
	c.Upstream.Connections = 2
	c.Queue.MaxAge = config.Duration(time.Hour)
	c.Queue.MinRetry = config.Duration(10 * time.Millisecond)
	c.Queue.MaxRetry = config.Duration(40 * time.Millisecond)
	c.Tracking.BaseURL = "http://127.0.0.1:8025/"
	c.Tracking.Policy = "all"
	c.Tracking.Exclude = []string{"@untracked.test"}
	return c
}

func newHarness(t *testing.T, cfg *config.Config) *harness {
	h := &harness{t: t, dir: filepath.Join(t.TempDir(), "spool"), cfg: cfg,
		up: newFakeUpstream(), rec: newFakeRecorder(), mint: &fakeMinter{}, now: time.Now}
	return h
}

func (h *harness) open(start bool) *Queue { return h.openWith(nil, start) }

// openWith opens the queue on h's parts; change, when set, adjusts the
// options first.
func (h *harness) openWith(change func(*Options), start bool) *Queue {
	h.t.Helper()
	opt := Options{
		Dir:      h.dir,
		Config:   func() *config.Config { return h.cfg },
		Upstream: func(string) relay.Upstream { return h.up },
		Recorder: h.rec,
		Minter:   h.mint,
		Now:      h.now,
		Log:      quiet,
	}
	if change != nil {
		change(&opt)
	}
	q, err := New(opt)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { q.Close() })
	if start {
		q.Start()
	}
	h.q = q
	return q
}

func (h *harness) spool(from string, to []string, msg string) string {
	h.t.Helper()
	id, err := h.q.Spool(from, to, strings.NewReader(msg))
	if err != nil {
		h.t.Fatal(err)
	}
	return id
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if fi, err := e.Info(); e.Name() == "states.log" && err == nil && fi.Size() == 0 {
			continue // the states journal, empty
		}
		names = append(names, e.Name())
	}
	return names
}

const htmlMsg = "From: Alice <alice@example.com>\r\n" +
	"To: a@ex.test, b@ex.test\r\n" +
	"Subject: Quarterly report\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/html; charset=utf-8\r\n" +
	"\r\n" +
	"<html><body><p>Hello</p></body></html>\r\n"

const textMsg = "From: Alice <alice@example.com>\r\n" +
	"Subject: Plain\r\n" +
	"Message-ID: <plain-1@example.com>\r\n" +
	"\r\n" +
	"just text\r\n"

func permanent(code int, enh smtp.EnhancedCode, msg string) error {
	return &relay.DeliveryError{Class: relay.Permanent, Code: code, Stage: "rcpt",
		Err: &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: msg}}
}

func temporary(msg string) error {
	return &relay.DeliveryError{Class: relay.Temporary, Code: 421, Stage: "connect",
		Err: &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: msg}}
}

// ---- tests ----

// TestSplit: three tracked recipients get a copy each with their own pixel;
// the untracked ones share one unmodified copy in one transaction. Each of
// the five has a record, the untracked ones with their reason, and each
// record ends sent.
func TestSplit(t *testing.T) {
	h := newHarness(t, testConfig())
	h.up.delay = 5 * time.Millisecond
	h.open(true)
	rcpts := []string{"a@ex.test", "b@ex.test", "c@ex.test", "x@untracked.test", "y@untracked.test"}
	id := h.spool("alice@example.com", rcpts, htmlMsg)
	waitFor(t, "spool to empty", func() bool { return h.q.Len() == 0 })

	got := h.up.deliveries()
	if len(got) != 4 {
		t.Fatalf("%d deliveries, want 4", len(got))
	}
	tracked := map[string]string{} // rcpt -> body
	for _, d := range got {
		if d.from != "alice@example.com" {
			t.Errorf("envelope from %q", d.from)
		}
		if len(d.to) == 1 && !strings.HasSuffix(d.to[0], "@untracked.test") {
			tracked[d.to[0]] = d.body
			continue
		}
		if strings.Join(d.to, ",") != "x@untracked.test,y@untracked.test" {
			t.Errorf("shared copy to %v", d.to)
		}
		if strings.Contains(d.body, "/o/tok") {
			t.Errorf("untracked copy has a pixel:\n%s", d.body)
		}
	}
	if len(tracked) != 3 {
		t.Fatalf("tracked copies for %v, want a, b, c", tracked)
	}
	h.rec.mu.Lock()
	copies := h.rec.copies
	h.rec.mu.Unlock()
	if len(copies) != 5 {
		t.Fatalf("recorded %d copies, want 5", len(copies))
	}
	var msgID string
	for tid, c := range copies {
		if st := h.rec.statuses(tid); !slices.Equal(st, []string{record.StatusSent}) {
			t.Errorf("updates for %s = %v, want [sent]", tid, st)
		}
		if !c.Tracked() {
			if c.TrackingID != "" || c.UntrackedReason != "excluded" || tid != record.UntrackedID(id, c.Recipient) || c.QueueID != id {
				t.Errorf("untracked record %s: %+v", tid, c)
			}
			continue
		}
		body := tracked[c.Recipient]
		tok := strings.Replace(tid, "tid", "tok", 1) + "x"
		if !strings.Contains(body, "http://127.0.0.1:8025/o/"+tok+".gif") {
			t.Errorf("copy for %s lacks its pixel %s:\n%s", c.Recipient, tok, body)
		}
		for other, ob := range tracked {
			if other != c.Recipient && strings.Contains(ob, "/o/"+tok+".gif") {
				t.Errorf("%s's token is in %s's copy", c.Recipient, other)
			}
		}
		if c.QueueID != id || c.From != "alice@example.com" || c.Subject != "Quarterly report" || c.Status != record.StatusQueued {
			t.Errorf("recorded copy %+v", c)
		}
		if msgID == "" {
			msgID = c.MessageID
		} else if c.MessageID != msgID {
			t.Errorf("copies carry different Message-IDs: %q and %q", msgID, c.MessageID)
		}
	}
	if !strings.HasPrefix(msgID, "<"+id+".") || !strings.HasSuffix(msgID, "@relay.test>") {
		t.Errorf("generated Message-ID %q", msgID)
	}
	if h.up.maxActive > h.cfg.Upstream.Connections {
		t.Errorf("%d deliveries at once, upstream.connections = %d", h.up.maxActive, h.cfg.Upstream.Connections)
	}
	if files := spoolFiles(t, h.dir); len(files) != 0 {
		t.Errorf("spool not empty: %v", files)
	}
}

func TestConnectionLimit(t *testing.T) {
	for _, conns := range []int{1, 3} {
		t.Run(fmt.Sprint(conns), func(t *testing.T) {
			cfg := testConfig()
			cfg.Upstream.Connections = conns
			h := newHarness(t, cfg)
			h.up.delay = 10 * time.Millisecond
			h.open(true)
			for i := range 4 {
				h.spool("s@x.test", []string{fmt.Sprintf("r%d@ex.test", i), fmt.Sprintf("q%d@ex.test", i)}, htmlMsg)
			}
			waitFor(t, "spool to empty", func() bool { return h.q.Len() == 0 })
			if len(h.up.deliveries()) != 8 {
				t.Fatalf("%d deliveries, want 8", len(h.up.deliveries()))
			}
			if h.up.maxActive > conns || (conns > 1 && h.up.maxActive < 2) {
				t.Errorf("max concurrent deliveries %d with connections = %d", h.up.maxActive, conns)
			}
		})
	}
}

// TestRetryThenSuccess: temporary failures are deferred with growing
// delays, then the copy is delivered.
func TestRetryThenSuccess(t *testing.T) {
	h := newHarness(t, testConfig())
	h.up.script["a@ex.test"] = []error{temporary("try later"), temporary("try later")}
	h.open(true)
	h.spool("s@x.test", []string{"a@ex.test"}, htmlMsg)
	waitFor(t, "delivery", func() bool { return h.q.Len() == 0 })
	got := h.up.deliveries()
	if len(got) != 3 {
		t.Fatalf("%d attempts, want 3", len(got))
	}
	min := h.cfg.Queue.MinRetry.D()
	for i := 1; i < len(got); i++ {
		if gap := got[i].at.Sub(got[i-1].at); gap < min {
			t.Errorf("retry %d after %v, min_retry is %v", i, gap, min)
		}
	}
	want := []string{record.StatusDeferred, record.StatusDeferred, record.StatusSent}
	if st := h.rec.statuses("tid1"); !slices.Equal(st, want) {
		t.Errorf("updates %v, want %v", st, want)
	}
	h.rec.mu.Lock()
	first := h.rec.updates[0]
	h.rec.mu.Unlock()
	if !strings.Contains(first.lastErr, "421") || !strings.Contains(first.lastErr, "try later") {
		t.Errorf("deferred last_error %q", first.lastErr)
	}
	if n := countDSN(h.up.deliveries()); n != 0 {
		t.Errorf("%d bounces for a delivered message", n)
	}
}

// A deferred copy is back in the ready heap before its update reaches the
// recorder. When that update is slow and the retry succeeds meanwhile, the
// recorder must still end on "sent", not on the stale "deferred".
func TestUpdatesStayInOrder(t *testing.T) {
	h := newHarness(t, testConfig())
	h.up.script["a@ex.test"] = []error{temporary("try later")}
	var once sync.Once
	h.rec.before = func(status string) {
		if status != record.StatusDeferred {
			return
		}
		once.Do(func() { // the first deferred update waits for the retry to deliver
			deadline := time.Now().Add(5 * time.Second)
			for len(h.up.deliveries()) < 2 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	h.open(true)
	h.spool("s@x.test", []string{"a@ex.test"}, htmlMsg)
	waitFor(t, "delivery", func() bool { return h.q.Len() == 0 })
	waitFor(t, "the last update", func() bool {
		st := h.rec.statuses("tid1")
		return len(st) > 0 && st[len(st)-1] == record.StatusSent
	})
	time.Sleep(50 * time.Millisecond) // a stale update would land now
	if st := h.rec.statuses("tid1"); st[len(st)-1] != record.StatusSent {
		t.Errorf("updates %v: the recorder ends on a stale state", st)
	}
}

func TestBackoff(t *testing.T) {
	lo, hi := time.Minute, time.Hour
	for attempts := 1; attempts < 20; attempts++ {
		for range 50 {
			d := backoff(attempts, lo, hi)
			base := min(lo<<(attempts-1), hi)
			if attempts > 10 {
				base = hi
			}
			if d < lo || d > hi || d < base*3/4 || d > base*5/4 {
				t.Fatalf("backoff(%d) = %v, base %v", attempts, d, base)
			}
		}
	}
}

// TestSetupNeverBouncesKick: a setup failure (credentials) is deferred with
// its reason, never bounced, and Kick retries it at once.
func TestSetupNeverBouncesKick(t *testing.T) {
	cfg := testConfig()
	cfg.Queue.MinRetry = config.Duration(time.Hour)
	cfg.Queue.MaxRetry = config.Duration(2 * time.Hour)
	cfg.Queue.MaxAge = config.Duration(48 * time.Hour)
	h := newHarness(t, cfg)
	h.up.script["a@ex.test"] = []error{&relay.DeliveryError{Class: relay.Setup, Code: 535, Stage: "auth",
		Err: &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Username and Password not accepted"}}}
	h.open(true)
	id := h.spool("s@x.test", []string{"a@ex.test", "z@untracked.test"}, htmlMsg)
	waitFor(t, "first attempts", func() bool { return len(h.up.deliveries()) == 2 })
	waitFor(t, "deferral", func() bool { return len(h.rec.statuses("tid1")) == 1 })

	entries := h.q.Entries()
	if len(entries) != 1 {
		t.Fatalf("entries = %+v", entries)
	}
	e := entries[0]
	if e.QueueID != id || e.TrackingID != "tid1" || e.Status != record.StatusDeferred || e.Attempts != 1 ||
		!strings.Contains(e.LastError, "535") || e.From != "s@x.test" || !slices.Equal(e.Recipients, []string{"a@ex.test"}) ||
		e.NextAttempt.Before(time.Now().Add(30*time.Minute)) {
		t.Errorf("entry = %+v", e)
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(h.up.deliveries()); n != 2 {
		t.Fatalf("retried before Kick: %d attempts", n)
	}
	h.q.Kick()
	waitFor(t, "delivery after Kick", func() bool { return h.q.Len() == 0 })
	if n := countDSN(h.up.deliveries()); n != 0 {
		t.Errorf("a setup failure bounced (%d DSNs)", n)
	}
	if st := h.rec.statuses("tid1"); !slices.Equal(st, []string{record.StatusDeferred, record.StatusSent}) {
		t.Errorf("updates %v", st)
	}
	if len(h.q.Entries()) != 0 {
		t.Errorf("entries after delivery: %+v", h.q.Entries())
	}
}

func countDSN(ds []delivery) int {
	n := 0
	for _, d := range ds {
		if d.from == "" {
			n++
		}
	}
	return n
}

type dsnInfo struct {
	to        []string
	header    *gomessage.Header
	recipient map[string]textproto.Header // Final-Recipient address -> fields
	original  string
}

func parseDSN(t *testing.T, d delivery) dsnInfo {
	t.Helper()
	e, err := gomessage.Read(strings.NewReader(d.body))
	if err != nil {
		t.Fatal(err)
	}
	info := dsnInfo{to: d.to, header: &e.Header, recipient: map[string]textproto.Header{}}
	mr := e.MultipartReader()
	if mr == nil {
		t.Fatalf("bounce is not multipart:\n%s", d.body)
	}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := p.Header.ContentType()
		body, _ := io.ReadAll(p.Body)
		switch ct {
		case "message/delivery-status":
			br := bufio.NewReader(bytes.NewReader(body))
			textproto.ReadHeader(br) // per-message fields
			for {
				h, err := textproto.ReadHeader(br)
				if err != nil || h.Len() == 0 {
					break
				}
				addr := strings.TrimPrefix(h.Get("Final-Recipient"), "rfc822; ")
				info.recipient[addr] = h
			}
		case "text/rfc822-headers":
			info.original = string(body)
		}
	}
	return info
}

// TestPermanentOneBounce: permanent failures of tracked copies and of part
// of the shared copy make one DSN listing them all, to the sender.
func TestPermanentOneBounce(t *testing.T) {
	h := newHarness(t, testConfig())
	h.up.always["a@ex.test"] = permanent(550, smtp.EnhancedCode{5, 1, 1}, "no such user a")
	h.up.always["b@ex.test"] = permanent(552, smtp.EnhancedCode{5, 2, 2}, "mailbox full")
	h.up.always["y@untracked.test"] = permanent(550, smtp.EnhancedCode{5, 1, 1}, "no such user y")
	h.open(true)
	h.spool("alice@example.com", []string{"a@ex.test", "b@ex.test", "c@ex.test", "x@untracked.test", "y@untracked.test"}, htmlMsg)
	waitFor(t, "original finished", func() bool { return countDSN(h.up.deliveries()) > 0 && h.q.Len() == 0 })
	time.Sleep(30 * time.Millisecond)

	var bounces []delivery
	for _, d := range h.up.deliveries() {
		if d.from == "" {
			bounces = append(bounces, d)
		}
	}
	if len(bounces) != 1 {
		t.Fatalf("%d bounces, want 1", len(bounces))
	}
	info := parseDSN(t, bounces[0])
	if !slices.Equal(info.to, []string{"alice@example.com"}) {
		t.Errorf("bounce sent to %v", info.to)
	}
	if from := info.header.Get("From"); !strings.Contains(from, "MAILER-DAEMON@relay.test") {
		t.Errorf("bounce From %q", from)
	}
	want := map[string]string{"a@ex.test": "5.1.1", "b@ex.test": "5.2.2", "y@untracked.test": "5.1.1"}
	if len(info.recipient) != len(want) {
		t.Errorf("bounce lists %d recipients, want %d: %v", len(info.recipient), len(want), info.recipient)
	}
	for rcpt, status := range want {
		f, ok := info.recipient[rcpt]
		if !ok {
			t.Errorf("%s missing from the bounce", rcpt)
			continue
		}
		if f.Get("Status") != status || f.Get("Action") != "failed" || !strings.Contains(f.Get("Diagnostic-Code"), status) {
			t.Errorf("%s: %v", rcpt, f.Map())
		}
	}
	if !strings.Contains(info.original, "Subject: Quarterly report") || strings.Contains(info.original, "<html>") {
		t.Errorf("original headers part:\n%s", info.original)
	}
	for tid, want := range map[string]string{"tid1": record.StatusFailed, "tid2": record.StatusFailed, "tid3": record.StatusSent} {
		if st := h.rec.statuses(tid); !slices.Equal(st, []string{want}) {
			t.Errorf("%s updates %v, want [%s]", tid, st, want)
		}
	}
	if files := spoolFiles(t, h.dir); len(files) != 0 {
		t.Errorf("spool not empty: %v", files)
	}
}

func TestNullSenderNoBounce(t *testing.T) {
	h := newHarness(t, testConfig())
	h.up.always["a@ex.test"] = permanent(550, smtp.EnhancedCode{5, 1, 1}, "no such user")
	h.open(true)
	h.spool("", []string{"a@ex.test"}, textMsg)
	waitFor(t, "failure", func() bool { return h.q.Len() == 0 })
	time.Sleep(30 * time.Millisecond)
	if n := len(h.up.deliveries()); n != 1 {
		t.Errorf("%d deliveries (a bounce to the null sender?), want 1", n)
	}
}

// TestBounceFailureNoLoop: a bounce that cannot be delivered is dropped, not
// bounced again.
func TestBounceFailureNoLoop(t *testing.T) {
	h := newHarness(t, testConfig())
	h.up.always["a@ex.test"] = permanent(550, smtp.EnhancedCode{5, 1, 1}, "no such user")
	h.up.always["s@x.test"] = permanent(550, smtp.EnhancedCode{5, 1, 1}, "sender gone too")
	h.open(true)
	h.spool("s@x.test", []string{"a@ex.test"}, textMsg)
	waitFor(t, "bounce attempt", func() bool { return countDSN(h.up.deliveries()) == 1 && h.q.Len() == 0 })
	time.Sleep(50 * time.Millisecond)
	if n := len(h.up.deliveries()); n != 2 {
		t.Errorf("%d deliveries, want the original and one bounce", n)
	}
}

// TestExpiry: a copy still failing temporarily after queue.max_age fails
// and bounces with 4.4.7.
func TestExpiry(t *testing.T) {
	cfg := testConfig()
	cfg.Queue.MinRetry = config.Duration(time.Minute)
	cfg.Queue.MaxRetry = config.Duration(time.Hour)
	cfg.Queue.MaxAge = config.Duration(24 * time.Hour)
	h := newHarness(t, cfg)
	clk := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	h.now = clk.now
	h.up.always["a@ex.test"] = temporary("greylisted")
	h.open(true)
	h.spool("s@x.test", []string{"a@ex.test"}, htmlMsg)
	waitFor(t, "deferral", func() bool { return len(h.rec.statuses("tid1")) == 1 })
	if n := countDSN(h.up.deliveries()); n != 0 {
		t.Fatalf("bounced before max_age")
	}
	clk.add(23*time.Hour + 59*time.Minute)
	h.q.Kick()
	waitFor(t, "second deferral", func() bool { return len(h.rec.statuses("tid1")) == 2 })
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	if es := h.q.Entries(); len(es) != 1 || !es[0].NextAttempt.Equal(start.Add(24*time.Hour)) {
		t.Errorf("next attempt %+v, want exactly at max_age (%v)", es, start.Add(24*time.Hour))
	}
	clk.add(2 * time.Hour)
	h.q.Kick()
	waitFor(t, "bounce", func() bool { return countDSN(h.up.deliveries()) == 1 && h.q.Len() == 0 })
	want := []string{record.StatusDeferred, record.StatusDeferred, record.StatusFailed}
	if st := h.rec.statuses("tid1"); !slices.Equal(st, want) {
		t.Errorf("updates %v, want %v", st, want)
	}
	for _, d := range h.up.deliveries() {
		if d.from != "" {
			continue
		}
		f := parseDSN(t, d).recipient["a@ex.test"]
		if f.Get("Status") != "4.4.7" || !strings.Contains(f.Get("Diagnostic-Code"), "greylisted") {
			t.Errorf("expiry bounce fields %v", f.Map())
		}
	}
}

// TestResume: messages spooled by a queue that never delivered (a crash)
// are all delivered by the next queue on the same directory, without
// minting again when the plan was saved, and planned again when it was not.
func TestResume(t *testing.T) {
	for _, lostState := range []bool{false, true} {
		t.Run(fmt.Sprintf("lostState=%v", lostState), func(t *testing.T) {
			h := newHarness(t, testConfig())
			first := h.open(false) // never delivers
			var ids []string
			for i := range 5 {
				ids = append(ids, h.spool("s@x.test", []string{fmt.Sprintf("a%d@ex.test", i), "z@untracked.test"}, htmlMsg))
			}
			waitFor(t, "plans", func() bool {
				n := 0
				for _, e := range first.Entries() {
					if e.TrackingID != "" {
						n++
					}
				}
				return n == 5
			})
			if lostState { // the states journal lost in a power failure
				if err := os.Remove(filepath.Join(h.dir, "states.log")); err != nil {
					t.Fatal(err)
				}
			}
			minted := h.mint.count()
			if n := len(h.up.deliveries()); n != 0 {
				t.Fatalf("unstarted queue delivered %d copies", n)
			}

			second := h.open(true)
			waitFor(t, "resumed delivery", func() bool { return second.Len() == 0 })
			got := h.up.deliveries()
			if len(got) != 10 {
				t.Errorf("%d deliveries after restart, want 10", len(got))
			}
			wantMinted := 5
			if lostState {
				wantMinted = 10
			}
			if h.mint.count() != wantMinted || minted != 5 {
				t.Errorf("minted %d then %d tokens, want 5 then %d", minted, h.mint.count(), wantMinted)
			}
			rcpts := map[string]int{}
			for _, d := range got {
				for _, r := range d.to {
					rcpts[r]++
				}
			}
			for i := range 5 {
				if rcpts[fmt.Sprintf("a%d@ex.test", i)] != 1 {
					t.Errorf("a%d got %d copies", i, rcpts[fmt.Sprintf("a%d@ex.test", i)])
				}
			}
			if rcpts["z@untracked.test"] != 5 {
				t.Errorf("z got %d copies, want 5", rcpts["z@untracked.test"])
			}
		})
	}
}

// TestResumeDeferred: a deferred copy keeps its attempts and tracking id
// across a restart.
func TestResumeDeferred(t *testing.T) {
	cfg := testConfig()
	cfg.Queue.MinRetry = config.Duration(time.Hour)
	cfg.Queue.MaxRetry = config.Duration(time.Hour)
	h := newHarness(t, cfg)
	h.up.script["a@ex.test"] = []error{temporary("busy")}
	q := h.open(true)
	h.spool("s@x.test", []string{"a@ex.test"}, htmlMsg)
	waitFor(t, "deferral", func() bool { return len(h.rec.statuses("tid1")) == 1 })
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Spool("s@x.test", []string{"b@ex.test"}, strings.NewReader(htmlMsg)); err == nil {
		t.Error("Spool after Close succeeded")
	}
	q2 := h.open(true)
	es := q2.Entries()
	if len(es) != 1 || es[0].TrackingID != "tid1" || es[0].Attempts != 1 || es[0].Status != record.StatusDeferred {
		t.Fatalf("entries after restart: %+v", es)
	}
	q2.Kick()
	waitFor(t, "delivery", func() bool { return q2.Len() == 0 })
	if h.mint.count() != 1 {
		t.Errorf("minted %d tokens, want 1", h.mint.count())
	}
}

// TestSpoolError: a spool that cannot be written fails Spool (the session
// answers 451) and accepts nothing.
func TestSpoolError(t *testing.T) {
	h := newHarness(t, testConfig())
	q := h.open(false)
	if err := os.Chmod(h.dir, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(h.dir, 0o700)
	if os.Geteuid() == 0 {
		// root ignores permissions: break the directory instead.
		os.Chmod(h.dir, 0o700)
		os.RemoveAll(h.dir)
		os.WriteFile(h.dir, []byte("not a dir"), 0o600)
		defer os.Remove(h.dir)
	}
	if id, err := q.Spool("s@x.test", []string{"a@ex.test"}, strings.NewReader(htmlMsg)); err == nil {
		t.Fatalf("Spool succeeded (%s) on an unwritable spool", id)
	}
	if q.Len() != 0 {
		t.Errorf("queue holds %d messages", q.Len())
	}
}

// BenchmarkQueueSpool measures accepted messages per second through
// Queue.Spool (durable, planning included, no delivery).
func BenchmarkQueueSpool(b *testing.B) {
	body := htmlMsg + strings.Repeat("<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p>\r\n", 750)
	q, err := New(Options{
		Dir:      b.TempDir(),
		Config:   testConfig,
		Recorder: newFakeRecorder(),
		Minter:   &fakeMinter{},
		Log:      quiet,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	b.SetBytes(int64(len(body)))
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := q.Spool("s@x.test", []string{"a@ex.test", "b@ex.test"}, strings.NewReader(body)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// slowRecorder takes a while per Add (like a store fsync) and fails the
// first one.
type slowRecorder struct {
	*fakeRecorder
	failFirst bool
}

func (r *slowRecorder) Add(cs []record.Copy) error {
	time.Sleep(20 * time.Millisecond)
	r.mu.Lock()
	fail := r.failFirst
	r.failFirst = false
	r.mu.Unlock()
	if fail {
		return errors.New("store is busy")
	}
	return r.fakeRecorder.Add(cs)
}

// TestRecorderBatching: plans that arrive while Recorder.Add runs are
// recorded together; a failed Add is retried and nothing is delivered
// before its copies are recorded.
func TestRecorderBatching(t *testing.T) {
	old := planRetry
	planRetry = 10 * time.Millisecond
	defer func() { planRetry = old }()
	h := newHarness(t, testConfig())
	rec := &slowRecorder{fakeRecorder: h.rec, failFirst: true}
	q, err := New(Options{
		Dir: h.dir, Config: func() *config.Config { return h.cfg },
		Upstream: func(string) relay.Upstream { return h.up }, Recorder: rec, Minter: h.mint, Log: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	q.Start()
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := q.Spool("s@x.test", []string{fmt.Sprintf("r%d@ex.test", i)}, strings.NewReader(htmlMsg)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	waitFor(t, "deliveries", func() bool { return q.Len() == 0 })
	h.rec.mu.Lock()
	adds, copies := h.rec.adds, len(h.rec.copies)
	h.rec.mu.Unlock()
	if copies != n {
		t.Errorf("%d copies recorded, want %d", copies, n)
	}
	if adds >= n/2 {
		t.Errorf("%d Add calls for %d messages: not batched", adds, n)
	}
	if got := len(h.up.deliveries()); got != n {
		t.Errorf("%d deliveries, want %d", got, n)
	}
	// Every delivered copy was recorded (Update found it) and sent.
	h.rec.mu.Lock()
	defer h.rec.mu.Unlock()
	sent := 0
	for _, e := range h.rec.updates {
		if e.status == record.StatusSent {
			sent++
		}
	}
	if sent != n {
		t.Errorf("%d sent updates, want %d", sent, n)
	}
}

type discardUpstream struct{ n chan struct{} }

func (d discardUpstream) Deliver(_ context.Context, _ string, _ []string, r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	d.n <- struct{}{}
	return err
}
func (discardUpstream) Close() error { return nil }

// BenchmarkQueueEndToEnd: accepted and delivered messages per second, each
// ~50 KB HTML to one tracked and one untracked recipient (two copies), to
// an upstream that discards.
func BenchmarkQueueEndToEnd(b *testing.B) {
	for _, noFsync := range []bool{false, true} {
		b.Run(fmt.Sprintf("NoFsync=%v", noFsync), func(b *testing.B) {
			body := htmlMsg + strings.Repeat("<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p>\r\n", 750)
			up := discardUpstream{n: make(chan struct{}, 1<<16)}
			cfg := testConfig()
			cfg.Upstream.Connections = 8
			q, err := New(Options{
				Dir:      b.TempDir(),
				Config:   func() *config.Config { return cfg },
				Upstream: func(string) relay.Upstream { return up },
				Recorder: newFakeRecorder(),
				Minter:   &fakeMinter{},
				NoFsync:  noFsync,
				Log:      quiet,
			})
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			q.Start()
			b.SetBytes(int64(len(body)))
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := q.Spool("s@x.test", []string{"a@ex.test", "z@untracked.test"}, strings.NewReader(body)); err != nil {
						b.Fatal(err)
					}
				}
			})
			for range 2 * b.N {
				<-up.n
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// TestSharedCopyPartialRetry: when one recipient of the shared copy is
// refused temporarily, only that one is retried.
func TestSharedCopyPartialRetry(t *testing.T) {
	h := newHarness(t, testConfig())
	h.up.script["y@untracked.test"] = []error{temporary("mailbox busy")}
	h.open(true)
	h.spool("s@x.test", []string{"x@untracked.test", "y@untracked.test"}, textMsg)
	waitFor(t, "delivery", func() bool { return h.q.Len() == 0 })
	got := h.up.deliveries()
	if len(got) != 2 {
		t.Fatalf("%d deliveries, want 2", len(got))
	}
	if strings.Join(got[0].to, ",") != "x@untracked.test,y@untracked.test" || strings.Join(got[1].to, ",") != "y@untracked.test" {
		t.Errorf("deliveries to %v then %v", got[0].to, got[1].to)
	}
	if !strings.Contains(got[1].body, "Message-ID: <plain-1@example.com>") {
		t.Errorf("retried copy lost the original Message-ID:\n%s", got[1].body)
	}
	if countDSN(got) != 0 {
		t.Error("bounced")
	}
}

// TestLaterFailureSecondBounce: the first round's permanent failure is
// bounced at once (not held back by a deferred recipient), and a recipient
// that expires later gets its own second report.
func TestLaterFailureSecondBounce(t *testing.T) {
	cfg := testConfig()
	cfg.Queue.MinRetry = config.Duration(time.Minute)
	cfg.Queue.MaxRetry = config.Duration(time.Hour)
	cfg.Queue.MaxAge = config.Duration(24 * time.Hour)
	h := newHarness(t, cfg)
	clk := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	h.now = clk.now
	h.up.always["a@ex.test"] = permanent(550, smtp.EnhancedCode{5, 1, 1}, "no such user")
	h.up.always["b@ex.test"] = temporary("greylisted")
	h.open(true)
	h.spool("s@x.test", []string{"a@ex.test", "b@ex.test"}, htmlMsg)
	waitFor(t, "first bounce", func() bool { return countDSN(h.up.deliveries()) == 1 && h.q.Len() == 1 })
	if es := h.q.Entries(); len(es) != 1 || es[0].Recipients[0] != "b@ex.test" || es[0].Status != record.StatusDeferred {
		t.Fatalf("entries %+v, want b deferred", es)
	}
	clk.add(25 * time.Hour)
	h.q.Kick()
	waitFor(t, "second bounce", func() bool { return countDSN(h.up.deliveries()) == 2 && h.q.Len() == 0 })
	var lists [][]string
	for _, d := range h.up.deliveries() {
		if d.from != "" {
			continue
		}
		var rs []string
		for r := range parseDSN(t, d).recipient {
			rs = append(rs, r)
		}
		lists = append(lists, rs)
	}
	if len(lists) != 2 || strings.Join(lists[0], ",") != "a@ex.test" || strings.Join(lists[1], ",") != "b@ex.test" {
		t.Errorf("bounces list %v, want [a] then [b]", lists)
	}
}

func TestDirFromConfig(t *testing.T) {
	cfg := testConfig()
	if _, err := New(Options{Config: func() *config.Config { return cfg }, Log: quiet}); err == nil {
		t.Fatal("New without a directory succeeded")
	}
	cfg.DataDir = t.TempDir()
	q, err := New(Options{Config: func() *config.Config { return cfg }, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	id, err := q.Spool("s@x.test", []string{"a@ex.test"}, strings.NewReader(textMsg))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "spool", id+".msg")); err != nil {
		t.Errorf("message not under data_dir/spool: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(cfg.DataDir, "spool")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("spool dir mode %v (%v), want 0700", fi.Mode(), err)
	}
}

// TestRewritePanicContained: a rewrite that panics fails the attempt (and an
// inspect that panics leaves the message untracked); the relay survives.
func TestRewritePanicContained(t *testing.T) {
	oldI, oldR := inspect, rewriteTo
	defer func() { inspect, rewriteTo = oldI, oldR }()
	inspect = func(io.Reader) (rewrite.Info, error) { panic("inspect bug") }
	calls := 0
	var mu sync.Mutex
	rewriteTo = func(w io.Writer, r io.Reader, opt rewrite.Options) error {
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		if first {
			panic("rewrite bug")
		}
		return oldR(w, r, opt)
	}
	h := newHarness(t, testConfig())
	h.open(true)
	h.spool("s@x.test", []string{"a@ex.test"}, htmlMsg)
	waitFor(t, "delivery", func() bool { return h.q.Len() == 0 })
	got := h.up.deliveries()
	if len(got) != 1 || strings.Contains(got[0].body, "/o/tok") || h.mint.count() != 0 {
		t.Errorf("deliveries %d, minted %d: want one untracked delivery after the failed attempt", len(got), h.mint.count())
	}
	if calls != 2 {
		t.Errorf("rewrite called %d times, want 2", calls)
	}
}

type brokenRecorder struct{ *fakeRecorder }

func (brokenRecorder) Add([]record.Copy) error { return errors.New("database is closed") }

// TestRecorderDownDeliversUntracked: when tracked copies cannot be recorded,
// the message is delivered untracked after a few tries rather than held.
func TestRecorderDownDeliversUntracked(t *testing.T) {
	old := planRetry
	planRetry = 5 * time.Millisecond
	defer func() { planRetry = old }()
	h := newHarness(t, testConfig())
	q, err := New(Options{
		Dir: h.dir, Config: func() *config.Config { return h.cfg },
		Upstream: func(string) relay.Upstream { return h.up }, Recorder: brokenRecorder{h.rec}, Minter: h.mint, Log: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	q.Start()
	if _, err := q.Spool("s@x.test", []string{"a@ex.test", "b@ex.test"}, strings.NewReader(htmlMsg)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery", func() bool { return q.Len() == 0 })
	got := h.up.deliveries()
	if len(got) != 1 || strings.Join(got[0].to, ",") != "a@ex.test,b@ex.test" || strings.Contains(got[0].body, "/o/tok") {
		t.Errorf("deliveries %+v, want one untracked copy to both", got)
	}
	if n := h.mint.count(); n != 2*maxPlanFails {
		t.Errorf("minted %d tokens, want %d (2 per failed plan)", n, 2*maxPlanFails)
	}
}

// TestCopiesSmallAndLarge: a message under maxCached (read once, rewritten
// in memory) and one over it (streamed per copy) give every tracked
// recipient exactly what rewrite.Rewrite makes of the original, and no
// cached bytes outlive the deliveries.
func TestCopiesSmallAndLarge(t *testing.T) {
	big := htmlMsg + strings.Repeat("<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p>\r\n", maxCached/60+10)
	for _, tc := range []struct {
		name, msg string
	}{
		{"small", htmlMsg},
		{"large", big},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if (len(tc.msg) >= maxCached) != (tc.name == "large") {
				t.Fatalf("test message of %d bytes is not %s", len(tc.msg), tc.name)
			}
			h := newHarness(t, testConfig())
			h.open(true)
			rcpts := []string{"a@ex.test", "b@ex.test", "c@ex.test"}
			h.spool("alice@example.com", rcpts, tc.msg)
			waitFor(t, "spool to empty", func() bool { return h.q.Len() == 0 })
			waitFor(t, "cached bytes freed", func() bool { return h.q.cacheUsed.Load() == 0 })
			got := h.up.deliveries()
			if len(got) != len(rcpts) {
				t.Fatalf("%d deliveries, want %d", len(got), len(rcpts))
			}
			h.rec.mu.Lock()
			byRcpt := map[string]string{}
			for tid, c := range h.rec.copies {
				byRcpt[c.Recipient] = strings.Replace(tid, "tid", "tok", 1) + "x"
			}
			msgID := ""
			for _, c := range h.rec.copies {
				msgID = c.MessageID
			}
			h.rec.mu.Unlock()
			for _, d := range got {
				var want strings.Builder
				err := rewrite.Rewrite(&want, strings.NewReader(tc.msg), rewrite.Options{
					PixelURL: "http://127.0.0.1:8025/o/" + byRcpt[d.to[0]] + ".gif", MessageID: msgID})
				if err != nil {
					t.Fatal(err)
				}
				if d.body != want.String() {
					t.Errorf("copy to %v: %d bytes differ from the rewrite's %d", d.to, len(d.body), want.Len())
				}
			}
		})
	}
}

// TestCachedBytesDropped: once every copy of a small message was tried, its
// cached bytes are freed even while a deferred copy waits for a retry.
func TestCachedBytesDropped(t *testing.T) {
	h := newHarness(t, testConfig())
	h.cfg.Queue.MinRetry = config.Duration(time.Hour)
	h.cfg.Queue.MaxRetry = config.Duration(time.Hour)
	h.up.always["b@ex.test"] = temporary("try later")
	h.open(true)
	id := h.spool("alice@example.com", []string{"a@ex.test", "b@ex.test"}, htmlMsg)
	waitFor(t, "both tried", func() bool {
		h.q.mu.Lock()
		defer h.q.mu.Unlock()
		m := h.q.msgs[id]
		if m == nil || m.st == nil {
			return false
		}
		for _, c := range m.st.Copies {
			if c.Attempts == 0 {
				return false
			}
		}
		return m.busy == 0
	})
	h.q.mu.Lock()
	m := h.q.msgs[id]
	data, refs := m.data, m.refs
	h.q.mu.Unlock()
	if data != nil || refs != 0 {
		t.Errorf("after every copy was tried: data %v, refs %d; want freed", data != nil, refs)
	}
}
