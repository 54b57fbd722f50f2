// Package senders remembers the addresses that submitted mail through the
// relay recently, so that the tracker can tell the sender's own views of a
// pixel (bot_type "self") from the recipient's. It is kept in memory: a
// restart forgets it, and it holds at most MaxAddrs addresses (the oldest
// are dropped first).
package senders

import (
	"net/netip"
	"sync"
	"time"
)

// MaxAddrs bounds the set.
const MaxAddrs = 4096

// Set is safe for concurrent use; the zero value is ready.
type Set struct {
	mu   sync.Mutex
	last map[netip.Addr]time.Time
}

// Note records that ip submitted mail at t.
func (s *Set) Note(ip netip.Addr, t time.Time) {
	if !ip.IsValid() {
		return
	}
	ip = key(ip)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		s.last = make(map[netip.Addr]time.Time)
	}
	if _, ok := s.last[ip]; !ok && len(s.last) >= MaxAddrs {
		s.dropOldest()
	}
	s.last[ip] = t
}

// Seen reports whether ip submitted mail within window before now.
func (s *Set) Seen(ip netip.Addr, now time.Time, window time.Duration) bool {
	if s == nil || window <= 0 || !ip.IsValid() {
		return false
	}
	s.mu.Lock()
	t, ok := s.last[key(ip)]
	s.mu.Unlock()
	return ok && now.Sub(t) < window && !t.After(now.Add(time.Minute))
}

// Len is the number of addresses held.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.last)
}

// key is the address an IP counts as: itself, or for IPv6 its /64 (one
// host's privacy addresses change within it).
func key(ip netip.Addr) netip.Addr {
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return ip
	}
	p, _ := ip.Prefix(64)
	return p.Addr()
}

func (s *Set) dropOldest() {
	var oldest netip.Addr
	var at time.Time
	for ip, t := range s.last {
		if !oldest.IsValid() || t.Before(at) {
			oldest, at = ip, t
		}
	}
	delete(s.last, oldest)
}
