package classify

import (
	"fmt"
	"net/netip"
	"time"
)

// Click rules. A click (a fetch of a copy's click URL, GET only: a HEAD
// is never recorded) is first classified by the open rules (Classify:
// networks, user agents, timing after delivery, HEAD before GET ...);
// then, over the copy's clicks in the order they came, a click the open
// rules called human is a scanner's when:
//
//   - it is the honeypot (link 0): a hidden link no reader can see or
//     reach (see relay/rewrite.HoneypotTag), which only a machine that
//     follows every link of a message fetches (the technique, and about
//     90% of scanner clicks caught by it: mautic/mautic#9798);
//   - it came from the network (NetKey) of a honeypot fetch of the same
//     copy within HoneypotWindow before or after it: the same scanner
//     following the other links;
//   - another link of the same copy was fetched within LinkBurstWindow of
//     it: a person opens one link at a time, a gateway follows every link
//     of the message at once (mautic/mautic#9162 and #16263,
//     resend/resend-node#901).
//
// The rules look both ways in time, so a click can turn into a machine's
// when a later fetch shows it (the honeypot comes after the links it
// follows): the store applies them again to a copy's recent clicks at each
// new one, and Reclassify to all of them.
const (
	HoneypotWindow  = 30 * time.Second
	LinkBurstWindow = 2 * time.Second
)

// Reasons of the click rules.
const (
	ReasonHoneypot = "honeypot: fetched the hidden link no reader can see"
)

// Click is one stored fetch of a click URL of a copy.
type Click struct {
	At   time.Time
	IP   netip.Addr
	Link int // 0: the honeypot
	// Base is the open rules' verdict (Classify) of the fetch.
	Base Result
}

// ClickRules returns the verdict of each click of one copy (oldest first)
// under the click rules above.
func ClickRules(cs []Click) []Result {
	out := make([]Result, len(cs))
	for i, c := range cs {
		out[i] = clickRule(cs, i)
		if out[i].Reason == "" {
			out[i] = c.Base
		}
	}
	return out
}

// clickRule returns the verdict a click rule gives cs[i], or a zero
// Result when none applies.
func clickRule(cs []Click, i int) Result {
	c := cs[i]
	if c.Link == 0 {
		if c.Base.Bot {
			return c.Base // already a machine's, for its own reason
		}
		return Result{Bot: true, BotType: Scanner, Reason: ReasonHoneypot}
	}
	if c.Base.Bot || c.Base.Proxy != "" {
		return Result{}
	}
	var net netip.Prefix
	if c.IP.IsValid() {
		net = NetKey(c.IP)
	}
	for j, o := range cs {
		if j == i {
			continue
		}
		d := absDuration(o.At.Sub(c.At))
		if o.Link == 0 && d <= HoneypotWindow && net.IsValid() && o.IP.IsValid() && NetKey(o.IP) == net {
			return Result{Bot: true, BotType: Scanner, Reason: honeypotNetReason}
		}
	}
	seen := map[int]bool{c.Link: true}
	for _, o := range cs {
		if o.Link != 0 && absDuration(o.At.Sub(c.At)) <= LinkBurstWindow {
			seen[o.Link] = true
		}
	}
	if len(seen) > 1 {
		return Result{Bot: true, BotType: Scanner, Reason: linkBurstReason(len(seen))}
	}
	return Result{}
}

var honeypotNetReason = fmt.Sprintf("honeypot fetched from the same network within %s", HoneypotWindow)

func linkBurstReason(n int) string {
	return fmt.Sprintf("%d links of the copy followed within %s", n, LinkBurstWindow)
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
