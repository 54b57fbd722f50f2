package pg_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pixelrelay/internal/pgtest"
	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
	"pixelrelay/tracker/store/pg"
	"pixelrelay/tracker/webhook"
)

// Tests of what only PostgreSQL has: migrations, and several processes
// (here: several Stores, each with its own connections and writer) on one
// database.

func openPG(t *testing.T, url string, opt store.Options) *pg.Store {
	t.Helper()
	if opt.Log == nil {
		opt.Log = quiet
	}
	s, err := pg.Open(context.Background(), url, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestShared(t *testing.T) {
	c := pgtest.Start(t)
	t.Run("MigrationsOnce", func(t *testing.T) { testMigrationsOnce(t, c) })
	t.Run("NewerSchemaRefused", func(t *testing.T) { testNewerSchema(t, c) })
	t.Run("SameOpenEverywhere", func(t *testing.T) { testSameOpenEverywhere(t, c) })
	t.Run("LimitAcrossProcesses", func(t *testing.T) { testLimitAcross(t, c) })
	t.Run("OneWebhookSender", func(t *testing.T) { testOneSender(t, c) })
	t.Run("MoveFromBolt", func(t *testing.T) { testMoveFromBolt(t, c) })
	t.Run("LiveAcrossProcesses", func(t *testing.T) { testLiveAcross(t, c) })
}

// testMigrationsOnce: eight processes open a new database at once, and
// again: each version is applied once.
func testMigrationsOnce(t *testing.T, c *pgtest.Cluster) {
	url := c.CreateDB(t, "migrate_once")
	for round := range 2 {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := pg.Open(context.Background(), url, store.Options{Log: quiet})
				if err == nil {
					err = s.Close()
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
	out, err := c.Psql("migrate_once", "SELECT count(*), max(version) FROM schema_migrations")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%d|%d", pg.SchemaVersion(), pg.SchemaVersion()); out != want {
		t.Fatalf("schema_migrations = %q, want %q", out, want)
	}
}

func testNewerSchema(t *testing.T, c *pgtest.Cluster) {
	url := c.CreateDB(t, "migrate_newer")
	openPG(t, url, store.Options{}).Close()
	if _, err := c.Psql("migrate_newer", "INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future.sql')"); err != nil {
		t.Fatal(err)
	}
	if _, err := pg.Open(context.Background(), url, store.Options{Log: quiet}); err == nil {
		t.Fatal("a database with a newer schema was opened")
	}
}

// testSameOpenEverywhere: the same open fired at three processes at once,
// many times over, is stored once per copy.
func testSameOpenEverywhere(t *testing.T, c *pgtest.Cluster) {
	url := c.CreateDB(t, "same_open")
	var procs []*pg.Store
	for range 3 {
		procs = append(procs, openPG(t, url, store.Options{DedupWindow: time.Hour}))
	}
	const copies = 30
	now := time.Now().UTC()
	var cs []record.Copy
	for i := range copies {
		cs = append(cs, copyOf(fmt.Sprintf("s%02d", i), "bob@example.org", now))
	}
	if err := procs[0].Add(cs); err != nil {
		t.Fatal(err)
	}
	var reported atomic.Int64
	var wg sync.WaitGroup
	for i := range copies {
		for _, p := range procs {
			for k := range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					h := store.Hit{TrackingID: fmt.Sprintf("s%02d", i), At: now.Add(time.Duration(k) * time.Millisecond), IP: "198.51.100.7", UserAgent: "Mail"}
					ok, err := p.Record(h)
					if err != nil {
						t.Error(err)
					}
					if ok {
						reported.Add(1)
					}
				}()
			}
		}
	}
	wg.Wait()
	st, err := procs[1].Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Opens != copies || reported.Load() != copies {
		t.Fatalf("%d opens stored from %d copies × 9 identical fetches", st.Opens, copies)
	}
	for i := range copies {
		m := message(t, procs[2], fmt.Sprintf("s%02d", i))
		if m.OpensTotal != 1 || m.OpensHuman != 1 || m.FirstHumanOpen == nil {
			t.Fatalf("copy %d: %+v", i, m)
		}
	}
}

// testLimitAcross: one IP fetching from three processes at once gets
// exactly ip_hourly_limit opens stored.
func testLimitAcross(t *testing.T, c *pgtest.Cluster) {
	url := c.CreateDB(t, "limit_across")
	const limit = 10
	var procs []*pg.Store
	for range 3 {
		procs = append(procs, openPG(t, url, store.Options{DedupWindow: time.Hour, IPHourlyLimit: limit}))
	}
	now := time.Now().UTC()
	if err := procs[0].Add([]record.Copy{copyOf("lim", "bob@example.org", now)}); err != nil {
		t.Fatal(err)
	}
	var reported atomic.Int64
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := procs[i%3].Record(store.Hit{TrackingID: "lim", At: now, IP: "203.0.113.5", UserAgent: fmt.Sprintf("agent %d", i)})
			if err != nil {
				t.Error(err)
			}
			if ok {
				reported.Add(1)
			}
		}()
	}
	wg.Wait()
	if m := message(t, procs[1], "lim"); m.OpensTotal != limit || reported.Load() != limit {
		t.Fatalf("stored %d (reported %d), want %d", m.OpensTotal, reported.Load(), limit)
	}
}

// testOneSender: of two processes with the same endpoint, one gets the
// events to send; when it closes, the other takes over.
func testOneSender(t *testing.T, c *pgtest.Cluster) {
	url := c.CreateDB(t, "one_sender")
	a := openPG(t, url, store.Options{})
	b := openPG(t, url, store.Options{})
	targets := []webhook.Target{{Name: "crm", URL: "https://crm.example/h"}}
	a.SetWebhooks(targets, nil)
	b.SetWebhooks(targets, nil)
	now := time.Now().UTC()
	if err := b.Add([]record.Copy{copyOf("hk", "bob@example.org", now)}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Record(store.Hit{TrackingID: "hk", At: now, IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	ea, err := a.PendingEvents("crm", 10)
	if err != nil {
		t.Fatal(err)
	}
	eb, err := b.PendingEvents("crm", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ea) != 1 || len(eb) != 0 {
		t.Fatalf("events to a: %d, to b: %d; want 1 and 0", len(ea), len(eb))
	}
	a.Close()
	// The lock is free once a's server process has ended: poll.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if eb, err = b.PendingEvents("crm", 10); err != nil || len(eb) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the other process never took the endpoint over")
		}
	}
	if err != nil {
		t.Fatal(err)
	}
}

// testMoveFromBolt: a bbolt database moved across twice answers the same
// queries on PostgreSQL, and the second move copies nothing.
func testMoveFromBolt(t *testing.T, c *pgtest.Cluster) {
	clk := newClock()
	src, err := store.OpenStore(filepath.Join(t.TempDir(), "pixelrelay.db"), store.Options{Now: clk.Now, Log: quiet, DedupWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	src.SetWebhooks([]webhook.Target{{Name: "crm", URL: "https://crm.example/h"}}, nil)
	t0 := clk.Now()
	var cs []record.Copy
	for i := range 450 {
		cp := copyOf(fmt.Sprintf("mv%03d", i), fmt.Sprintf("user%d@example.org", i%7), t0.Add(time.Duration(i)*time.Second))
		cp.Links = []string{"https://example.org/x"}
		cs = append(cs, cp)
	}
	cs = append(cs, record.Copy{QueueID: "qu", Recipient: "nobody@example.org", UntrackedReason: "excluded", QueuedAt: t0})
	must(t, src.Add(cs))
	for i := range 450 {
		id := fmt.Sprintf("mv%03d", i)
		if i%3 == 0 {
			must(t, src.Update(id, record.StatusSent, "", t0.Add(time.Hour)))
		}
		record1(t, src, store.Hit{TrackingID: id, At: t0.Add(2 * time.Hour), IP: "192.0.2.1", UserAgent: "A", Bot: i%2 == 0})
		if i%10 == 0 {
			if _, err := src.RecordClick(store.ClickHit{TrackingID: id, Link: 1, At: t0.Add(3 * time.Hour), IP: "192.0.2.1", UserAgent: "A"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	dst := openPG(t, c.CreateDB(t, "move"), store.Options{})
	res, err := dst.MoveFrom(context.Background(), src, nil)
	must(t, err)
	if res.Copies != 451 || res.Opens != 450 || res.Clicks != 45 || res.Events != 150 || res.Skipped != 0 {
		t.Fatalf("first move: %+v", res)
	}
	res, err = dst.MoveFrom(context.Background(), src, nil)
	must(t, err)
	if res.Copies != 0 || res.Skipped != 451 {
		t.Fatalf("second move: %+v", res)
	}
	n, _, err := dst.WebhookBacklog("crm")
	must(t, err)
	if want, _, _ := src.WebhookBacklog("crm"); n != want {
		t.Fatalf("webhook backlog %d, want %d", n, want)
	}
	for _, q := range []store.MessageQuery{{Limit: 500}, {To: "user3@example.org"}, {Unopened: true}, {ID: "mv007"}} {
		a, err := src.Messages(q)
		must(t, err)
		b, err := dst.Messages(q)
		must(t, err)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("Messages(%+v) differ:\nbolt %v\npg   %v", q, a, b)
		}
	}
	for _, q := range []store.OpenQuery{{Limit: 500}, {ID: "mv010"}, {To: "user1@example.org"}} {
		a, _ := src.Opens(q)
		b, _ := dst.Opens(q)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("Opens(%+v) differ:\nbolt %v\npg   %v", q, a, b)
		}
		ca, _ := src.Clicks(q)
		cb, _ := dst.Clicks(q)
		if fmt.Sprint(ca) != fmt.Sprint(cb) {
			t.Fatalf("Clicks(%+v) differ:\nbolt %v\npg   %v", q, ca, cb)
		}
	}
}

// testLiveAcross: a subscriber of one process gets the open another
// process stored, and its own process's changes once, not twice.
func testLiveAcross(t *testing.T, c *pgtest.Cluster) {
	url := c.CreateDB(t, "live")
	a := openPG(t, url, store.Options{})
	b := openPG(t, url, store.Options{})
	sub := b.Subscribe()
	defer sub.Close()
	now := time.Now().UTC()
	if err := a.Add([]record.Copy{copyOf("lv", "bob@example.org", now)}); err != nil {
		t.Fatal(err)
	}
	// b's LISTEN may start a moment after Open: record until it hears.
	var got []store.Change
	for i := 0; len(got) == 0; i++ {
		if i == 200 {
			t.Fatal("no change from the other process within 20s")
		}
		if _, err := a.Record(store.Hit{TrackingID: "lv", At: now, IP: "192.0.2.1", UserAgent: fmt.Sprint("agent ", i)}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-sub.C:
			changes, _ := sub.Take()
			for _, ch := range changes {
				if ch.Kind == store.ChangeOpen && ch.TrackingID == "lv" {
					got = append(got, ch)
				}
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
	sub.Take()
	if _, err := b.Record(store.Hit{TrackingID: "lv", At: now, IP: "192.0.2.2", UserAgent: "own"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	n := 0
	for n == 0 {
		select {
		case <-sub.C:
			changes, _ := sub.Take()
			for _, ch := range changes {
				if ch.Kind == store.ChangeOpen {
					n++
				}
			}
		case <-deadline:
			t.Fatal("no change for b's own open")
		}
	}
	time.Sleep(500 * time.Millisecond) // a copy from its own notification would arrive by now
	if changes, _ := sub.Take(); n+len(changes) != 1 {
		t.Fatalf("b's own open reported %d times", n+len(changes))
	}
}
