package classify

import (
	"net/netip"
	"strings"
	"time"
)

// ReasonKept is the reason of an old record's verdict that Reclassify
// keeps because the evidence for it was not stored.
const ReasonKept = "kept: recorded before reasons were stored; its evidence was not kept"

// Fetch is one stored fetch of a copy (an open, or later a click), as
// Reclassify sees it.
type Fetch struct {
	At        time.Time
	IP        netip.Addr
	UserAgent string
	// Old is the stored verdict; Reason "" for records made before
	// reasons were stored.
	Old Result
}

// Label names a verdict for counts: "human", "proxy:gmail", "bot:scanner".
func Label(r Result) string {
	switch {
	case r.Bot && r.BotType != "":
		return "bot:" + r.BotType
	case r.Bot:
		return "bot"
	case r.Proxy != "":
		return "proxy:" + r.Proxy
	}
	return "human"
}

// Reclassify classifies again the stored fetches of one copy delivered at
// sentAt, with the current rules and table; window is
// tracking.prefetch_window (0: the default, negative: off). It sees the
// whole copy at once, so every fetch of a scanner burst is marked, not only
// those after the third network as at request time.
//
// What a stored fetch does not record is not re-examined: a verdict that
// came from a request header, a HEAD before the GET or the sender's address
// (self) stays, and so does an old record's "prefetch" that the delivery
// window does not explain (it may have come from a purpose header).
func (c *Classifier) Reclassify(sentAt time.Time, fetches []Fetch, window time.Duration) []Result {
	out := make([]Result, len(fetches))
	var b Burst
	for i, f := range fetches {
		if sticky(f, sentAt, window) {
			out[i] = f.Old
			if out[i].Reason == "" {
				out[i].Reason = ReasonKept
			}
			continue
		}
		r := c.Classify(Request{UserAgent: f.UserAgent, IP: f.IP, SentAt: sentAt, Now: f.At, PrefetchWindow: window})
		out[i] = b.Apply(r, sentAt, f.At, f.IP)
	}
	return out
}

// Burst counts the distinct networks of one copy's unexplained fetches
// (those no other rule called a machine, and those the delivery window
// did) within BurstWindow of its delivery, in the order they came, and
// turns a human verdict into a scanner one from the BurstNetworks-th
// network on. The request handler keeps one per recent copy; Reclassify
// replays a copy's fetches through one, so both agree, and a person who
// opened before the burst stays a person.
type Burst struct {
	nets [BurstNetworks * 2]netip.Prefix
	n    int
}

// Apply counts the fetch if it is unexplained and returns the verdict.
func (b *Burst) Apply(r Result, sentAt, at time.Time, ip netip.Addr) Result {
	if !unexplained(r) || !inBurst(sentAt, at) || !ip.IsValid() {
		return r
	}
	b.add(NetKey(ip))
	if r.Reason == ReasonHuman && b.n >= BurstNetworks {
		return BurstResult(b.n)
	}
	return r
}

// Networks is how many distinct networks were counted.
func (b *Burst) Networks() int { return b.n }

func (b *Burst) add(k netip.Prefix) {
	for i := 0; i < b.n && i < len(b.nets); i++ {
		if b.nets[i] == k {
			return
		}
	}
	if b.n < len(b.nets) {
		b.nets[b.n] = k
	}
	b.n++
}

// unexplained: a plain human verdict, or a prefetch only by the delivery
// window.
func unexplained(r Result) bool {
	return r.Reason == ReasonHuman || (r.BotType == Prefetch && strings.HasPrefix(r.Reason, "within "))
}

func inBurst(sentAt, at time.Time) bool {
	if sentAt.IsZero() || at.IsZero() {
		return false
	}
	d := at.Sub(sentAt)
	return d > -DefaultPrefetchWindow && d < BurstWindow
}

// sticky reports a verdict that rests on what the store did not keep.
func sticky(f Fetch, sentAt time.Time, window time.Duration) bool {
	switch reason := f.Old.Reason; {
	case strings.HasPrefix(reason, "header: "), reason == ReasonHeadFirst, reason == ReasonSelf:
		return true
	case reason == "" && f.Old.BotType == Prefetch:
		return !InPrefetchWindow(sentAt, f.At, window)
	}
	return false
}
