package store

import (
	"net/netip"

	"pixelrelay/tracker/classify"
)

// recentClicks is what the writer remembers of the last clicks of recently
// clicked copies, so that a click no click rule can touch is stored without
// reading the copy's other clicks: under a flood of fetches of one link
// (a gateway retrying, a benchmark) each costs no more than an open. It
// answers conservatively: a copy it knows nothing of (after a restart, or
// when the table was full and started over) is judged from the database,
// which then fills its entry. It lives in memory, owned by the writer.
type recentClicks struct {
	m map[string]*copyClicks
}

// copyClicks is one copy's last clicks: per link, the last time; per
// network, the last honeypot fetch.
type copyClicks struct {
	links [8]linkSeen
	pots  [8]potSeen
}

type linkSeen struct {
	link int
	at   uint64
}

type potSeen struct {
	net netip.Prefix
	at  uint64
}

// maxRecentCopies bounds the table (an entry is about 200 bytes).
const maxRecentCopies = 1 << 14

// quiet reports whether no click rule can apply to a new click h at at,
// nor through it to an earlier click: it is not the honeypot, no honeypot
// of its network came within HoneypotWindow, and no other link within
// LinkBurstWindow. False when the copy is not known.
func (r *recentClicks) quiet(h *ClickHit, at uint64) bool {
	if r == nil || h.Link == 0 {
		return false
	}
	c := r.m[h.TrackingID]
	if c == nil {
		return false
	}
	burst, pot := uint64(classify.LinkBurstWindow), uint64(classify.HoneypotWindow)
	for _, l := range c.links {
		if l.at != 0 && l.link != h.Link && near(l.at, at, burst) {
			return false
		}
	}
	net := netOf(h.IP)
	for _, p := range c.pots {
		if p.at != 0 && p.net == net && near(p.at, at, pot) {
			return false
		}
	}
	return true
}

func near(a, b, d uint64) bool {
	if a > b {
		a, b = b, a
	}
	return b-a <= d
}

func netOf(ip string) netip.Prefix {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.Prefix{}
	}
	return classify.NetKey(a)
}

// note remembers a stored click of a known copy (load makes it known).
func (r *recentClicks) note(h *ClickHit, at uint64) {
	if r == nil {
		return
	}
	if c := r.m[h.TrackingID]; c != nil {
		c.add(h.Link, netOf(h.IP), at)
	}
}

// load makes copy id known from its clicks cs (oldest first): every click
// the rules could still look at.
func (r *recentClicks) load(id string, cs []storedClick) {
	if r == nil {
		return
	}
	if r.m == nil || len(r.m) >= maxRecentCopies {
		r.m = make(map[string]*copyClicks, 1024)
	}
	c := &copyClicks{}
	for i := range cs {
		c.add(cs[i].rec.Link, netOf(cs[i].rec.IP), cs[i].at)
	}
	r.m[id] = c
}

// add notes a click of link (0: the honeypot, from net) at at, replacing
// the oldest slot when full.
func (c *copyClicks) add(link int, net netip.Prefix, at uint64) {
	if link == 0 {
		i := 0
		for j, p := range c.pots {
			if p.net == net || p.at < c.pots[i].at {
				i = j
				if p.net == net {
					break
				}
			}
		}
		if c.pots[i].net != net {
			c.pots[i].at = 0
		}
		c.pots[i] = potSeen{net: net, at: max(at, c.pots[i].at)}
		return
	}
	i := 0
	for j, l := range c.links {
		if l.link == link || l.at < c.links[i].at {
			i = j
			if l.link == link {
				break
			}
		}
	}
	if c.links[i].link != link {
		c.links[i].at = 0
	}
	c.links[i] = linkSeen{link: link, at: max(at, c.links[i].at)}
}
