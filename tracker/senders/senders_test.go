package senders

import (
	"net/netip"
	"sync"
	"testing"
	"time"
)

func TestSeen(t *testing.T) {
	var s Set
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	s.Note(netip.MustParseAddr("203.0.113.5"), t0)
	s.Note(netip.MustParseAddr("2001:db8:1:2::aaaa"), t0)
	for _, tc := range []struct {
		ip     string
		at     time.Duration
		window time.Duration
		want   bool
	}{
		{"203.0.113.5", time.Hour, 24 * time.Hour, true},
		{"::ffff:203.0.113.5", time.Hour, 24 * time.Hour, true},
		{"203.0.113.5", 25 * time.Hour, 24 * time.Hour, false},
		{"203.0.113.5", time.Hour, 0, false},
		{"203.0.113.6", time.Hour, 24 * time.Hour, false},
		{"2001:db8:1:2::bbbb", time.Hour, 24 * time.Hour, true}, // same /64
		{"2001:db8:1:3::aaaa", time.Hour, 24 * time.Hour, false},
	} {
		if got := s.Seen(netip.MustParseAddr(tc.ip), t0.Add(tc.at), tc.window); got != tc.want {
			t.Errorf("Seen(%s, +%s, %s) = %v", tc.ip, tc.at, tc.window, got)
		}
	}
	var nilSet *Set
	if nilSet.Seen(netip.MustParseAddr("203.0.113.5"), t0, time.Hour) {
		t.Error("nil set saw something")
	}
}

func TestBoundedAndConcurrent(t *testing.T) {
	var s Set
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1500 {
				ip := netip.AddrFrom4([4]byte{10, byte(g), byte(i >> 8), byte(i)})
				s.Note(ip, t0.Add(time.Duration(i)*time.Second))
				s.Seen(ip, t0, time.Hour)
			}
		}()
	}
	wg.Wait()
	if n := s.Len(); n > MaxAddrs {
		t.Errorf("%d addresses held, cap %d", n, MaxAddrs)
	}
	// The newest are kept.
	if !s.Seen(netip.AddrFrom4([4]byte{10, 0, 1499 >> 8, 1499 & 0xff}), t0.Add(1500*time.Second), time.Hour) {
		t.Error("the newest address was dropped")
	}
}
