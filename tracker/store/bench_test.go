package store

import (
	"fmt"
	"os"
	"pixelrelay/tracker/record"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// benchStore has 1000 copies and no opens; dedup on, no IP limit.
func benchStore(b *testing.B) (*Store, []string) {
	b.Helper()
	s := openTest(b, Options{DedupWindow: time.Hour})
	ids := fill(b, s, "c", 1000, 0, time.Now())
	return s, ids
}

var benchSeq atomic.Int64

func benchHit(ids []string) Hit {
	n := benchSeq.Add(1)
	return Hit{TrackingID: ids[n%int64(len(ids))], IP: fmt.Sprintf("10.%d.%d.%d", n>>16&255, n>>8&255, n&255),
		UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36"}
}

// BenchmarkRecord: 50 concurrent callers, each hit a new stored open,
// waiting for their batch's commit.
func BenchmarkRecord(b *testing.B) {
	s, ids := benchStore(b)
	b.SetParallelism(25)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ok, err := s.Record(benchHit(ids)); err != nil || !ok {
				b.Fatalf("Record = %v, %v", ok, err)
			}
		}
	})
}

// BenchmarkEnqueue: 50 concurrent callers handing hits over without
// waiting (as the pixel handler does); includes the final Flush.
func BenchmarkEnqueue(b *testing.B) {
	s, ids := benchStore(b)
	b.SetParallelism(25)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Enqueue(benchHit(ids)); err != nil {
				b.Fatal(err)
			}
		}
	})
	if err := s.Flush(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if st, _ := s.Stats(); st.Dropped != 0 {
		b.Fatalf("%d hits dropped", st.Dropped)
	}
}

// queryStore holds $PIXELRELAY_BENCH_OPENS opens (default 200k): 100k of
// copy "big", the rest spread over 1000 copies and 50 recipients.
func queryStore(b *testing.B) *Store {
	b.Helper()
	total := 200000
	if v, err := strconv.Atoi(os.Getenv("PIXELRELAY_BENCH_OPENS")); err == nil && v >= 200000 {
		total = v
	}
	s := openTest(b, Options{})
	t0 := time.Now().Add(-24 * time.Hour)
	fill(b, s, "big", 1, 100000, t0)
	fill(b, s, "c", 1000, (total-100000)/1000, t0)
	return s
}

func benchQuery(b *testing.B, q func(s *Store) (int, error), want int) {
	s := queryStore(b)
	var lat []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		n, err := q(s)
		lat = append(lat, time.Since(start))
		if err != nil || n != want {
			b.Fatalf("query: %d results, %v; want %d", n, err, want)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

func BenchmarkOpensByID(b *testing.B) {
	benchQuery(b, func(s *Store) (int, error) {
		o, err := s.Opens(OpenQuery{ID: "big000000", Limit: 100})
		return len(o), err
	}, 100)
}

func BenchmarkOpensByIDLimit500(b *testing.B) {
	benchQuery(b, func(s *Store) (int, error) {
		o, err := s.Opens(OpenQuery{ID: "big000000", Limit: 500})
		return len(o), err
	}, 500)
}

func BenchmarkOpensByRecipient(b *testing.B) {
	benchQuery(b, func(s *Store) (int, error) {
		o, err := s.Opens(OpenQuery{To: "USER7@example.com", Limit: 100})
		return len(o), err
	}, 100)
}

func BenchmarkOpensRecent(b *testing.B) {
	benchQuery(b, func(s *Store) (int, error) {
		o, err := s.Opens(OpenQuery{Limit: 500})
		return len(o), err
	}, 500)
}

func BenchmarkMessagesUnopened(b *testing.B) {
	benchQuery(b, func(s *Store) (int, error) {
		m, err := s.Messages(MessageQuery{Unopened: true})
		return len(m), err
	}, 0)
}

func BenchmarkMessages(b *testing.B) {
	benchQuery(b, func(s *Store) (int, error) {
		m, err := s.Messages(MessageQuery{Limit: 500})
		return len(m), err
	}, 500)
}

// BenchmarkEnqueueOneCopy: as BenchmarkEnqueue, every hit for the same
// copy (one token fetched from many IPs).
func BenchmarkEnqueueOneCopy(b *testing.B) {
	s, ids := benchStore(b)
	b.SetParallelism(25)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Enqueue(benchHit(ids[:1])); err != nil {
				b.Fatal(err)
			}
		}
	})
	if err := s.Flush(); err != nil {
		b.Fatal(err)
	}
}

// listStore holds 100k copies of 1000 recipients, one a minute, with a
// human open on every third: the dashboard's list queries at the size of
// make bench's store.
func listStore(b *testing.B) (*Store, time.Time) {
	b.Helper()
	s := openTest(b, Options{})
	t0 := time.Now().Add(-100000 * time.Minute)
	var cs []record.Copy
	for i := range 100000 {
		cs = append(cs, record.Copy{TrackingID: fmt.Sprintf("l%07d", i), Recipient: fmt.Sprintf("user%d@example.com", i%1000),
			Subject: fmt.Sprintf("Newsletter %d", i), QueuedAt: t0.Add(time.Duration(i) * time.Minute), Status: record.StatusSent})
	}
	if err := s.Add(cs); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 100000; i += 3 {
		if err := s.Enqueue(Hit{TrackingID: fmt.Sprintf("l%07d", i), At: t0.Add(time.Duration(i+5) * time.Minute), IP: "10.1.2.3"}); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		b.Fatal(err)
	}
	return s, t0
}

func benchList(b *testing.B, q ListQuery, want int) {
	s, _ := listStore(b)
	var lat []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		p, err := s.List(q)
		lat = append(lat, time.Since(start))
		if err != nil || len(p.Messages) != want {
			b.Fatalf("list: %d results, %v; want %d", len(p.Messages), err, want)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

func BenchmarkListNewest(b *testing.B) { benchList(b, ListQuery{}, 50) }

func BenchmarkListOpened(b *testing.B) { benchList(b, ListQuery{Filter: FilterOpened}, 50) }

func BenchmarkListUnopened3Days(b *testing.B) {
	benchList(b, ListQuery{Filter: FilterUnopened, QueuedBefore: time.Now().Add(-72 * time.Hour)}, 50)
}

// BenchmarkListTextNoMatch is the worst text search: nothing matches, the
// whole scan budget is spent.
func BenchmarkListTextNoMatch(b *testing.B) { benchList(b, ListQuery{Search: "zebra"}, 0) }

// BenchmarkListRecipientPrefix merges the 111 recipients starting with
// user1 (user1, user10-19, user100-199).
func BenchmarkListRecipientPrefix(b *testing.B) { benchList(b, ListQuery{Search: "user1"}, 50) }

func BenchmarkActivity90Days(b *testing.B) {
	s, t0 := listStore(b)
	b.ReportAllocs()
	for b.Loop() {
		a, err := s.ActivityBetween(t0, t0.Add(90*24*time.Hour))
		if err != nil || len(a) < 1000 {
			b.Fatalf("%d hours, %v", len(a), err)
		}
	}
}
