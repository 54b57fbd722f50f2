package webhook_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
	"pixelrelay/tracker/webhook"
	"pixelrelay/tracker/webhook/webhooktest"
)

// harness is a real store and a Manager delivering to real receivers.
type harness struct {
	t    *testing.T
	path string
	st   *store.Store
	m    *webhook.Manager
	opt  webhook.Options
	mu   sync.Mutex
	n    int // copies made
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newHarness(t *testing.T, opt webhook.Options) *harness {
	t.Helper()
	h := &harness{t: t, path: filepath.Join(t.TempDir(), "pixelrelay.db"), opt: opt}
	h.open()
	t.Cleanup(h.close)
	return h
}

func (h *harness) open() {
	h.t.Helper()
	st, err := store.OpenStore(h.path, store.Options{Log: quiet})
	if err != nil {
		h.t.Fatal(err)
	}
	h.st = st
	opt := h.opt
	opt.Outbox = st
	if opt.Log == nil {
		opt.Log = quiet
	}
	h.m = webhook.New(opt)
}

func (h *harness) close() {
	if h.m != nil {
		h.m.Close()
		h.st.Close()
		h.m = nil
	}
}

// endpoint is a Config for a receiver.
func endpoint(t *testing.T, name string, rcv *webhooktest.Receiver) webhook.Config {
	return webhook.Config{Endpoint: *testEndpoint(t, rcv.URL()), HumanOnly: true}
}

func named(c webhook.Config, name string) webhook.Config {
	c.Name = name
	return c
}

// send makes n copies and marks them sent: n message.sent events.
func (h *harness) send(n int) []string {
	h.t.Helper()
	var ids []string
	for range n {
		h.mu.Lock()
		h.n++
		id := fmt.Sprintf("copy%04d", h.n)
		h.mu.Unlock()
		err := h.st.Add([]record.Copy{{TrackingID: id, Recipient: id + "@example.org", From: "me@example.com", Subject: "s"}})
		if err == nil {
			err = h.st.Update(id, record.StatusSent, "", time.Now())
		}
		if err != nil {
			h.t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// recipients returns the recipients of deliveries in order, and how many
// times each webhook-id was accepted.
func recipients(t *testing.T, ds []webhooktest.Delivery) ([]string, map[string]int) {
	t.Helper()
	var out []string
	count := map[string]int{}
	for _, d := range ds {
		count[d.ID]++
		if count[d.ID] > 1 {
			continue
		}
		var m struct {
			Recipient string `json:"recipient"`
		}
		if err := jsonUnmarshal(d.Data, &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m.Recipient)
	}
	return out, count
}

func status(t *testing.T, m *webhook.Manager, name string) webhook.Status {
	t.Helper()
	sts, err := m.Status(func(s string) string { return s })
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sts {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no status for %s in %+v", name, sts)
	return webhook.Status{}
}

func waitStatus(t *testing.T, m *webhook.Manager, name string, within time.Duration, cond func(webhook.Status) bool) webhook.Status {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		s := status(t, m, name)
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("status of %s after %s: %+v", name, within, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDeliveryThroughOutages is the receiver's life: down for a while,
// then 500s, then 2xx, then 410 Gone, then a test ping brings it back.
// Every event arrives, in order, accepted exactly once (no crash here),
// with the webhook-id it had on its failed attempts.
func TestDeliveryThroughOutages(t *testing.T) {
	rcv := webhooktest.Start(t, testSecret)
	h := newHarness(t, webhook.Options{Schedule: []time.Duration{30 * time.Millisecond, 60 * time.Millisecond, 120 * time.Millisecond}})
	h.m.Apply([]webhook.Config{named(endpoint(t, "crm", rcv), "crm")})

	rcv.Down()
	want := h.send(10)
	s := waitStatus(t, h.m, "crm", 10*time.Second, func(s webhook.Status) bool { return s.Failures >= 3 })
	if s.State != webhook.StateRetrying || s.Backlog != 10 || s.NextAttempt == nil || s.LastError == "" || s.LastSuccess != nil {
		t.Fatalf("while down: %+v", s)
	}

	rcv.SetAnswer(500)
	rcv.Up(t)
	rcv.WaitFor(t, 10*time.Second, func(all []webhooktest.Delivery) bool { return len(all) >= 3 }, "three attempts answered 500")
	want = append(want, h.send(5)...)
	rcv.SetAnswer(200)
	got := rcv.WaitAccepted(t, 15, 10*time.Second)

	order, count := recipients(t, got)
	wantRcpts := make([]string, len(want))
	for i, id := range want {
		wantRcpts[i] = id + "@example.org"
	}
	if !slices.Equal(order, wantRcpts) {
		t.Fatalf("arrival order\n%v\nwant\n%v", order, wantRcpts)
	}
	for id, n := range count {
		if n != 1 {
			t.Errorf("webhook-id %s accepted %d times", id, n)
		}
	}
	all := rcv.All()
	if all[0].Answer != 500 || all[0].ID != got[0].ID {
		t.Errorf("the first event's failed attempt had id %s (answer %d), its accepted one %s", all[0].ID, all[0].Answer, got[0].ID)
	}
	for _, d := range all {
		if d.Type != webhook.Sent {
			t.Errorf("event type %q", d.Type)
		}
	}
	s = waitStatus(t, h.m, "crm", 5*time.Second, func(s webhook.Status) bool { return s.Backlog == 0 })
	if s.State != webhook.StateOK || s.Delivered != 15 || s.Failures != 0 || s.LastSuccess == nil {
		t.Fatalf("after recovery: %+v", s)
	}

	// 410: the endpoint is disabled and keeps nothing. (The three events
	// wait while it is down, so all three are there when the 410 comes.)
	rcv.Down()
	h.send(3)
	waitStatus(t, h.m, "crm", 10*time.Second, func(s webhook.Status) bool { return s.Failures >= 1 && s.Backlog == 3 })
	rcv.SetAnswer(410)
	rcv.Up(t)
	s = waitStatus(t, h.m, "crm", 10*time.Second, func(s webhook.Status) bool {
		return s.State == webhook.StateDisabled && s.Backlog == 0
	})
	if s.Backlog != 0 || s.Dropped != 3 || s.DisabledReason == "" {
		t.Fatalf("after 410: %+v", s)
	}
	h.send(2)
	if s := status(t, h.m, "crm"); s.Backlog != 0 {
		t.Fatalf("a disabled endpoint keeps events: %+v", s)
	}
	n := len(rcv.All())
	time.Sleep(200 * time.Millisecond)
	if len(rcv.All()) != n {
		t.Fatal("a disabled endpoint is still being called")
	}

	// A test ping that gets a 2xx enables it again.
	rcv.SetAnswer(204)
	res, err := h.m.Test(context.Background(), "crm", func(s string) string { return s })
	if err != nil || len(res) != 1 || !res[0].OK || res[0].Status != 204 || !res[0].Resumed {
		t.Fatalf("Test = %+v, %v", res, err)
	}
	last := rcv.All()[len(rcv.All())-1]
	if last.Type != webhook.Ping || last.ID != res[0].WebhookID {
		t.Errorf("ping arrived as %+v", last)
	}
	waitStatus(t, h.m, "crm", 5*time.Second, func(s webhook.Status) bool { return s.State == webhook.StateOK })
	h.send(2)
	rcv.WaitAccepted(t, 15+1+2, 10*time.Second)
	if n := rcv.BadSignatures(); n != 0 {
		t.Fatalf("%d bad signatures", n)
	}
}

// TestRestartLosesNone: events made while the endpoint is down survive a
// restart of store and manager and are delivered afterwards.
func TestRestartLosesNone(t *testing.T) {
	rcv := webhooktest.Start(t, testSecret)
	rcv.Down()
	h := newHarness(t, webhook.Options{Schedule: []time.Duration{20 * time.Millisecond}})
	ep := named(endpoint(t, "crm", rcv), "crm")
	h.m.Apply([]webhook.Config{ep})
	want := h.send(20)
	waitStatus(t, h.m, "crm", 10*time.Second, func(s webhook.Status) bool { return s.Failures >= 2 })
	h.close()

	h.open()
	h.m.Apply([]webhook.Config{ep})
	if s := status(t, h.m, "crm"); s.Backlog != 20 || s.State != webhook.StateRetrying {
		t.Fatalf("after restart: %+v", s)
	}
	rcv.Up(t)
	got := rcv.WaitAccepted(t, 20, 10*time.Second)
	order, _ := recipients(t, got)
	if len(order) != len(want) || order[0] != want[0]+"@example.org" || order[19] != want[19]+"@example.org" {
		t.Fatalf("delivered %v", order)
	}
}

// TestExpiry: an endpoint that never answers 2xx loses events only after
// MaxAge, counted as expired.
func TestExpiry(t *testing.T) {
	rcv := webhooktest.Start(t, testSecret)
	rcv.SetAnswer(503)
	h := newHarness(t, webhook.Options{Schedule: []time.Duration{40 * time.Millisecond}, MaxAge: 1500 * time.Millisecond})
	h.m.Apply([]webhook.Config{named(endpoint(t, "crm", rcv), "crm")})
	start := time.Now()
	h.send(4)
	rcv.WaitFor(t, 5*time.Second, func(all []webhooktest.Delivery) bool { return len(all) >= 3 }, "three attempts")
	if s := status(t, h.m, "crm"); time.Since(start) < time.Second && (s.Backlog != 4 || s.Expired != 0) {
		t.Fatalf("before MaxAge: %+v", s)
	}
	s := waitStatus(t, h.m, "crm", 10*time.Second, func(s webhook.Status) bool { return s.Backlog == 0 })
	if s.Expired != 4 || s.Delivered != 0 {
		t.Fatalf("after MaxAge: %+v", s)
	}
	// The head was retried under one webhook-id until it expired.
	if a := rcv.All(); len(a) < 3 || a[0].ID != a[1].ID || a[1].ID != a[2].ID {
		t.Fatalf("%d attempts for %d ids", len(a), webhooktest.Distinct(a))
	}
}

// TestSlowEndpointDoesNotSlowTheStore: while an attempt hangs, opens and
// delivery states are committed as fast as ever.
func TestSlowEndpointDoesNotSlowTheStore(t *testing.T) {
	rcv := webhooktest.Start(t, testSecret)
	rcv.SetDelay(6 * time.Second)
	h := newHarness(t, webhook.Options{})
	h.m.Apply([]webhook.Config{named(endpoint(t, "slow", rcv), "slow")})
	h.send(1)
	rcv.WaitFor(t, 5*time.Second, func(all []webhooktest.Delivery) bool { return len(all) > 0 }, "the first attempt")
	var worst time.Duration
	for range 30 {
		start := time.Now()
		id := h.send(1)[0]
		if _, err := h.st.Record(store.Hit{TrackingID: id, IP: "192.0.2.1", UserAgent: "x"}); err != nil {
			t.Fatal(err)
		}
		worst = max(worst, time.Since(start))
	}
	if worst > 3*time.Second { // half the endpoint's delay: no commit waited for it
		t.Fatalf("a commit took %s while the endpoint was slow", worst)
	}
	if n := rcv.MaxInFlight(); n != 1 {
		t.Fatalf("%d attempts in flight at once, want 1", n)
	}
	t.Logf("slowest Add+Update+Record while an attempt hung: %s", worst)
}

// TestApply: a reload adds, changes and removes endpoints; events follow
// the config, and a removed endpoint's events wait.
func TestApply(t *testing.T) {
	a := webhooktest.Start(t, testSecret)
	b := webhooktest.Start(t, testSecret)
	b2 := webhooktest.Start(t, testSecret)
	h := newHarness(t, webhook.Options{Schedule: []time.Duration{20 * time.Millisecond}})
	ea, eb := named(endpoint(t, "a", a), "a"), named(endpoint(t, "b", b), "b")
	eb.Events = []string{webhook.Bounced}
	h.m.Apply([]webhook.Config{ea, eb})
	h.send(2)
	a.WaitAccepted(t, 2, 5*time.Second)

	// b now takes sent events too, at a new URL; a is removed.
	eb.Events = nil
	eb.URL = b2.URL()
	h.m.Apply([]webhook.Config{eb})
	h.send(3)
	b2.WaitAccepted(t, 3, 5*time.Second)
	if n := len(b.All()); n != 0 {
		t.Errorf("the old URL of b got %d requests", n)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(a.All()); n != 2 {
		t.Errorf("removed endpoint a got %d requests, want 2", n)
	}
	waitStatus(t, h.m, "b", 5*time.Second, func(s webhook.Status) bool { return s.Delivered == 3 })
	sts, _ := h.m.Status(func(s string) string { return s })
	if len(sts) != 1 || sts[0].Name != "b" || len(sts[0].Events) != len(webhook.Types) {
		t.Errorf("status after reload: %+v", sts)
	}
	if _, err := h.m.Test(context.Background(), "a", func(s string) string { return s }); err == nil {
		t.Error("Test of a removed endpoint did not fail")
	}
}

// TestConcurrentEndpoints: one endpoint down does not hold up another.
func TestConcurrentEndpoints(t *testing.T) {
	up := webhooktest.Start(t, testSecret)
	down := webhooktest.Start(t, testSecret)
	down.SetDelay(20 * time.Second)
	h := newHarness(t, webhook.Options{})
	h.m.Apply([]webhook.Config{named(endpoint(t, "down", down), "down"), named(endpoint(t, "up", up), "up")})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); h.send(10) }()
	}
	wg.Wait()
	up.WaitAccepted(t, 40, 15*time.Second) // long before down's first answer
}
