package main

import (
	"fmt"
	"net/mail"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestCrashLosesNothing: a burst of messages from several clients, kill -9
// of the relay in the middle, restart: every acknowledged message reaches
// every recipient. Duplicates (a copy delivered just before the crash and
// again after it) are allowed and reported.
func TestCrashLosesNothing(t *testing.T) {
	in := newInstance(t, "")
	in.start()

	var (
		mu    sync.Mutex
		acked []string // subjects that got a 250
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for n := 0; !stop.Load() && n < 10000; n++ {
				subject := fmt.Sprintf("crash-%d-%d", g, n)
				to := []string{"a" + subject + "@example.org", "b" + subject + "@example.org"}
				if _, err := sendMail(t, in.smtpAddr, "me@example.com", to, htmlMessage("me@example.com", to, subject)); err != nil {
					return // the relay is gone: this one was not acknowledged
				}
				mu.Lock()
				acked = append(acked, subject)
				mu.Unlock()
			}
		}(g)
	}
	// Kill in the middle of the burst: once 60 messages were acknowledged.
	for waited := 0; waited < 300; waited++ {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 60 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	in.cmd.Process.Signal(syscall.SIGKILL)
	<-in.done
	stop.Store(true)
	wg.Wait()
	if len(acked) < 10 {
		t.Fatalf("only %d messages acknowledged before the kill; the test needs a burst", len(acked))
	}
	before := len(in.outbox())

	in.start()
	want := map[string]bool{}
	for _, s := range acked {
		want["a"+s+"@example.org"] = true
		want["b"+s+"@example.org"] = true
	}
	deadline := time.Now().Add(60 * time.Second)
	var got map[string]int
	for {
		got = deliveredTo(t, in.outbox())
		missing := 0
		for rcpt := range want {
			if got[rcpt] == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged copies never arrived after the restart", missing, len(want))
		}
		time.Sleep(100 * time.Millisecond)
	}
	dups := 0
	for _, n := range got {
		if n > 1 {
			dups += n - 1
		}
	}
	t.Logf("acknowledged %d messages (%d copies); %d copies were in the outbox at the kill; %d duplicate deliveries after restart",
		len(acked), len(want), before, dups)
	if err := in.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// deliveredTo counts outbox copies per Delivered-To recipient.
func deliveredTo(t *testing.T, copies []string) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, c := range copies {
		m, err := mail.ReadMessage(strings.NewReader(c))
		if err != nil {
			t.Fatalf("outbox copy does not parse: %v", err)
		}
		n[strings.ToLower(m.Header.Get("Delivered-To"))]++
	}
	return n
}
