package queue

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pixelrelay/config"
	"pixelrelay/relay"
	"pixelrelay/tracker/record"
)

// blockedUpstream never finishes a delivery: the child process is killed
// with copies in flight.
type blockedUpstream struct{}

func (blockedUpstream) Deliver(ctx context.Context, _ string, _ []string, r io.Reader) error {
	io.Copy(io.Discard, r)
	<-ctx.Done()
	return ctx.Err()
}
func (blockedUpstream) Close() error { return nil }

// TestKillChild is the child of TestKill9: it spools messages as fast as it
// can, printing each acknowledged one, until it is killed.
func TestKillChild(t *testing.T) {
	dir := os.Getenv("PIXELRELAY_QUEUE_KILL_DIR")
	if dir == "" {
		t.Skip("child process of TestKill9 only")
	}
	var up relay.Upstream = blockedUpstream{}
	var minter record.Minter = &fakeMinter{}
	prefix, untracked := "m", "z@untracked.test"
	if log := os.Getenv("PIXELRELAY_QUEUE_KILL_LOG"); log != "" { // TestKill9Repeated
		f, err := os.OpenFile(log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		up = &loggedUpstream{f: f}
		prefix = os.Getenv("PIXELRELAY_QUEUE_KILL_PREFIX")
		minter = &prefixMinter{prefix: prefix}
		untracked = ""
	}
	q, err := New(Options{
		Dir:      dir,
		Config:   testConfig,
		Upstream: func(string) relay.Upstream { return up },
		Recorder: newFakeRecorder(),
		Minter:   minter,
		Log:      quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	q.Start()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				n := fmt.Sprintf("%s%d-%d", prefix, g, i)
				msg := strings.Replace(htmlMsg, "Quarterly report", n, 1)
				to := []string{n + "@ex.test", untracked}
				if untracked == "" {
					to[1] = n + "@untracked.test"
				}
				if _, err := q.Spool("s@x.test", to, strings.NewReader(msg)); err != nil {
					fmt.Println("error", err)
					return
				}
				mu.Lock()
				fmt.Println("ok", n)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestKill9: every message acknowledged by a process killed with SIGKILL
// (mid-spool, mid-plan, mid-delivery) is delivered by the next process, to
// each of its recipients.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$")
	cmd.Env = append(os.Environ(), "PIXELRELAY_QUEUE_KILL_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(20 * time.Second)
	for len(acked) < 60 && time.Now().Before(deadline) && sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "ok "); ok {
			acked[n] = true
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	for sc.Scan() { // lines written before the kill were acknowledged too
		if n, ok := strings.CutPrefix(sc.Text(), "ok "); ok {
			acked[n] = true
		}
	}
	cmd.Wait()
	if len(acked) < 10 {
		t.Fatalf("child acknowledged only %d messages", len(acked))
	}

	h := newHarness(t, testConfig())
	h.dir = dir
	q := h.open(true)
	waitFor(t, "resumed deliveries", func() bool { return q.Len() == 0 })
	got := map[string]int{}
	for _, d := range h.up.deliveries() {
		for _, r := range d.to {
			got[r]++
		}
	}
	for n := range acked {
		if got[n+"@ex.test"] != 1 {
			t.Errorf("acknowledged message %s delivered %d times to its tracked recipient", n, got[n+"@ex.test"])
		}
	}
	if got["z@untracked.test"] < len(acked) {
		t.Errorf("untracked recipient got %d copies for %d acknowledged messages", got["z@untracked.test"], len(acked))
	}
}

// loggedUpstream delivers for real: each delivery appends its recipients to
// a file, one line each, in one write (a kill cannot tear it), after a
// moment on the wire, so that kills land mid-delivery too.
type loggedUpstream struct {
	mu sync.Mutex
	f  *os.File
}

func (u *loggedUpstream) Deliver(ctx context.Context, _ string, to []string, r io.Reader) error {
	io.Copy(io.Discard, r)
	time.Sleep(2 * time.Millisecond)
	u.mu.Lock()
	defer u.mu.Unlock()
	_, err := u.f.WriteString(strings.Join(to, "\n") + "\n")
	return err
}
func (u *loggedUpstream) Close() error { return nil }

// prefixMinter mints tracking ids that differ from one child to the next.
type prefixMinter struct {
	fakeMinter
	prefix string
}

func (m *prefixMinter) Mint() (string, string, error) {
	id, tok, err := m.fakeMinter.Mint()
	return m.prefix + id, m.prefix + tok, err
}

// TestKill9Repeated: the child of TestKillChild is killed with SIGKILL
// several times on one spool while it spools and really delivers (kills
// land mid-spool, mid-plan and mid-delivery, at seeded random moments),
// and restarted each time; in the end every recipient of every
// acknowledged message got it at least once. Duplicates (delivered, then
// killed before the state said so) are counted and reported.
func TestKill9Repeated(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PIXELRELAY_KILL_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	t.Logf("seed %d (rerun with PIXELRELAY_KILL_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 9))
	rounds := 6
	if os.Getenv("PIXELRELAY_SOAK") == "1" {
		rounds = 40
	}
	dir := t.TempDir()
	log := filepath.Join(t.TempDir(), "deliveries")
	var acked []string
	for round := range rounds {
		acked = append(acked, killRound(t, dir, log, fmt.Sprintf("r%d.", round), time.Duration(100+rng.IntN(600))*time.Millisecond)...)
	}
	h := newHarness(t, testConfig())
	h.dir = dir
	q := h.open(true)
	start := time.Now()
	for q.Len() > 0 {
		if time.Since(start) > 60*time.Second {
			es := q.Entries()
			t.Fatalf("%d copies still queued 60s after the restart (%d damaged); first: %+v", len(es), q.Damaged(), es[:min(3, len(es))])
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("the last restart delivered the rest in %v", time.Since(start).Round(time.Millisecond))
	got := map[string]int{}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	delivered := strings.Count(string(b), "\n")
	for _, r := range strings.Fields(string(b)) {
		got[r]++
	}
	for _, d := range h.up.deliveries() {
		for _, r := range d.to {
			got[r]++
			delivered++
		}
	}
	dups := 0
	for _, n := range acked {
		for _, r := range []string{n + "@ex.test", n + "@untracked.test"} {
			if got[r] == 0 {
				t.Errorf("acknowledged message %s never reached %s", n, r)
			}
			dups += max(got[r]-1, 0)
		}
	}
	t.Logf("%d kills, %d messages acknowledged (%d copies), %d deliveries, %d duplicates, %d copies delivered after the last kill",
		rounds, len(acked), 2*len(acked), delivered, dups, len(h.up.deliveries()))
}

// killRound runs the child on dir, kills it after the given time (counted
// from its first acknowledged message) and returns what it acknowledged.
func killRound(t *testing.T, dir, log, prefix string, after time.Duration) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$")
	cmd.Env = append(os.Environ(), "PIXELRELAY_QUEUE_KILL_DIR="+dir,
		"PIXELRELAY_QUEUE_KILL_LOG="+log, "PIXELRELAY_QUEUE_KILL_PREFIX="+prefix)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	sc := bufio.NewScanner(out)
	var timer *time.Timer
	hung := time.AfterFunc(30*time.Second, func() { cmd.Process.Signal(syscall.SIGKILL) })
	defer hung.Stop()
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "ok "); ok {
			acked = append(acked, n)
			if timer == nil {
				timer = time.AfterFunc(after, func() { cmd.Process.Signal(syscall.SIGKILL) })
			}
		}
	}
	cmd.Wait()
	if len(acked) == 0 {
		t.Fatalf("child %s acknowledged nothing within 30s", prefix)
	}
	return acked
}

// heldUpstream is fakeUpstream that holds the copies for a recipient in
// hold until its channel is closed, and counts what it accepted.
type heldUpstream struct {
	*fakeUpstream
	hold     map[string]chan struct{}
	mu       sync.Mutex
	accepted map[string]int
}

func (u *heldUpstream) Deliver(ctx context.Context, from string, to []string, r io.Reader) error {
	for _, rcpt := range to {
		if ch := u.hold[rcpt]; ch != nil {
			select {
			case <-ch:
			case <-ctx.Done():
				io.Copy(io.Discard, r)
				return ctx.Err()
			}
		}
	}
	err := u.fakeUpstream.Deliver(ctx, from, to, r)
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, rcpt := range to {
		if rcptErr(err, rcpt) == nil {
			u.accepted[rcpt]++
		}
	}
	return err
}

// TestGracefulStopKeepsDebouncedDelivery: a graceful stop never sends a
// delivered copy again, also when its delivery was the news the debounced
// state save held back (relay/queue/deliver.go, settle). One message to
// a and b: b's copy is deferred first (its state saved at once), then a's
// is delivered within the debounce, and the queue is closed right after.
// After the restart each recipient has exactly one copy. (The kill -9
// tests above allow at-least-once; a graceful stop must not.)
func TestGracefulStopKeepsDebouncedDelivery(t *testing.T) {
	for try := 1; ; try++ {
		if gracefulStopRound(t) {
			return
		}
		if try == 3 {
			t.Fatalf("a's delivery never came within %v of b's deferral in %d tries: the machine is too slow for this check", stateDebounce, try)
		}
	}
}

// gracefulStopRound runs the scenario once; false means a's delivery came
// too late after b's deferral to be debounced, so nothing was checked.
func gracefulStopRound(t *testing.T) bool {
	cfg := testConfig()
	cfg.Queue.MinRetry = config.Duration(time.Hour) // b stays deferred until the Kick
	cfg.Queue.MaxRetry = config.Duration(time.Hour)
	h := newHarness(t, cfg)
	h.up.script["b@ex.test"] = []error{temporary("451 4.7.1 greylisted")}
	release := make(chan struct{})
	up := &heldUpstream{fakeUpstream: h.up, hold: map[string]chan struct{}{"a@ex.test": release}, accepted: map[string]int{}}
	withUp := func(o *Options) { o.Upstream = func(string) relay.Upstream { return up } }
	q := h.openWith(withUp, true)
	h.spool("s@x.test", []string{"a@ex.test", "b@ex.test"}, htmlMsg)

	tidOf := func(rcpt string) string {
		h.rec.mu.Lock()
		defer h.rec.mu.Unlock()
		for tid, c := range h.rec.copies {
			if c.Recipient == rcpt {
				return tid
			}
		}
		return ""
	}
	waitFor(t, "b's deferral", func() bool { return slices.Contains(h.rec.statuses(tidOf("b@ex.test")), record.StatusDeferred) })
	deferred := time.Now() // b's state was saved before the recorder heard of it
	close(release)
	waitFor(t, "a's delivery", func() bool { return slices.Contains(h.rec.statuses(tidOf("a@ex.test")), record.StatusSent) })
	late := time.Since(deferred) >= stateDebounce
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if late {
		t.Logf("a delivered %v after b's deferral: not debounced, trying again", time.Since(deferred).Round(time.Millisecond))
		return false
	}

	q2 := h.openWith(withUp, true)
	q2.Kick()
	waitFor(t, "b's delivery after the restart", func() bool { return q2.Len() == 0 })
	up.mu.Lock()
	defer up.mu.Unlock()
	for _, rcpt := range []string{"a@ex.test", "b@ex.test"} {
		if up.accepted[rcpt] != 1 {
			t.Errorf("%s got %d copies across the graceful restart, want exactly 1", rcpt, up.accepted[rcpt])
		}
	}
	return true
}
