package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pixelrelay/config"
	"pixelrelay/relay"
	"pixelrelay/relay/spool"
)

// faultLogs keeps the queue's log records to count its reports.
type faultLogs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *faultLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *faultLogs) logger() *slog.Logger { return slog.New(slog.NewJSONHandler(l, nil)) }

// records returns the records at level whose message contains msg.
func (l *faultLogs) records(level, msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(l.buf.String(), "\n") {
		var r map[string]any
		if json.Unmarshal([]byte(line), &r) == nil && r["level"] == level && strings.Contains(r["msg"].(string), msg) {
			out = append(out, r)
		}
	}
	return out
}

// damagedReports counts, per queue id, the error-level reports of a
// damaged entry.
func (l *faultLogs) damagedReports() map[string]int {
	out := map[string]int{}
	for _, r := range l.records("ERROR", "damaged") {
		id, _ := r["queue_id"].(string)
		if reason, _ := r["reason"].(string); reason == "" {
			id = "(no reason)"
		}
		out[id]++
	}
	return out
}

// faultDisk fails chosen spool write steps with ENOSPC.
type faultDisk struct {
	mu   sync.Mutex
	full map[string]bool
	hits int
}

func (d *faultDisk) fault(step string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.full[step] {
		d.hits++
		return syscall.ENOSPC
	}
	return nil
}

func (d *faultDisk) set(step string, full bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.full == nil {
		d.full = map[string]bool{}
	}
	d.full[step] = full
}

func (d *faultDisk) injected() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hits
}

// faultOpen opens h's queue like h.open, with a spool fault and a logger.
func faultOpen(h *harness, fault func(string) error, log *slog.Logger, start bool) *Queue {
	h.t.Helper()
	return h.openWith(func(o *Options) { o.SpoolFault, o.Log = fault, log }, start)
}

// faultPlanned waits until every message in q has its plan.
func faultPlanned(t *testing.T, q *Queue) {
	t.Helper()
	waitFor(t, "plans", func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		for _, m := range q.msgs {
			if m.st == nil {
				return false
			}
		}
		return true
	})
}

// faultTo counts the delivery attempts of original copies (not bounces)
// per recipient.
func faultTo(ds []delivery) map[string]int {
	out := map[string]int{}
	for _, d := range ds {
		if d.from == "" {
			continue
		}
		for _, r := range d.to {
			out[r]++
		}
	}
	return out
}

// TestDamagedAtStart: damaged files in the spool are moved aside at start,
// each reported once at error level with its id and reason (not again at
// the next start), counted by Damaged; a message whose body was cut after
// it was planned is bounced and its tracked copy marked failed; the good
// messages are delivered.
func TestDamagedAtStart(t *testing.T) {
	h := newHarness(t, testConfig())
	q := h.open(false)
	good1 := h.spool("s@x.test", []string{"a@ex.test"}, htmlMsg)
	good2 := h.spool("s@x.test", []string{"u@untracked.test"}, textMsg)
	cut := h.spool("s@x.test", []string{"c@ex.test", "d@untracked.test"}, htmlMsg)
	faultPlanned(t, q)
	q.Close()

	dir := h.dir
	envLine := func(id string) string {
		b, _ := json.Marshal(spool.Envelope{ID: id, From: "s@x.test", To: []string{"b@ex.test"}})
		return string(b) + "\n"
	}
	bad := map[string]string{
		"empty":   "",
		"garbled": "\x00\x01 not an envelope\nSubject: x\r\n\r\nbody",
		"noeol":   `{"id":"noeol","to":["b@ex.test"]`,
		"otherid": envLine("another") + "Subject: x\r\n\r\nbody",
	}
	for id, data := range bad {
		if err := os.WriteFile(filepath.Join(dir, id+".msg"), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "isdir.msg"), 0o700); err != nil {
		t.Fatal(err)
	}
	cutFile := filepath.Join(dir, cut+".msg")
	b, err := os.ReadFile(cutFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(cutFile, int64(bytes.IndexByte(b, '\n')+20)); err != nil {
		t.Fatal(err)
	}

	logs := &faultLogs{}
	q = faultOpen(h, nil, logs.logger(), true)
	waitFor(t, "good messages delivered and the cut one bounced", func() bool {
		got := faultTo(h.up.deliveries())
		return got["a@ex.test"] == 1 && got["u@untracked.test"] == 1 && countDSN(h.up.deliveries()) == 1 && q.Len() == 0
	})
	time.Sleep(100 * time.Millisecond) // ten min_retry: nothing more happens
	if got := faultTo(h.up.deliveries()); len(got) != 2 {
		t.Errorf("original copies delivered: %v, want only %s and %s's", got, good1, good2)
	}
	reports := logs.damagedReports()
	for _, id := range []string{"empty", "garbled", "noeol", "otherid", "isdir", cut} {
		if reports[id] != 1 {
			t.Errorf("%s reported %d times, want once (reports %v)", id, reports[id], reports)
		}
		if _, err := os.Lstat(filepath.Join(dir, spool.DamagedDir, id+".msg")); err != nil {
			t.Errorf("%s not moved aside: %v", id, err)
		}
	}
	if len(reports) != 6 {
		t.Errorf("reports %v, want 6 ids", reports)
	}
	for id, data := range bad {
		if got, err := os.ReadFile(filepath.Join(dir, spool.DamagedDir, id+".msg")); err != nil || string(got) != data {
			t.Errorf("%s aside holds %q (%v), want its bytes", id, got, err)
		}
	}
	// The cut message's sender is told, and its tracked copy failed.
	for _, d := range h.up.deliveries() {
		if d.from != "" {
			continue
		}
		info := parseDSN(t, d)
		for _, r := range []string{"c@ex.test", "d@untracked.test"} {
			rh := info.recipient[r]
			if st := rh.Get("Status"); st != "5.3.0" {
				t.Errorf("bounce for %s: status %q, want 5.3.0", r, st)
			}
		}
	}
	var tracked string
	for tid, c := range h.rec.copies {
		if c.QueueID == cut {
			tracked = tid
		}
	}
	if st := h.rec.statuses(tracked); len(st) != 1 || st[0] != "failed" {
		t.Errorf("tracked copy %q of the cut message: updates %v, want [failed]", tracked, st)
	}
	if n := q.Damaged(); n != 6 { // six messages (the cut one's state goes with it)
		t.Errorf("Damaged() = %d, want 6", n)
	}
	q.Close()

	logs2 := &faultLogs{}
	q = faultOpen(h, nil, logs2.logger(), true)
	if r := logs2.damagedReports(); len(r) != 0 {
		t.Errorf("second start reported again: %v", r)
	}
	if n := q.Damaged(); n != 6 {
		t.Errorf("Damaged() after restart = %d, want 6", n)
	}
}

// TestDamagedDuringDelivery: a spool file that disappears, is replaced or
// cut after the start is found when a copy is delivered: it is moved
// aside, reported once, every copy fails at once (a bounce with 5.3.0, the
// tracked copy failed) and nothing is retried.
func TestDamagedDuringDelivery(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(path string) error
		aside  bool
	}{
		{"removed", os.Remove, false},
		{"cut", func(p string) error { return os.Truncate(p, 200) }, true},
		{"grown", func(p string) error {
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			f.WriteString("garbage\r\n")
			return f.Close()
		}, true},
		{"directory", func(p string) error {
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.Mkdir(p, 0o700)
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, testConfig())
			q := h.open(false)
			id := h.spool("s@x.test", []string{"a@ex.test", "u@untracked.test"}, htmlMsg)
			faultPlanned(t, q)
			q.Close()
			logs := &faultLogs{}
			q = faultOpen(h, nil, logs.logger(), false) // Scan finds it sound
			if err := tc.damage(filepath.Join(h.dir, id+".msg")); err != nil {
				t.Fatal(err)
			}
			q.Start()
			waitFor(t, "the bounce", func() bool { return countDSN(h.up.deliveries()) == 1 && q.Len() == 0 })
			time.Sleep(100 * time.Millisecond)
			if got := faultTo(h.up.deliveries()); len(got) != 0 {
				t.Errorf("copies delivered: %v", got)
			}
			if n := len(h.up.deliveries()); n != 1 {
				t.Errorf("%d deliveries, want one bounce", n)
			}
			if r := logs.damagedReports(); r[id] != 1 || len(r) != 1 {
				t.Errorf("reports %v, want %s once", r, id)
			}
			info := parseDSN(t, h.up.deliveries()[0])
			rh := info.recipient["a@ex.test"]
			if st := rh.Get("Status"); st != "5.3.0" {
				t.Errorf("bounce status %q, want 5.3.0", st)
			}
			if st := h.rec.statuses("tid1"); len(st) != 1 || st[0] != "failed" {
				t.Errorf("tracked copy updates %v, want [failed]", st)
			}
			_, err := os.Lstat(filepath.Join(h.dir, spool.DamagedDir, id+".msg"))
			if (err == nil) != tc.aside {
				t.Errorf("moved aside: %v, want %v", err == nil, tc.aside)
			}
			if names := spoolFiles(t, h.dir); len(names) > 1 || len(names) == 1 && names[0] != spool.DamagedDir {
				t.Errorf("spool holds %v", names)
			}
		})
	}
}

// TestDamagedBeforePlan: a message whose file cannot be read when it is
// planned is bounced once, not planned again every few seconds.
func TestDamagedBeforePlan(t *testing.T) {
	h := newHarness(t, testConfig())
	logs := &faultLogs{}
	q := faultOpen(h, nil, logs.logger(), true)
	env := q.newEnvelope("s@x.test", []string{"a@ex.test"})
	off, err := q.sp.Put(env, strings.NewReader(htmlMsg))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(h.dir, env.ID+".msg")); err != nil {
		t.Fatal(err)
	}
	m := &message{env: *env, off: off}
	q.mu.Lock()
	q.msgs[env.ID] = m
	q.mu.Unlock()
	q.enqueuePlan(m)
	waitFor(t, "the bounce", func() bool { return countDSN(h.up.deliveries()) == 1 && q.Len() == 0 })
	if m.planFails != 0 || h.mint.count() != 0 {
		t.Errorf("planned %d times, minted %d tokens", m.planFails, h.mint.count())
	}
	if r := logs.damagedReports(); r[env.ID] != 1 {
		t.Errorf("reports %v", r)
	}
}

// faultGate holds every delivery to one recipient until released.
type faultGate struct {
	inner   relay.Upstream
	rcpt    string
	started chan struct{} // gets a value when a held delivery starts
	release chan struct{}
}

func (g *faultGate) Deliver(ctx context.Context, from string, to []string, r io.Reader) error {
	if slices.Contains(to, g.rcpt) {
		g.started <- struct{}{}
		<-g.release
	}
	return g.inner.Deliver(ctx, from, to, r)
}

func (g *faultGate) Close() error { return nil }

// TestStateJournalDiskFull: while the states journal cannot be written,
// every copy is still delivered exactly once; once there is room again a
// state that failed to be written is written without waiting for news (a
// copy still in flight); a restart while it was full loses nothing (copies
// delivered before it may come again: at-least-once).
func TestStateJournalDiskFull(t *testing.T) {
	cfg := testConfig()
	cfg.Queue.MinRetry = config.Duration(50 * time.Millisecond)
	cfg.Queue.MaxRetry = config.Duration(time.Hour)
	h := newHarness(t, cfg)
	d := &faultDisk{}
	d.set(spool.StepState, true)
	logs := &faultLogs{}
	h.up.script["a@ex.test"] = []error{temporary("try later")}
	gate := &faultGate{inner: h.up, rcpt: "c@ex.test", started: make(chan struct{}, 10), release: make(chan struct{})}
	q, err := New(Options{
		Dir: h.dir, Config: func() *config.Config { return h.cfg }, Upstream: func(string) relay.Upstream { return gate },
		Recorder: h.rec, Minter: h.mint, Log: logs.logger(), SpoolFault: d.fault,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	q.Start()
	h.q = q
	h.spool("s@x.test", []string{"a@ex.test", "b@ex.test", "u@untracked.test"}, htmlMsg)
	waitFor(t, "three deliveries", func() bool {
		got := faultTo(h.up.deliveries())
		// a@ex.test: refused once, then accepted.
		return got["a@ex.test"] == 2 && got["b@ex.test"] == 1 && got["u@untracked.test"] == 1 && q.Len() == 0
	})
	if d.injected() == 0 || len(logs.records("ERROR", "writing queue state")) == 0 {
		t.Fatalf("no journal write failed (%d faults)", d.injected())
	}

	// A plan that could not be written while a copy is in flight: once
	// there is room, it reaches the journal before the copy is done.
	held := h.spool("s@x.test", []string{"c@ex.test", "e@ex.test"}, htmlMsg)
	<-gate.started
	// Two failed writes: the plan, and the news that e@ex.test has its
	// copy; then nothing happens to the message until c's is done.
	waitFor(t, "e delivered and its state not written", func() bool {
		n := 0
		for _, r := range logs.records("ERROR", "writing queue state") {
			if r["queue_id"] == held {
				n++
			}
		}
		return faultTo(h.up.deliveries())["e@ex.test"] == 1 && n >= 2
	})
	// journalHas: a complete record of id is in the journal (a failed
	// append is cut off again, but may be seen before that).
	journalHas := func(id string) bool {
		b, _ := os.ReadFile(filepath.Join(h.dir, "states.log"))
		for _, line := range strings.SplitAfter(string(b), "\n") {
			var r struct{ ID string }
			if strings.HasSuffix(line, "\n") && json.Unmarshal([]byte(line), &r) == nil && r.ID == id {
				return true
			}
		}
		return false
	}
	if journalHas(held) {
		t.Fatal("state written while the disk is full")
	}
	d.set(spool.StepState, false)
	waitFor(t, "the state written", func() bool { return journalHas(held) })
	close(gate.release)
	waitFor(t, "c delivered", func() bool { return faultTo(h.up.deliveries())["c@ex.test"] == 1 && q.Len() == 0 })

	// Full again, then a restart with a copy still deferred: nothing is
	// lost.
	d.set(spool.StepState, true)
	h.up.mu.Lock()
	h.up.always["h@ex.test"] = temporary("try later")
	h.up.mu.Unlock()
	third := h.spool("s@x.test", []string{"f@ex.test", "g@untracked.test", "h@ex.test"}, textMsg)
	waitFor(t, "third message tried", func() bool {
		got := faultTo(h.up.deliveries())
		return got["f@ex.test"] == 1 && got["g@untracked.test"] == 1 && got["h@ex.test"] >= 1
	})
	q.Close()
	h.up.mu.Lock()
	delete(h.up.always, "h@ex.test")
	h.up.mu.Unlock()
	tried := faultTo(h.up.deliveries())["h@ex.test"]
	d.set(spool.StepState, false)
	q = faultOpen(h, d.fault, logs.logger(), true)
	waitFor(t, "everything delivered after the restart", func() bool {
		return faultTo(h.up.deliveries())["h@ex.test"] > tried && q.Len() == 0
	})
	got := faultTo(h.up.deliveries())
	dups := 0
	for r, once := range map[string]int{"a@ex.test": 2, "b@ex.test": 1, "u@untracked.test": 1,
		"c@ex.test": 1, "e@ex.test": 1, "f@ex.test": 1, "g@untracked.test": 1} {
		if got[r] < once {
			t.Errorf("%s: %d attempts, want its copy delivered", r, got[r])
		}
		dups += got[r] - once
	}
	t.Logf("journal faults injected %d; duplicates after the restart %d (message %s)", d.injected(), dups, third)
}
