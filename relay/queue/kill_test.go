package queue

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pixelrelay/relay"
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
	q, err := New(Options{
		Dir:      dir,
		Config:   testConfig,
		Upstream: func() relay.Upstream { return blockedUpstream{} },
		Recorder: newFakeRecorder(),
		Minter:   &fakeMinter{},
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
				n := fmt.Sprintf("m%d-%d", g, i)
				msg := strings.Replace(htmlMsg, "Quarterly report", n, 1)
				if _, err := q.Spool("s@x.test", []string{n + "@ex.test", "z@untracked.test"}, strings.NewReader(msg)); err != nil {
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
