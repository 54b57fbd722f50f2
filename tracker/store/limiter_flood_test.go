package store

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
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

// TestLimiterMemoryBound: over a million distinct IPs (and as many distinct
// copies from one IP) never grow the limiter's tables past their bounds;
// the hits past the bound are refused (fail closed), and the tables' heap
// stays under what the bounds promise.
func TestLimiterMemoryBound(t *testing.T) {
	flood := defaultMaxDedup + 40_000 // past both bounds
	if os.Getenv("PIXELRELAY_SOAK") == "1" {
		flood = 1 << 21 // 2,097,152 distinct clients
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

// limiterLog collects the store's warnings (the writer goroutine logs).
type limiterLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *limiterLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *limiterLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *limiterLog) WithGroup(string) slog.Handler            { return l }
func (l *limiterLog) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		l.mu.Lock()
		l.msgs = append(l.msgs, r.Message)
		l.mu.Unlock()
	}
	return nil
}

// take returns the warnings logged since the last take.
func (l *limiterLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.msgs
	l.msgs = nil
	return m
}

// TestLimiterRefusalsReported: opens the full limiter refuses are counted
// in Stats().LimiterRefused and warned about at most once a minute, with
// the number refused since the last warning; a failed batch's hits count
// as dropped, not refused.
func TestLimiterRefusalsReported(t *testing.T) {
	clk := newClock()
	logs := &limiterLog{}
	s := openTest(t, Options{Now: clk.Now, DedupWindow: time.Hour, IPHourlyLimit: 10, BatchDelay: -1, Log: slog.New(logs)})
	s.lim.maxDedup, s.lim.maxIPs = 1000, 2 // set before the writer sees a hit
	addCopy(t, s, "c1", "r1@example.com", clk.Now())
	next := 0 // distinct client addresses
	// The writer may commit a step's hits in one batch or several (a busy
	// machine), so a warning says how many were refused since the last one:
	// 1 to 3 at the first, the rest at the next. Their sum is exact.
	steps := []struct {
		name        string
		advance     time.Duration
		clients     int // new addresses, one hit each
		wantStored  int
		wantRefused int64
		warn        bool
		since       string // the warning's " in the last ..." part
	}{
		{"room for two addresses", 0, 2, 2, 0, false, ""},
		{"table full: warned at once", 0, 3, 0, 3, true, ""},
		{"within the minute: counted, not warned", 30 * time.Second, 4, 0, 7, false, ""},
		{"a minute after the warning", 31 * time.Second, 1, 0, 8, true, " in the last 1m1s"},
		{"quiet: no refusal, no warning", 2 * time.Minute, 0, 0, 8, false, ""},
		{"one more, later", 0, 1, 0, 9, true, " in the last 2m0s"},
	}
	var warned int64 // refusals the warnings have told of
	for _, st := range steps {
		clk.Advance(st.advance)
		before := mustStats(t, s).Opens
		for i := 0; i < st.clients; i++ {
			if err := s.Enqueue(Hit{TrackingID: "c1", IP: floodIP(next), UserAgent: "UA"}); err != nil {
				t.Fatal(err)
			}
			next++
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		got := mustStats(t, s)
		if got.Opens-before != st.wantStored || got.LimiterRefused != st.wantRefused {
			t.Errorf("%s: %d stored, %d refused; want %d, %d", st.name, got.Opens-before, got.LimiterRefused, st.wantStored, st.wantRefused)
		}
		warns := logs.take()
		if !st.warn {
			if len(warns) != 0 {
				t.Errorf("%s: warnings %q, want none", st.name, warns)
			}
			continue
		}
		re := regexp.MustCompile(`^tracker limiter full: (\d+) opens? not stored` + regexp.QuoteMeta(st.since) +
			`; a flood from many addresses\?$`)
		var m []string
		if len(warns) == 1 {
			m = re.FindStringSubmatch(warns[0])
		}
		if m == nil {
			t.Errorf("%s: warnings %q, want one matching %s", st.name, warns, re)
			continue
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		warned += n
		if plural := n != 1; plural != strings.Contains(warns[0], " opens ") {
			t.Errorf("%s: %q: wrong plural", st.name, warns[0])
		}
		if n < 1 || warned > st.wantRefused || st.clients == 1 && warned != st.wantRefused {
			t.Errorf("%s: warned of %d refusals in all (this one %d), %d were refused", st.name, warned, n, st.wantRefused)
		}
	}

	// A batch that fails to commit: its hits are dropped, not refused.
	l := newLimiter()
	l.maxIPs = 1
	limiterFlood(l, 3, clk.Now(), time.Hour, 10, floodIP, func(int) string { return "c1" }) // commits 2 refused
	l.ipCount("198.51.100.7", minute(clk.Now()))                                            // a refusal in the failing batch
	if l.rollback(); l.refused != 2 {
		t.Errorf("after a rollback the limiter says %d refused, want the committed 2", l.refused)
	}
}

// TestLimiterIPv6CountsPerSlash64: the per-IP limit counts an IPv6 client
// by its /64, so walking through the addresses of one /64 neither escapes
// ip_hourly_limit nor fills the IP table; other /64s and IPv4 (also
// v4-mapped) are counted on their own.
func TestLimiterIPv6CountsPerSlash64(t *testing.T) {
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	copyID := func(i int) string { return fmt.Sprint("id", i) } // no dedup
	rows := []struct {
		name       string
		ipOf       func(int) string
		wantStored int
		wantIPs    int
	}{
		{"one /64, 1000 addresses", func(i int) string { return fmt.Sprintf("2001:db8:1:2::%x", i+1) }, 5, 1},
		{"one /64, with zones", func(i int) string { return fmt.Sprintf("fe80::%x%%eth%d", i+1, i%3) }, 5, 1},
		{"1000 /64s", func(i int) string { return fmt.Sprintf("2001:db8:%x::1", i+1) }, 1000, 1000},
		{"v4-mapped and plain IPv4 are one address", func(i int) string {
			if i%2 == 0 {
				return "::ffff:192.0.2.7"
			}
			return "192.0.2.7"
		}, 5, 1},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			l := newLimiter()
			if got := limiterFlood(l, 1000, at, time.Hour, 5, row.ipOf, copyID); got != row.wantStored || len(l.ips) != row.wantIPs {
				t.Errorf("stored %d with %d IP entries, want %d and %d", got, len(l.ips), row.wantStored, row.wantIPs)
			}
		})
	}
}
