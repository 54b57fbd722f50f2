package store

import (
	"crypto/sha256"
	"math"
	"net/netip"
	"time"

	bolt "go.etcd.io/bbolt"
)

// limiter holds the dedup and per-IP state. It is derived data: the stored
// opens of the last hour (or dedup window) determine it completely, so it
// lives in memory, is rebuilt from the opens-by-time index when the store
// opens, and costs no random page writes per hit. Only the writer goroutine
// uses it after OpenStore.
//
// Its memory is bounded: at most maxDedup (id, IP, UA) entries and maxIPs
// addresses are held (entries leave with sweep, after the dedup window or
// the hour). When a table is full, a hit that would need a new entry is not
// stored (refused counts them): the limiter fails closed, so a flood from
// more distinct clients than it can remember can cost opens but never
// stores a duplicate or an open over an IP's hourly limit.
type limiter struct {
	dedup map[dedupKey]uint64 // last stored open of (id, IP, UA), as ts()
	ips   map[string][]ipSlot // stored opens per IP per minute, oldest first

	maxDedup, maxIPs int   // table bounds (defaultMaxDedup, defaultMaxIPs)
	refused          int64 // hits not stored because a table was full
	refusedCommitted int64 // refused as of the last commit

	undoDedup []dedupUndo
	undoIP    []ipUndo
	lastSweep time.Time
}

type dedupKey [16]byte

type ipSlot struct {
	minute uint64
	n      uint32
}

type dedupUndo struct {
	key  dedupKey
	prev uint64
	had  bool
}

type ipUndo struct {
	ip     string
	minute uint64
}

// Table bounds. A dedup entry costs about 64 bytes of heap and an IP
// about 120 (TestLimiterMemoryBound measures them), so a full limiter holds
// about 80 MB: 1,048,576 distinct (copy, IP, user agent) opens per dedup
// window and 131,072 distinct IPs per hour, far more than a personal
// relay's readers, and more than the tracker stores in 10 s of make bench's
// flood of distinct clients (with a quarter of that, the benchmark's
// "every request stored" failed).
const (
	defaultMaxDedup = 1 << 20
	defaultMaxIPs   = 1 << 17
)

func newLimiter() *limiter {
	return &limiter{dedup: map[dedupKey]uint64{}, ips: map[string][]ipSlot{},
		maxDedup: defaultMaxDedup, maxIPs: defaultMaxIPs}
}

func keyOf(id, ip, ua string) dedupKey {
	h := sha256.New()
	h.Write([]byte(id))
	h.Write([]byte{0})
	h.Write([]byte(ip))
	h.Write([]byte{0})
	h.Write([]byte(ua))
	var k dedupKey
	copy(k[:], h.Sum(make([]byte, 0, sha256.Size)))
	return k
}

// duplicate reports whether an open of k was stored less than window
// before at. A new k while the table is full counts as a duplicate (fail
// closed; see limiter).
func (l *limiter) duplicate(k dedupKey, at time.Time, window time.Duration) bool {
	last, ok := l.dedup[k]
	if !ok && len(l.dedup) >= l.maxDedup {
		l.refused++
		return true
	}
	return ok && at.Sub(fromTS(last)) < window
}

// ipCount is the number of opens stored for ip in the 60 minutes (minute
// slots) up to and including slot. A new ip while the table is full counts
// as over any limit (fail closed; see limiter).
func (l *limiter) ipCount(ip string, slot uint64) int {
	ip = rateKey(ip)
	if _, ok := l.ips[ip]; !ok && len(l.ips) >= l.maxIPs {
		l.refused++
		return math.MaxInt
	}
	n := 0
	for _, s := range l.ips[ip] {
		if s.minute+59 >= slot && s.minute <= slot {
			n += int(s.n)
		}
	}
	return n
}

// note records a stored open; undone by rollback, kept by commit. A new
// entry is not added to a full table (dedup or limit are off then, or the
// checks above refused the hit).
func (l *limiter) note(k dedupKey, ip string, at uint64, slot uint64) {
	prev, had := l.dedup[k]
	if had || len(l.dedup) < l.maxDedup {
		l.undoDedup = append(l.undoDedup, dedupUndo{k, prev, had})
		if at > prev {
			l.dedup[k] = at
		}
	}
	if ip == "" {
		return
	}
	ip = rateKey(ip)
	if _, ok := l.ips[ip]; !ok && len(l.ips) >= l.maxIPs {
		return
	}
	l.addIP(ip, slot, 1)
	l.undoIP = append(l.undoIP, ipUndo{ip, slot})
}

// rateKey is what the per-IP limit counts by: an IPv4 address (also when
// written v4-mapped), or the /64
// of an IPv6 address (one host, or one home's router, usually holds a
// whole /64 and could otherwise walk through its addresses to escape the
// limit and fill the table).
func rateKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	switch {
	case err != nil:
		return ip
	case a.Unmap().Is4():
		return a.Unmap().String()
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}

func (l *limiter) addIP(ip string, slot uint64, d int) {
	slots := l.ips[ip]
	for i := len(slots) - 1; i >= 0; i-- {
		if slots[i].minute == slot {
			slots[i].n = uint32(int(slots[i].n) + d)
			if slots[i].n == 0 {
				slots = append(slots[:i], slots[i+1:]...)
			}
			l.setIP(ip, slots)
			return
		}
	}
	if d > 0 {
		l.ips[ip] = append(slots, ipSlot{slot, uint32(d)})
	}
}

func (l *limiter) setIP(ip string, slots []ipSlot) {
	if len(slots) == 0 {
		delete(l.ips, ip)
		return
	}
	l.ips[ip] = slots
}

// commit keeps the changes noted since the last commit or rollback.
func (l *limiter) commit() {
	l.undoDedup = l.undoDedup[:0]
	l.undoIP = l.undoIP[:0]
	l.refusedCommitted = l.refused
}

// rollback forgets the changes noted since the last commit: their
// transaction failed (its hits count as dropped, not as refused).
func (l *limiter) rollback() {
	l.refused = l.refusedCommitted
	for i := len(l.undoDedup) - 1; i >= 0; i-- {
		u := l.undoDedup[i]
		if u.had {
			l.dedup[u.key] = u.prev
		} else {
			delete(l.dedup, u.key)
		}
	}
	for _, u := range l.undoIP {
		l.addIP(u.ip, u.minute, -1)
	}
	l.commit()
}

// sweep drops dedup entries older than window and IP slots older than an
// hour.
func (l *limiter) sweep(now time.Time, window time.Duration) {
	l.lastSweep = now
	before := ts(now.Add(-window))
	for k, at := range l.dedup {
		if at < before {
			delete(l.dedup, k)
		}
	}
	cur := minute(now)
	for ip, slots := range l.ips {
		keep := slots[:0]
		for _, s := range slots {
			if s.minute+59 >= cur {
				keep = append(keep, s)
			}
		}
		l.setIP(ip, keep)
	}
}

// rebuild loads the state from the opens stored since from.
func (l *limiter) rebuild(tx *bolt.Tx, from time.Time) (int, error) {
	opens := tx.Bucket(bOpens)
	c := tx.Bucket(bOpensByTime).Cursor()
	n := 0
	for k, v := c.Seek(appendU64(nil, ts(from))); k != nil; k, v = c.Next() {
		_, id, _, ok := parseTimeIndexValue(v)
		if !ok || len(k) != 16 {
			continue
		}
		ov := opens.Get(prefixed(id, k))
		if ov == nil {
			continue
		}
		o, err := decodeOpen(ov)
		if err != nil {
			continue
		}
		at := beU64(k)
		l.note(keyOf(id, o.IP, o.UserAgent), o.IP, at, minute(fromTS(at)))
		n++
	}
	n += l.rebuildClicks(tx, from)
	l.commit()
	return n, nil
}

// rebuildClicks notes the clicks stored since from, as rebuild the opens.
func (l *limiter) rebuildClicks(tx *bolt.Tx, from time.Time) int {
	clicks := tx.Bucket(bClicks)
	c := tx.Bucket(bClicksByTime).Cursor()
	n := 0
	for k, v := c.Seek(appendU64(nil, ts(from))); k != nil; k, v = c.Next() {
		_, id, _, ok := parseTimeIndexValue(v)
		if !ok || len(k) != 16 {
			continue
		}
		cv := clicks.Get(prefixed(id, k))
		if cv == nil {
			continue
		}
		r, err := decodeClick(cv)
		if err != nil {
			continue
		}
		at := beU64(k)
		l.note(keyOf(clickDedupID(id, r.Link), r.IP, r.UserAgent), r.IP, at, minute(fromTS(at)))
		n++
	}
	return n
}
