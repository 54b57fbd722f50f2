package store

import (
	"fmt"
	"os"
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
