package httpd

import (
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"pixelrelay/tracker/classify"
)

// recentSet keeps what the classifier needs to know about the last fetches
// of recently fetched copies: the clients that sent HEAD for the pixel, and
// the networks of unexplained fetches around delivery (classify.Burst). It
// is bounded: when full it starts over, forgetting at worst a HEAD or a
// burst in progress.
type recentSet struct {
	mu    sync.Mutex
	m     map[string]*recentCopy
	heads atomic.Int64 // HEADs ever noted: none, and headFirst needs no lock
}

type recentCopy struct {
	heads [4]headSeen
	nh    int
	burst classify.Burst
}

// headSeen is one HEAD: its client (address and user agent, so that a
// person behind the same NAT as a scanner is not taken for it) and time.
type headSeen struct {
	ip netip.Addr
	ua string
	at time.Time
}

const (
	// maxRecent bounds the copies remembered (an entry is about 450
	// bytes, so at most about 7 MB).
	maxRecent = 1 << 14
	// headWindow: a GET this soon after a HEAD from the same client is
	// the second half of a scanner's check.
	headWindow = 10 * time.Minute
)

// entry returns the copy's state, made if needed; call with mu held.
func (r *recentSet) entry(id string) *recentCopy {
	if c, ok := r.m[id]; ok {
		return c
	}
	if r.m == nil || len(r.m) >= maxRecent {
		r.m = make(map[string]*recentCopy, 1024)
	}
	c := &recentCopy{}
	r.m[id] = c
	return c
}

// noteHead records a HEAD for the pixel of copy id from the client ip, ua.
func (r *recentSet) noteHead(id string, ip netip.Addr, ua string, now time.Time) {
	ua = clip256(ua)
	r.heads.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.entry(id)
	c.heads[c.nh%len(c.heads)] = headSeen{ip: ip, ua: strings.Clone(ua), at: now}
	c.nh++
}

// headFirst reports a HEAD from the same client for copy id within
// headWindow.
func (r *recentSet) headFirst(id string, ip netip.Addr, ua string, now time.Time) bool {
	if r.heads.Load() == 0 {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.m[id]
	if !ok {
		return false
	}
	for i := range min(c.nh, len(c.heads)) {
		h := c.heads[i]
		if h.ip == ip && h.ua == clip256(ua) && now.Sub(h.at) < headWindow && !h.at.After(now) {
			return true
		}
	}
	return false
}

// burst passes a fetch of copy id (delivered at sentAt) through the copy's
// burst counter (classify.Burst.Apply). Fetches outside the burst window
// cost only the check.
func (r *recentSet) burst(id string, res classify.Result, sentAt, now time.Time, ip netip.Addr) classify.Result {
	if sentAt.IsZero() || now.Sub(sentAt) >= classify.BurstWindow || now.Sub(sentAt) <= -classify.DefaultPrefetchWindow {
		return res
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.entry(id).burst.Apply(res, sentAt, now, ip)
}

func clip256(s string) string {
	if len(s) > 256 {
		return s[:256]
	}
	return s
}
