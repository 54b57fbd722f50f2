package main

import (
	"bufio"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"pixelrelay/relay/smtptest"
)

// The crash campaign: senders submit a burst of messages, each to
// crashRcpts recipients, through the real binary to a fake SMTP upstream,
// while serve is killed with SIGKILL again and again at chosen moments and
// restarted. At the end every (message, recipient) pair that got a 250 must
// have reached the upstream at least once; duplicates are counted and
// reported (at-least-once is the promise), and a message whose DATA was
// cut by the kill must never arrive.

// crashRcpts is the number of recipients of every message.
const crashRcpts = 3

// Kill moments.
const (
	crashMidData     = "mid-DATA"     // a client is inside DATA, without the final dot
	crashAfter250    = "after-250"    // the instant a client read its 250
	crashMidDelivery = "mid-delivery" // the upstream has a copy's data and has not answered
	crashCompaction  = "compaction"   // `pixelrelay purge` is compacting the database
	crashRandom      = "random"       // a seeded random moment of the burst
)

// crashPlan sizes one campaign.
type crashPlan struct {
	messages int      // acknowledged messages to reach
	senders  int      // concurrent SMTP clients
	kills    []string // kill moments, in order
	seed     uint64
}

// crashResult holds the figures of a campaign.
type crashResult struct {
	acked, copies, kills, pendingAtKills, duplicates int
	dupsPerKill                                      []int // duplicates that appeared after each kill
	dupWhole, dupPartial                             int   // messages with all / some copies duplicated
	took                                             time.Duration
}

// crashSeed is PIXELRELAY_CRASH_SEED or the clock.
func crashSeed(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PIXELRELAY_CRASH_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("PIXELRELAY_CRASH_SEED: %v", err)
		}
		seed = n
	}
	t.Logf("seed %d (rerun with PIXELRELAY_CRASH_SEED=%d)", seed, seed)
	return seed
}

// TestCrashLosesNothing: kill -9 of serve at each chosen moment (a client
// mid-DATA, right after a 250, the upstream mid-delivery, during
// compaction) and at seeded random moments of a burst of several hundred
// messages to 3 recipients each; every acknowledged copy arrives, the cut
// messages never do, duplicates are reported. (TestCrashSoak in
// e2e_soak_test.go mixes the moments at random, at length with
// PIXELRELAY_SOAK=1.)
func TestCrashLosesNothing(t *testing.T) {
	plan := crashPlan{
		messages: 300,
		senders:  4,
		kills:    []string{crashMidData, crashAfter250, crashMidDelivery, crashCompaction, crashRandom, crashRandom},
		seed:     crashSeed(t),
	}
	crashReport(t, plan, crashCampaign(t, plan))
}

// crashReport logs a campaign's figures.
func crashReport(t *testing.T, plan crashPlan, r crashResult) {
	t.Logf("crash campaign: %d messages acknowledged (%d copies to %d recipients each), %d kills %v, %d acknowledged copies were pending at the kills and all arrived, %d duplicate deliveries (after each kill: %v; %d messages duplicated to all recipients, %d to some), %v",
		r.acked, r.copies, crashRcpts, r.kills, plan.kills, r.pendingAtKills, r.duplicates, r.dupsPerKill, r.dupWhole, r.dupPartial, r.took.Round(time.Millisecond))
}

// crashRig is one campaign's relay, upstream and senders.
type crashRig struct {
	t   *testing.T
	in  *instance
	up  *smtptest.Server
	rng *mrand.Rand

	mu    sync.Mutex
	acked []string // subjects that got a 250
	cut   []string // subjects whose DATA a kill cut

	slow     atomic.Bool   // upstream holds each DATA reply
	inFlight chan struct{} // a slow DATA is being held
	stop     atomic.Bool
	wg       sync.WaitGroup
	fills    int
}

// crashCampaign runs plan and checks the outcome.
func crashCampaign(t *testing.T, plan crashPlan) crashResult {
	start := time.Now()
	r := &crashRig{t: t, rng: mrand.New(mrand.NewPCG(plan.seed, 1)), inFlight: make(chan struct{}, 1)}
	r.up = smtptest.Start(t, smtptest.Script{OnData: r.onData})
	r.in = newInstance(t, upstreamConfig(r.up, "", ""))
	var res crashResult
	if plan.kills[0] == crashCompaction {
		r.fillOld()
	}
	r.in.start()
	for g := range plan.senders {
		r.wg.Add(1)
		go r.send(g)
	}
	step := plan.messages / (len(plan.kills) + 1)
	dups := 0
	for i, moment := range plan.kills {
		r.waitAcked((i + 1) * step)
		if i > 0 {
			res.dupsPerKill = append(res.dupsPerKill, r.duplicates()-dups)
			dups = r.duplicates()
		}
		r.kill(moment)
		res.kills++
		res.pendingAtKills += r.pending()
		if i+1 < len(plan.kills) && plan.kills[i+1] == crashCompaction {
			r.fillOld()
		}
		r.in.start()
	}
	r.waitAcked(plan.messages)
	r.stop.Store(true)
	r.wg.Wait()
	res.acked, res.copies, res.duplicates = r.check()
	res.dupsPerKill = append(res.dupsPerKill, res.duplicates-dups)
	res.dupWhole, res.dupPartial = r.dupShape()
	if err := r.in.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	res.took = time.Since(start)
	return res
}

// onData is the upstream's DATA hook: in slow mode it holds the reply so a
// kill lands while the copy is being delivered.
func (r *crashRig) onData(smtptest.Message) *smtp.SMTPError {
	if r.slow.Load() {
		select {
		case r.inFlight <- struct{}{}:
		default:
		}
		time.Sleep(300 * time.Millisecond)
	}
	return nil
}

// crashSubject and crashRcpt name message n of sender g and its k-th
// recipient.
func crashSubject(g, n int) string { return fmt.Sprintf("crash-%d-%d", g, n) }
func crashRcpt(subject string, k int) string {
	return fmt.Sprintf("r%d-%s@example.org", k, subject)
}

func crashTo(subject string) []string {
	var to []string
	for k := range crashRcpts {
		to = append(to, crashRcpt(subject, k))
	}
	return to
}

// send submits messages until stopped; a failure (the relay is down) is
// not acknowledged and is retried with a new message a moment later.
func (r *crashRig) send(g int) {
	defer r.wg.Done()
	for n := 0; !r.stop.Load(); n++ {
		if !r.sendOne(crashSubject(g, n)) {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// sendOne submits one message and records it if it got a 250.
func (r *crashRig) sendOne(subject string) bool {
	to := crashTo(subject)
	if _, err := sendMail(r.t, r.in.smtpAddr, "me@example.com", to, htmlMessage("me@example.com", to, subject)); err != nil {
		return false
	}
	r.mu.Lock()
	r.acked = append(r.acked, subject)
	r.mu.Unlock()
	return true
}

func (r *crashRig) ackedN() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.acked)
}

// waitAcked waits until n messages were acknowledged in all.
func (r *crashRig) waitAcked(n int) {
	r.t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for r.ackedN() < n {
		if time.Now().After(deadline) {
			r.t.Fatalf("only %d of %d messages acknowledged within 120s", r.ackedN(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill sends SIGKILL at moment and waits for the process to be gone.
func (r *crashRig) kill(moment string) {
	r.t.Helper()
	var after func()
	switch moment {
	case crashMidData:
		subject := fmt.Sprintf("crash-cut-%d", len(r.cut))
		conn := r.halfData(subject)
		r.cut = append(r.cut, subject)
		after = func() { conn.Close() }
	case crashAfter250:
		subject := fmt.Sprintf("crash-250-%d", r.ackedN())
		if !r.sendOne(subject) {
			r.t.Fatalf("%s: the relay did not acknowledge %s", moment, subject)
		}
	case crashMidDelivery:
		r.slow.Store(true)
		select {
		case <-r.inFlight:
		case <-time.After(30 * time.Second):
			r.t.Fatalf("%s: no delivery reached the upstream within 30s", moment)
		}
		after = func() { r.slow.Store(false) }
	case crashCompaction:
		purge := exec.Command(binPath, "purge", "--older-than", "30d", "--config", r.in.cfgPath)
		purge.Env = r.in.env
		mark := len(r.in.logs.String())
		if err := purge.Start(); err != nil {
			r.t.Fatal(err)
		}
		storeWaitLog(r.t, r.in, mark, "compact: start")
		time.Sleep(time.Duration(r.rng.IntN(30)) * time.Millisecond)
		after = func() { purge.Wait() }
	case crashRandom:
		time.Sleep(time.Duration(50+r.rng.IntN(1000)) * time.Millisecond)
	default:
		r.t.Fatalf("unknown kill moment %q", moment)
	}
	r.in.cmd.Process.Signal(syscall.SIGKILL)
	<-r.in.done
	if after != nil {
		after()
	}
}

// halfData opens an SMTP transaction for subject and sends half of its
// message: no final dot.
func (r *crashRig) halfData(subject string) net.Conn {
	r.t.Helper()
	c, err := net.Dial("tcp", r.in.smtpAddr)
	if err != nil {
		r.t.Fatal(err)
	}
	br := bufio.NewReader(c)
	expect := func(code string) {
		for {
			line, err := br.ReadString('\n')
			if err != nil || !strings.HasPrefix(line, code) {
				r.t.Fatalf("mid-DATA client: got %q (%v), want %s", line, err, code)
			}
			if len(line) > 3 && line[3] == ' ' {
				return
			}
		}
	}
	expect("220")
	cmds := []string{"EHLO cut.test", "MAIL FROM:<me@example.com>"}
	for _, rcpt := range crashTo(subject) {
		cmds = append(cmds, "RCPT TO:<"+rcpt+">")
	}
	for _, cmd := range cmds {
		fmt.Fprintf(c, "%s\r\n", cmd)
		expect("250")
	}
	fmt.Fprintf(c, "DATA\r\n")
	expect("354")
	msg := htmlMessage("me@example.com", crashTo(subject), subject)
	fmt.Fprint(c, msg[:len(msg)/2])
	return c
}

// fillOld puts opens older than the purge cut into the database (serve is
// down) so that the next purge deletes them and compacts the file.
// Purge compacts only when a quarter of the file is free, so the old
// opens are made at least as large as what the file held before (a long
// soak run grows the file with every message).
func (r *crashRig) fillOld() {
	r.t.Helper()
	path := storeDB(r.in)
	var before int64
	if fi, err := os.Stat(path); err == nil {
		before = fi.Size()
	}
	for range 8 {
		prefix := "crash" + string(rune('a'+r.fills/26%26)) + string(rune('a'+r.fills%26))
		storeFill(r.t, path, prefix, 400, 20, time.Now().Add(-100*24*time.Hour))
		r.fills++
		if fi, err := os.Stat(path); err != nil || fi.Size() >= 2*before {
			return
		}
	}
}

// delivered counts the upstream's deliveries per recipient.
func (r *crashRig) delivered() map[string]int {
	got := map[string]int{}
	for _, m := range r.up.Messages() {
		for _, rcpt := range m.To {
			got[strings.ToLower(rcpt)]++
		}
	}
	return got
}

// pending is the number of acknowledged copies not delivered yet.
func (r *crashRig) pending() int {
	got := r.delivered()
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.acked {
		for k := range crashRcpts {
			if got[crashRcpt(s, k)] == 0 {
				n++
			}
		}
	}
	return n
}

// check waits until every acknowledged copy arrived (failing if one never
// does), checks that no cut message arrived, and returns the counts.
func (r *crashRig) check() (acked, copies, duplicates int) {
	r.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for r.pending() > 0 {
		if time.Now().After(deadline) {
			r.t.Fatalf("%d acknowledged copies never reached the upstream", r.pending())
		}
		time.Sleep(100 * time.Millisecond)
	}
	got := r.delivered()
	for _, s := range r.cut {
		for k := range crashRcpts {
			if got[crashRcpt(s, k)] > 0 {
				r.t.Errorf("%s was cut mid-DATA by the kill but was delivered", s)
			}
		}
	}
	return len(r.acked), len(r.acked) * crashRcpts, r.duplicates()
}

// dupShape splits the duplicated copies by message: how many messages had
// every copy delivered again (a re-planned message) and how many only some.
func (r *crashRig) dupShape() (whole, partial int) {
	perMsg := map[string]int{}
	for rcpt, c := range r.delivered() {
		if c > 1 {
			_, subject, _ := strings.Cut(strings.TrimSuffix(rcpt, "@example.org"), "-")
			perMsg[subject]++
		}
	}
	for _, n := range perMsg {
		if n == crashRcpts {
			whole++
		} else {
			partial++
		}
	}
	return whole, partial
}

// duplicates is the number of deliveries beyond the first per recipient.
func (r *crashRig) duplicates() int {
	n := 0
	for _, c := range r.delivered() {
		n += max(c-1, 0)
	}
	return n
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
