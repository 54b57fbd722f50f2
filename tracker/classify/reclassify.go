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
	nets := burstNetworks(sentAt, fetches)
	out := make([]Result, len(fetches))
	for i, f := range fetches {
		if sticky(f, sentAt, window) {
			out[i] = f.Old
			if out[i].Reason == "" {
				out[i].Reason = ReasonKept
			}
			continue
		}
		r := Request{UserAgent: f.UserAgent, IP: f.IP, SentAt: sentAt, Now: f.At, PrefetchWindow: window}
		if inBurst(sentAt, f.At) {
			r.Networks = nets
		}
		out[i] = c.Classify(r)
	}
	return out
}

// burstNetworks counts the distinct networks that fetched the copy within
// BurstWindow of delivery.
func burstNetworks(sentAt time.Time, fetches []Fetch) int {
	seen := map[netip.Prefix]bool{}
	for _, f := range fetches {
		if f.IP.IsValid() && inBurst(sentAt, f.At) && !f.Old.isProxy() {
			seen[NetKey(f.IP)] = true
		}
	}
	return len(seen)
}

func (r Result) isProxy() bool { return r.Proxy != "" }

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
