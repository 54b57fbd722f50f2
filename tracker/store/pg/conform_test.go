package pg_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pixelrelay/internal/pgtest"
	"pixelrelay/tracker/classify"
	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
	"pixelrelay/tracker/store/pg"
	"pixelrelay/tracker/webhook"
)

// The conformance tests: every case runs against both engines, the
// embedded bbolt file and PostgreSQL, through store.DB only.

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// engine opens a fresh store of one kind.
type engine struct {
	name string
	open func(t *testing.T, opt store.Options) store.DB
}

var dbSeq atomic.Int64

var quiet = slog.New(slog.DiscardHandler)

// engines returns both engines; the PostgreSQL one makes a new database
// on cluster for every store.
func engines(c *pgtest.Cluster) []engine {
	return []engine{
		{"bolt", func(t *testing.T, opt store.Options) store.DB {
			opt.Log = quiet
			s, err := store.OpenStore(filepath.Join(t.TempDir(), "pixelrelay.db"), opt)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}},
		{"postgres", func(t *testing.T, opt store.Options) store.DB {
			opt.Log = quiet
			url := c.CreateDB(t, fmt.Sprintf("conform_%d", dbSeq.Add(1)))
			s, err := pg.Open(context.Background(), url, opt)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}},
	}
}

// conformCases are the cases run against each engine.
var conformCases = []struct {
	name string
	run  func(t *testing.T, open func(store.Options) store.DB)
}{
	{"AddIdempotent", testAddIdempotent},
	{"UpdateStates", testUpdateStates},
	{"DedupLimitFirst", testDedupLimitFirst},
	{"Queries", testQueries},
	{"Purge", testPurge},
	{"Clicks", testClicks},
	{"Webhooks", testWebhooks},
	{"Reclassify", testReclassify},
	{"List", testList},
}

func TestConformance(t *testing.T) {
	c := pgtest.Start(t)
	for _, e := range engines(c) {
		for _, tc := range conformCases {
			t.Run(e.name+"/"+tc.name, func(t *testing.T) {
				tc.run(t, func(opt store.Options) store.DB { return e.open(t, opt) })
			})
		}
	}
}

func copyOf(id, rcpt string, queued time.Time) record.Copy {
	return record.Copy{TrackingID: id, QueueID: "q-" + id, Recipient: rcpt, From: "alice@example.org",
		Subject: "Subject " + id, MessageID: "<m-" + id + "@example.org>", QueuedAt: queued, Account: "work"}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func record1(t *testing.T, s store.DB, h store.Hit) bool {
	t.Helper()
	ok, err := s.Record(h)
	must(t, err)
	return ok
}

func message(t *testing.T, s store.DB, id string) store.Message {
	t.Helper()
	ms, err := s.Messages(store.MessageQuery{ID: id})
	must(t, err)
	if len(ms) != 1 {
		t.Fatalf("Messages(%s) = %d copies", id, len(ms))
	}
	return ms[0]
}

func testAddIdempotent(t *testing.T, open func(store.Options) store.DB) {
	clk := newClock()
	s := open(store.Options{Now: clk.Now})
	c := copyOf("aaaa", "Bob@Example.org", clk.Now())
	must(t, s.Add([]record.Copy{c, {QueueID: "q1", Recipient: "carol@example.org", UntrackedReason: "excluded", QueuedAt: clk.Now()}}))
	c.Subject = "changed"
	must(t, s.Add([]record.Copy{c}))
	got, ok, err := s.Copy("aaaa")
	must(t, err)
	if !ok || got.Subject != "Subject aaaa" || got.Status != record.StatusQueued || got.Account != "work" {
		t.Fatalf("Copy = %+v %v", got, ok)
	}
	if _, ok, _ := s.Copy(record.UntrackedID("q1", "carol@example.org")); ok {
		t.Fatal("Copy found an untracked copy")
	}
	m, ok, err := s.ByKey(record.UntrackedID("q1", "carol@example.org"))
	must(t, err)
	if !ok || m.Tracked || m.UntrackedReason != "excluded" {
		t.Fatalf("ByKey = %+v %v", m, ok)
	}
	st, err := s.Stats()
	must(t, err)
	if st.Copies != 2 || st.Untracked != 1 {
		t.Fatalf("Stats = %+v", st)
	}
	if err := s.Add([]record.Copy{{Recipient: "x@example.org"}}); err == nil {
		t.Fatal("Add took a copy without any id")
	}
}

func testUpdateStates(t *testing.T, open func(store.Options) store.DB) {
	clk := newClock()
	s := open(store.Options{Now: clk.Now})
	must(t, s.Add([]record.Copy{copyOf("bbbb", "bob@example.org", clk.Now())}))
	at := clk.Now().Add(time.Minute)
	must(t, s.Update("bbbb", record.StatusDeferred, "451 try later", at))
	must(t, s.Update("bbbb", record.StatusSent, "", at.Add(time.Minute)))
	m := message(t, s, "bbbb")
	if m.Status != record.StatusSent || m.SentAt == nil || !m.SentAt.Equal(at.Add(time.Minute)) {
		t.Fatalf("message = %+v", m)
	}
	evs, err := s.Events("bbbb")
	must(t, err)
	if len(evs) != 2 || evs[0].Status != record.StatusDeferred || evs[0].Error != "451 try later" || evs[1].Status != record.StatusSent {
		t.Fatalf("events = %+v", evs)
	}
	if err := s.Update("nope", record.StatusSent, "", at); !errors.Is(err, record.ErrNotFound) {
		t.Fatalf("Update of unknown copy: %v", err)
	}
	if err := s.Update("bbbb", "weird", "", at); err == nil {
		t.Fatal("Update took an unknown status")
	}
}

func testDedupLimitFirst(t *testing.T, open func(store.Options) store.DB) {
	clk := newClock()
	s := open(store.Options{Now: clk.Now, DedupWindow: time.Hour, IPHourlyLimit: 2})
	must(t, s.Add([]record.Copy{copyOf("c1", "bob@example.org", clk.Now()), copyOf("c2", "bob@example.org", clk.Now())}))
	at := clk.Now().Add(time.Hour)
	h := store.Hit{TrackingID: "c1", At: at, IP: "192.0.2.1", UserAgent: "Mail", Reason: "human"}
	steps := []struct {
		name string
		hit  store.Hit
		want bool
	}{
		{"machine first", store.Hit{TrackingID: "c1", At: at, IP: "192.0.2.9", UserAgent: "scan", Bot: true, BotType: "scanner"}, true},
		{"human", h, true},
		{"duplicate", store.Hit{TrackingID: "c1", At: at.Add(time.Minute), IP: "192.0.2.1", UserAgent: "Mail"}, false},
		{"other agent", store.Hit{TrackingID: "c1", At: at.Add(2 * time.Minute), IP: "192.0.2.1", UserAgent: "Other"}, true},
		{"after window", store.Hit{TrackingID: "c1", At: at.Add(61 * time.Minute), IP: "192.0.2.1", UserAgent: "Mail"}, true},
		{"over limit", store.Hit{TrackingID: "c2", At: at.Add(61*time.Minute + 30*time.Second), IP: "192.0.2.1", UserAgent: "Mail"}, false},
		{"limit frees", store.Hit{TrackingID: "c2", At: at.Add(125 * time.Minute), IP: "192.0.2.1", UserAgent: "Mail"}, true},
		{"unknown", store.Hit{TrackingID: "zzzz", At: at, IP: "192.0.2.2"}, false},
	}
	for _, st := range steps {
		if got := record1(t, s, st.hit); got != st.want {
			t.Fatalf("%s: stored = %v, want %v", st.name, got, st.want)
		}
	}
	m := message(t, s, "c1")
	if m.OpensTotal != 4 || m.OpensHuman != 3 || m.FirstHumanOpen == nil || !m.FirstHumanOpen.Equal(at) {
		t.Fatalf("c1 = %+v", m)
	}
	opens, err := s.Opens(store.OpenQuery{ID: "c1"})
	must(t, err)
	firsts := 0
	for _, o := range opens {
		if o.First {
			firsts++
			if o.Bot || !o.OpenedAt.Equal(at) {
				t.Fatalf("first open = %+v", o)
			}
		}
	}
	if len(opens) != 4 || firsts != 1 {
		t.Fatalf("opens = %d, first flags %d", len(opens), firsts)
	}
}

func testQueries(t *testing.T, open func(store.Options) store.DB) {
	clk := newClock()
	s := open(store.Options{Now: clk.Now})
	t0 := clk.Now()
	must(t, s.Add([]record.Copy{copyOf("q1", "Bob@Example.org", t0), copyOf("q2", "carol@example.org", t0.Add(time.Minute)),
		copyOf("q3", "bob@example.org", t0.Add(2*time.Minute))}))
	record1(t, s, store.Hit{TrackingID: "q1", At: t0.Add(time.Hour), IP: "192.0.2.1", UserAgent: "A"})
	record1(t, s, store.Hit{TrackingID: "q2", At: t0.Add(2 * time.Hour), IP: "192.0.2.2", UserAgent: "B"})
	record1(t, s, store.Hit{TrackingID: "q3", At: t0.Add(3 * time.Hour), IP: "192.0.2.3", UserAgent: "C", Bot: true, BotType: "prefetch"})
	cases := []struct {
		name string
		q    store.OpenQuery
		want []string
	}{
		{"recent", store.OpenQuery{}, []string{"q3", "q2", "q1"}},
		{"to", store.OpenQuery{To: "BOB@example.org"}, []string{"q3", "q1"}},
		{"id", store.OpenQuery{ID: "q2"}, []string{"q2"}},
		{"id and other to", store.OpenQuery{ID: "q2", To: "bob@example.org"}, nil},
		{"since", store.OpenQuery{Since: t0.Add(150 * time.Minute)}, []string{"q3"}},
		{"limit", store.OpenQuery{Limit: 1}, []string{"q3"}},
	}
	for _, tc := range cases {
		opens, err := s.Opens(tc.q)
		must(t, err)
		var got []string
		for _, o := range opens {
			got = append(got, o.TrackingID)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("Opens %s = %v, want %v", tc.name, got, tc.want)
		}
	}
	ms, err := s.Messages(store.MessageQuery{Unopened: true})
	must(t, err)
	if len(ms) != 1 || ms[0].TrackingID != "q3" {
		t.Fatalf("unopened = %+v", ms)
	}
	ms, err = s.Messages(store.MessageQuery{To: "bob@example.org"})
	must(t, err)
	if len(ms) != 2 || ms[0].TrackingID != "q3" {
		t.Fatalf("to bob = %+v", ms)
	}
	act, err := s.ActivityBetween(t0.Add(-time.Hour), t0.Add(5*time.Hour))
	must(t, err)
	var sum store.Activity
	for _, a := range act {
		sum.Add(a)
	}
	if sum.Queued != 3 || sum.OpensHuman != 2 || sum.OpensMachine != 1 || sum.FirstHuman != 2 {
		t.Fatalf("activity = %+v", sum)
	}
}

func testPurge(t *testing.T, open func(store.Options) store.DB) {
	clk := newClock()
	s := open(store.Options{Now: clk.Now})
	t0 := clk.Now()
	must(t, s.Add([]record.Copy{copyOf("old", "a@example.org", t0), copyOf("wait", "b@example.org", t0)}))
	must(t, s.Update("old", record.StatusSent, "", t0.Add(time.Minute)))
	record1(t, s, store.Hit{TrackingID: "old", At: t0.Add(2 * time.Minute), IP: "192.0.2.1"})
	record1(t, s, store.Hit{TrackingID: "wait", At: t0.Add(2 * time.Minute), IP: "192.0.2.2"})
	record1(t, s, store.Hit{TrackingID: "wait", At: t0.Add(48 * time.Hour), IP: "192.0.2.3"})
	done := 0
	res, err := s.Purge(context.Background(), t0.Add(24*time.Hour), func(n int) { done = n })
	must(t, err)
	if res.DeletedCopies != 1 || res.Deleted != 2 || done != 2 {
		t.Fatalf("purge = %+v (progress %d)", res, done)
	}
	if _, ok, _ := s.Copy("old"); ok {
		t.Fatal("a done copy older than the cutoff survived")
	}
	m := message(t, s, "wait")
	if m.OpensTotal != 2 {
		t.Fatalf("counters went down: %+v", m)
	}
	opens, err := s.Opens(store.OpenQuery{})
	must(t, err)
	if len(opens) != 1 {
		t.Fatalf("opens after purge = %d", len(opens))
	}
}

func testClicks(t *testing.T, open func(store.Options) store.DB) {
	clk := newClock()
	s := open(store.Options{Now: clk.Now, DedupWindow: time.Hour})
	t0 := clk.Now()
	c := copyOf("k1", "bob@example.org", t0)
	c.Links = []string{"https://example.org/a", "https://example.org/b"}
	must(t, s.Add([]record.Copy{c}))
	url, _, found, err := s.LinkOf("k1", 2)
	must(t, err)
	if !found || url != "https://example.org/b" {
		t.Fatalf("LinkOf = %q %v", url, found)
	}
	if _, _, found, _ := s.LinkOf("k1", 3); found {
		t.Fatal("LinkOf found link 3")
	}
	at := t0.Add(time.Hour)
	steps := []struct {
		hit  store.ClickHit
		want bool
	}{
		{store.ClickHit{TrackingID: "k1", Link: 1, At: at, IP: "192.0.2.1", UserAgent: "A", Reason: "human"}, true},
		{store.ClickHit{TrackingID: "k1", Link: 1, At: at.Add(time.Second), IP: "192.0.2.1", UserAgent: "A"}, false},
		{store.ClickHit{TrackingID: "k1", Link: 9, At: at, IP: "192.0.2.1", UserAgent: "A"}, false},
	}
	for i, st := range steps {
		ok, err := s.RecordClick(st.hit)
		must(t, err)
		if ok != st.want {
			t.Fatalf("click %d stored = %v", i, ok)
		}
	}
	cs, err := s.Clicks(store.ClickQuery{ID: "k1"})
	must(t, err)
	if len(cs) != 1 || cs[0].URL != "https://example.org/a" || !cs[0].First {
		t.Fatalf("clicks = %+v", cs)
	}
	m := message(t, s, "k1")
	if m.ClicksTotal != 1 || m.ClicksHuman != 1 {
		t.Fatalf("message = %+v", m)
	}
}

func testWebhooks(t *testing.T, open func(store.Options) store.DB) {
	clk := newClock()
	s := open(store.Options{Now: clk.Now})
	woken := make(chan []string, 10)
	s.SetWebhooks([]webhook.Target{{Name: "crm", URL: "https://crm.example/h"}}, func(n []string) { woken <- n })
	t0 := clk.Now()
	must(t, s.Add([]record.Copy{copyOf("w1", "bob@example.org", t0)}))
	must(t, s.Update("w1", record.StatusSent, "", t0.Add(time.Second)))
	record1(t, s, store.Hit{TrackingID: "w1", At: t0.Add(time.Hour), IP: "192.0.2.1", UserAgent: "A"})
	evs, err := s.PendingEvents("crm", 10)
	must(t, err)
	if len(evs) != 2 || evs[0].Type != webhook.Sent || evs[1].Type != webhook.Opened {
		t.Fatalf("events = %+v", evs)
	}
	n, _, err := s.WebhookBacklog("crm")
	must(t, err)
	if n != 2 {
		t.Fatalf("backlog = %d", n)
	}
	st := webhook.State{URL: "https://crm.example/h", Delivered: 1}
	if _, err := s.RecordWebhook("crm", []uint64{evs[0].Seq}, time.Time{}, st); err != nil {
		t.Fatal(err)
	}
	got, err := s.WebhookState("crm")
	must(t, err)
	if got.Delivered != 1 {
		t.Fatalf("state = %+v", got)
	}
	if n, _ := s.DisableWebhook("crm", got); n != 1 {
		t.Fatalf("disable dropped %d", n)
	}
	select {
	case <-woken:
	default:
		t.Fatal("no wake after a commit with events")
	}
}

func testReclassify(t *testing.T, open func(store.Options) store.DB) {
	clk := newClock()
	s := open(store.Options{Now: clk.Now})
	t0 := clk.Now()
	must(t, s.Add([]record.Copy{copyOf("r1", "bob@example.org", t0)}))
	record1(t, s, store.Hit{TrackingID: "r1", At: t0.Add(time.Hour), IP: "192.0.2.1", UserAgent: "A", Reason: "human"})
	record1(t, s, store.Hit{TrackingID: "r1", At: t0.Add(2 * time.Hour), IP: "192.0.2.2", UserAgent: "B", Reason: "human"})
	allBots := func(_ time.Time, fs []classify.Fetch) []classify.Result {
		out := make([]classify.Result, len(fs))
		for i := range out {
			out[i] = classify.Result{Bot: true, BotType: classify.Scanner, Reason: "test"}
		}
		return out
	}
	res, err := s.Reclassify(context.Background(), time.Time{}, allBots)
	must(t, err)
	if res.Examined != 2 || res.Changed != 2 {
		t.Fatalf("reclassify = %+v", res)
	}
	m := message(t, s, "r1")
	if m.OpensHuman != 0 || m.FirstHumanOpen != nil {
		t.Fatalf("after reclassify: %+v", m)
	}
	opens, _ := s.Opens(store.OpenQuery{ID: "r1"})
	for _, o := range opens {
		if !o.Bot || o.First {
			t.Fatalf("open = %+v", o)
		}
	}
}

func testList(t *testing.T, open func(store.Options) store.DB) {
	clk := newClock()
	s := open(store.Options{Now: clk.Now})
	t0 := clk.Now()
	var cs []record.Copy
	for i := range 5 {
		cs = append(cs, copyOf(fmt.Sprintf("l%d", i), fmt.Sprintf("user%d@example.org", i), t0.Add(time.Duration(i)*time.Minute)))
		cs[i].Links = []string{"https://example.org/a"}
	}
	must(t, s.Add(cs))
	must(t, s.Update("l1", record.StatusFailed, "550 no", t0.Add(time.Hour)))
	for _, h := range []store.ClickHit{
		{TrackingID: "l2", Link: 1, At: t0.Add(time.Hour), IP: "192.0.2.1", UserAgent: "A", Reason: "human"},
		{TrackingID: "l3", Link: 1, At: t0.Add(time.Hour), IP: "192.0.2.2", UserAgent: "B", Bot: true, BotType: "scanner", Reason: "test"},
	} {
		if ok, err := s.RecordClick(h); err != nil || !ok {
			t.Fatalf("click %+v: %v %v", h, ok, err)
		}
	}
	page, err := s.List(store.ListQuery{Filter: store.FilterClicked})
	must(t, err)
	if len(page.Messages) != 1 || page.Messages[0].TrackingID != "l2" {
		t.Fatalf("clicked by a person = %+v", page)
	}
	page, err = s.List(store.ListQuery{Limit: 2})
	must(t, err)
	if len(page.Messages) != 2 || page.Messages[0].TrackingID != "l4" || page.Next == nil {
		t.Fatalf("page 1 = %+v", page)
	}
	page, err = s.List(store.ListQuery{Limit: 2, Before: page.Next})
	must(t, err)
	if len(page.Messages) != 2 || page.Messages[0].TrackingID != "l2" {
		t.Fatalf("page 2 = %+v", page)
	}
	page, err = s.List(store.ListQuery{Filter: store.FilterFailed})
	must(t, err)
	if len(page.Messages) != 1 || page.Messages[0].TrackingID != "l1" {
		t.Fatalf("failed = %+v", page)
	}
	page, err = s.List(store.ListQuery{Search: "user3"})
	must(t, err)
	if len(page.Messages) != 1 || page.SearchIn != store.SearchRecipient {
		t.Fatalf("search = %+v", page)
	}
}
