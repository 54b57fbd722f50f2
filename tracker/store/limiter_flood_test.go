package store

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"
)

// limiterFlood feeds n hits through the limiter the way hitTx.apply does
// (dedup check, IP check, note, commit per 1000) and returns how many would
// have been stored. ipOf and idOf name each hit's client and copy.
func limiterFlood(l *limiter, n int, at time.Time, dedup time.Duration, limit int, ipOf, idOf func(int) string) int {
	stored := 0
	slot := minute(at)
	for i := 0; i < n; i++ {
		ip, id := ipOf(i), idOf(i)
		k := keyOf(id, ip, "UA")
		if dedup > 0 && l.duplicate(k, at, dedup) {
			continue
		}
		if limit > 0 && l.ipCount(ip, slot) >= limit {
			continue
		}
		l.note(k, ip, ts(at), slot)
		stored++
		if i%1000 == 999 {
			l.commit()
		}
	}
	l.commit()
	return stored
}

func floodIP(i int) string {
	return fmt.Sprintf("%d.%d.%d.%d", 1+i>>24&0x7f, i>>16&0xff, i>>8&0xff, i&0xff)
}

// TestLimiterMemoryBound: a million distinct IPs (and a million distinct
// copies from one IP) never grow the limiter's tables past their bounds;
// the hits past the bound are refused (fail closed), and the tables' heap
// stays under what the bounds promise.
func TestLimiterMemoryBound(t *testing.T) {
	flood := defaultMaxDedup + 40_000 // past both bounds
	if os.Getenv("PIXELRELAY_SOAK") == "1" {
		flood = 1 << 20 // 1,048,576 distinct clients
	}
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	rows := []struct {
		name         string
		dedup        time.Duration
		limit        int
		ipOf, idOf   func(int) string
		wantStored   int
		wantDedupLen int
		wantIPs      int
	}{
		{"distinct IPs, one copy, dedup and limit on", time.Hour, 100, floodIP, func(int) string { return "copy" },
			defaultMaxIPs, defaultMaxIPs, defaultMaxIPs},
		{"distinct IPs, limit off", time.Hour, 0, floodIP, func(int) string { return "copy" },
			min(flood, defaultMaxDedup), min(flood, defaultMaxDedup), defaultMaxIPs},
		{"distinct copies from one IP, limit off", time.Hour, 0, func(int) string { return "192.0.2.1" }, func(i int) string { return fmt.Sprint("id", i) },
			min(flood, defaultMaxDedup), min(flood, defaultMaxDedup), 1},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			l := newLimiter()
			stored := limiterFlood(l, flood, at, row.dedup, row.limit, row.ipOf, row.idOf)
			runtime.GC()
			runtime.ReadMemStats(&after)
			if stored != row.wantStored || len(l.dedup) != row.wantDedupLen || len(l.ips) != row.wantIPs {
				t.Errorf("%d hits: %d stored, %d dedup entries, %d IPs; want %d, %d, %d",
					flood, stored, len(l.dedup), len(l.ips), row.wantStored, row.wantDedupLen, row.wantIPs)
			}
			if len(l.dedup) > l.maxDedup || len(l.ips) > l.maxIPs {
				t.Errorf("tables past their bounds: %d/%d dedup, %d/%d IPs", len(l.dedup), l.maxDedup, len(l.ips), l.maxIPs)
			}
			if l.refused != int64(flood-stored) {
				t.Errorf("refused %d, want %d", l.refused, flood-stored)
			}
			heap := int64(after.HeapInuse) - int64(before.HeapInuse)
			// 60 bytes a dedup entry and 200 an IP is the documented
			// budget with room for map growth.
			if budget := int64(len(l.dedup))*60 + int64(len(l.ips))*200 + 8<<20; heap > budget {
				t.Errorf("limiter heap %d bytes, over the %d byte budget", heap, budget)
			}
			t.Logf("%d hits: %d stored, %d dedup entries, %d IPs, %d refused, heap +%.1f MB",
				flood, stored, len(l.dedup), len(l.ips), l.refused, float64(heap)/(1<<20))
			runtime.KeepAlive(l)
		})
	}
}

// TestLimiterCapacityIsReleasedBySweep: once the entries of a flood expire,
// a full table takes new clients again.
func TestLimiterCapacityIsReleasedBySweep(t *testing.T) {
	l := newLimiter()
	l.maxDedup, l.maxIPs = 100, 50
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	one := func(int) string { return "copy" }
	if got := limiterFlood(l, 500, at, time.Hour, 10, floodIP, one); got != 50 {
		t.Fatalf("flood stored %d, want 50 (the IP table's bound)", got)
	}
	if got := limiterFlood(l, 1, at.Add(time.Minute), time.Hour, 10, func(int) string { return "203.0.113.9" }, one); got != 0 {
		t.Fatalf("a new IP while full: stored %d, want 0", got)
	}
	l.sweep(at.Add(61*time.Minute), time.Hour)
	if len(l.dedup) != 0 || len(l.ips) != 0 {
		t.Fatalf("after sweep: %d dedup, %d IPs", len(l.dedup), len(l.ips))
	}
	if got := limiterFlood(l, 1, at.Add(61*time.Minute), time.Hour, 10, func(int) string { return "203.0.113.9" }, one); got != 1 {
		t.Errorf("a new IP after the sweep: stored %d, want 1", got)
	}
}

// TestStoreFloodStaysWithinLimits: through the real store and bbolt file,
// a flood from more distinct IPs than the limiter holds, plus repeated
// fetches, stores no duplicate, no IP over its limit, and no more opens
// than the limiter can account for; rows are counted in the database.
func TestStoreFloodStaysWithinLimits(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now, DedupWindow: time.Hour, IPHourlyLimit: 3, BatchDelay: -1})
	s.lim.maxDedup, s.lim.maxIPs = 40, 25 // set before the writer sees a hit
	for i := 0; i < 5; i++ {
		addCopy(t, s, fmt.Sprint("c", i), fmt.Sprintf("r%d@example.com", i), clk.Now())
	}
	ips := 60
	if os.Getenv("PIXELRELAY_SOAK") == "1" {
		ips = 2000
	}
	for i := 0; i < ips; i++ {
		for c := 0; c < 5; c++ { // 5 copies: 3 stored per IP at most
			for rep := 0; rep < 2; rep++ { // the repeat is a duplicate
				h := Hit{TrackingID: fmt.Sprint("c", c), At: clk.Now(), IP: floodIP(i), UserAgent: "UA"}
				if err := s.Enqueue(h); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	rows := bucketLen(t, s, bOpens)
	if st := mustStats(t, s); st.Opens != rows {
		t.Errorf("stats say %d opens, bucket has %d", st.Opens, rows)
	}
	// 25 IPs fit; each stores 3 (its limit); the dedup table (40) bounds
	// the total first: 40 opens.
	if rows != 40 {
		t.Errorf("%d opens stored from %d IPs, want 40", rows, ips)
	}
	perIP := map[string]int{}
	seen := map[string]bool{}
	opens, err := s.Opens(OpenQuery{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range opens {
		perIP[o.IP]++
		k := o.TrackingID + "|" + o.IP + "|" + o.UserAgent
		if seen[k] {
			t.Errorf("duplicate stored: %s", k)
		}
		seen[k] = true
	}
	for ip, n := range perIP {
		if n > 3 {
			t.Errorf("IP %s: %d opens stored, limit 3", ip, n)
		}
	}
	if len(perIP) > 25 {
		t.Errorf("%d IPs stored opens, the table holds 25", len(perIP))
	}
	s.Flush()
	if len(s.lim.dedup) > 40 || len(s.lim.ips) > 25 {
		t.Errorf("limiter grew past its bounds: %d dedup, %d IPs", len(s.lim.dedup), len(s.lim.ips))
	}
}
