package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"pixelrelay/tracker/record"
)

// fill adds copies ids prefix0..prefixN-1 with perCopy opens each, opened
// from at on, one second apart, through the real batching writer.
func fill(t testing.TB, s *Store, prefix string, copies, perCopy int, at time.Time) []string {
	t.Helper()
	var cs []record.Copy
	var ids []string
	for i := 0; i < copies; i++ {
		id := fmt.Sprintf("%s%06d", prefix, i)
		ids = append(ids, id)
		cs = append(cs, record.Copy{TrackingID: id, Recipient: fmt.Sprintf("user%d@example.com", i%50), Subject: "s", QueuedAt: at})
	}
	if err := s.Add(cs); err != nil {
		t.Fatal(err)
	}
	for j := 0; j < perCopy; j++ {
		for i, id := range ids {
			h := Hit{TrackingID: id, At: at.Add(time.Duration(j*copies+i) * time.Millisecond), IP: fmt.Sprintf("10.%d.%d.%d", j%200, i/250, i%250), UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"}
			if err := s.Enqueue(h); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// bucketLen counts the keys of a bucket.
func bucketLen(t testing.TB, s *Store, name []byte) int {
	t.Helper()
	n := 0
	err := s.view(func(tx *bolt.Tx) error {
		n = tx.Bucket(name).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPurgeWithConcurrentRecords(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now, DedupWindow: time.Hour, IPHourlyLimit: 0})
	old := clk.Now().Add(-100 * 24 * time.Hour)
	total := purgeTestCopies * 100
	oldIDs := fill(t, s, "old", purgeTestCopies, 100, old)
	addCopy(t, s, "new", "new@example.com", clk.Now())
	if st := mustStats(t, s); st.Opens != total {
		t.Fatalf("filled %d opens, want %d", st.Opens, total)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var stored, attempts atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				id := "new"
				if i%2 == 1 {
					id = oldIDs[(g*97+i)%len(oldIDs)] // an old copy, opened again now
				}
				ok, err := s.Record(Hit{TrackingID: id, At: clk.Now().Add(time.Duration(i) * time.Millisecond), IP: fmt.Sprintf("172.16.%d.%d", g, i%250), UserAgent: fmt.Sprint("UA", i)})
				if err != nil {
					t.Error(err)
					return
				}
				attempts.Add(1)
				if ok {
					stored.Add(1)
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // readers keep querying during the purge and the swap
		defer wg.Done()
		for ctx.Err() == nil {
			if _, err := s.Opens(OpenQuery{Limit: 50}); err != nil {
				t.Error(err)
				return
			}
			if _, err := s.Messages(MessageQuery{Limit: 50}); err != nil {
				t.Error(err)
				return
			}
		}
	}()

	var last atomic.Int64
	res, err := s.Purge(context.Background(), clk.Now().Add(-90*24*time.Hour), func(done int) {
		if int64(done) <= last.Load() {
			t.Errorf("progress went from %d to %d", last.Load(), done)
		}
		last.Store(int64(done))
	})
	time.Sleep(50 * time.Millisecond) // some hits after the swap, too
	cancel()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("purge: %+v; concurrent hits %d, stored %d", res, attempts.Load(), stored.Load())
	if res.Deleted != total || last.Load() != int64(total) {
		t.Errorf("deleted %d (progress %d), want %d", res.Deleted, last.Load(), total)
	}
	if !res.Compacted || res.SizeAfter >= res.SizeBefore/2 {
		t.Errorf("size %d -> %d, compacted %v: want it at least halved", res.SizeBefore, res.SizeAfter, res.Compacted)
	}
	if fi, err := os.Stat(s.Path()); err != nil || fi.Size() >= res.SizeBefore/2 {
		t.Errorf("file size now %v (%v); was %d", fi.Size(), err, res.SizeBefore)
	}
	if stored.Load() == 0 {
		t.Fatal("no concurrent hit was stored")
	}
	want := int(stored.Load())
	st := mustStats(t, s)
	if st.Opens != want || st.OpensHuman != want {
		t.Errorf("Stats opens %d/%d, want %d", st.Opens, st.OpensHuman, want)
	}
	for _, b := range [][]byte{bOpens, bOpensByTime, bOpensByRcpt} {
		if n := bucketLen(t, s, b); n != want {
			t.Errorf("bucket %s has %d keys, want %d (no concurrent open lost, no old one left)", b, n, want)
		}
	}
	// Copies and their historical counters stay.
	msgs, err := s.Messages(MessageQuery{To: "user0@example.com", Limit: 500})
	if err != nil || len(msgs) != purgeTestCopies/50 {
		t.Fatalf("messages of user0: %d, %v", len(msgs), err)
	}
	for _, m := range msgs {
		if m.OpensTotal < 100 || m.FirstHumanOpen == nil {
			t.Errorf("copy %s lost its counters: %+v", m.TrackingID, m)
		}
	}
	// The store still works after the swap.
	if !mustRecord(t, s, Hit{TrackingID: "new", At: clk.Now().Add(time.Hour), IP: "192.0.2.200"}) {
		t.Error("record after purge failed")
	}
}

func TestLimiterStateExpiresAndSurvivesRestart(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "db")
	opt := Options{Now: clk.Now, DedupWindow: time.Hour, IPHourlyLimit: 10}
	s, err := OpenStore(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	addCopy(t, s, "a", "bob@example.com", clk.Now())
	for i := 0; i < 30; i++ {
		mustRecord(t, s, Hit{TrackingID: "a", IP: fmt.Sprint("10.0.0.", i), UserAgent: "UA"})
		clk.Advance(time.Minute)
	}
	// One IP at its limit.
	for i := 0; i < 10; i++ {
		mustRecord(t, s, Hit{TrackingID: "a", IP: "192.0.2.1", UserAgent: fmt.Sprint("UA", i)})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	clk.Advance(40 * time.Minute) // the first 10 IPs' opens are now older than an hour
	if s, err = OpenStore(path, opt); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := len(s.lim.dedup); n != 20+10 {
		t.Errorf("rebuilt %d dedup entries, want 30", n)
	}
	steps := []struct {
		name string
		hit  Hit
		want bool
	}{
		{"IP still at its limit after restart", Hit{TrackingID: "a", IP: "192.0.2.1", UserAgent: "new"}, false},
		{"duplicate within the window after restart", Hit{TrackingID: "a", IP: "10.0.0.29", UserAgent: "UA"}, false},
		{"dedup entry older than the window", Hit{TrackingID: "a", IP: "10.0.0.0", UserAgent: "UA"}, true},
	}
	for _, st := range steps {
		if got := mustRecord(t, s, st.hit); got != st.want {
			t.Errorf("%s: stored = %v, want %v", st.name, got, st.want)
		}
	}
	clk.Advance(2 * time.Hour)
	mustRecord(t, s, Hit{TrackingID: "a", IP: "192.0.2.1", UserAgent: "later"}) // sweeps first
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(s.lim.dedup) != 1 || len(s.lim.ips) != 1 {
		t.Errorf("after sweep: %d dedup entries, %d IPs; want 1 and 1", len(s.lim.dedup), len(s.lim.ips))
	}
}

func TestPurgeCancelled(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	fill(t, s, "o", 100, 10, clk.Now().Add(-100*24*time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Purge(ctx, clk.Now(), nil); err == nil {
		t.Fatal("cancelled purge returned no error")
	}
	if st := mustStats(t, s); st.Opens != 1000 {
		t.Errorf("cancelled purge deleted opens: %d left", st.Opens)
	}
}

func TestCompactHoldsHitsInMemory(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now, BatchDelay: -1})
	ids := fill(t, s, "c", 50, 40, clk.Now())
	const extra = 3000
	errs := make(chan error, 1)
	go func() {
		for i := 0; i < extra; i++ {
			if err := s.Enqueue(Hit{TrackingID: ids[i%len(ids)], At: clk.Now().Add(time.Duration(i) * time.Millisecond), IP: "10.9.9.9"}); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	for i := 0; i < 3; i++ {
		if err := s.compact(); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	want := 50*40 + extra
	if st := mustStats(t, s); st.Opens != want || st.Dropped != 0 {
		t.Errorf("Stats = %+v, want %d opens, none dropped", st, want)
	}
	if n := bucketLen(t, s, bOpens); n != want {
		t.Errorf("%d opens stored, want %d", n, want)
	}
}
