package classify

import (
	_ "embed"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync/atomic"

	"pixelrelay/config"
)

// builtinNetworks is the dated table of machine networks (networks.txt,
// made by `make networks`: go run ./tracker/classify/gen).
//
//go:embed networks.txt
var builtinNetworks string

// ClassHuman marks a network as not a machine, so that a line in
// tracking.networks_file can take a built-in entry (or a part of it) back.
const ClassHuman = "human"

// Network is one line of a networks table: "CIDR CLASS SOURCE".
type Network = config.NetworkLine

// sourceName is a source's name: the text before a URL, "<" or a date.
func sourceName(s string) string {
	f := strings.Fields(s)
	for i, w := range f {
		if i > 0 && (strings.HasPrefix(w, "<") || strings.HasPrefix(w, "http://") || strings.HasPrefix(w, "https://") || isDate(w)) {
			return strings.Join(f[:i], " ")
		}
	}
	return strings.Join(f, " ")
}

func isDate(f string) bool {
	return len(f) == 10 && f[4] == '-' && f[7] == '-' && strings.Trim(f, "0123456789-") == ""
}

// ParseNetworks reads a networks table (config.ParseNetworks); name (a key
// or file) starts every error.
func ParseNetworks(r io.Reader, name string) ([]Network, error) {
	ns, err := config.ParseNetworks(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return ns, nil
}

// LoadNetworks reads a tracking.networks_file.
func LoadNetworks(path string) ([]Network, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tracking.networks_file: %w", err)
	}
	defer f.Close()
	return ParseNetworks(f, "tracking.networks_file "+path)
}

// BuiltinNetworks returns the embedded table.
func BuiltinNetworks() []Network {
	ns, err := ParseNetworks(strings.NewReader(builtinNetworks), "networks.txt")
	if err != nil {
		panic(err) // the generator and TestBuiltinTable keep it valid
	}
	return ns
}

// BuiltinDate is the "# made: DATE" line of the embedded table.
func BuiltinDate() string {
	for _, line := range strings.Split(builtinNetworks, "\n") {
		if d, ok := strings.CutPrefix(line, "# made: "); ok {
			return strings.TrimSpace(d)
		}
	}
	return ""
}

// table looks an address up among nested or disjoint prefixes: entries
// sorted by first address (shorter prefix first on a tie); each knows the
// nearest earlier entry that contains it. The longest matching prefix is
// found by a binary search and a short walk up those parents. An entry is
// 40 bytes, so even Apple's whole egress list uncompacted (287,000 rows)
// stays near 12 MB.
type table struct {
	v4, v6  []entry
	names   []string // source names, interned
	classes []string // class names
}

type entry struct {
	lo     [2]uint64              // first address (IPv4 in the second half)
	reason atomic.Pointer[string] // "network: NAME CIDR", made on first use
	parent int32                  // index of the enclosing entry, -1 if none
	name   uint32                 // index into table.names
	bits   uint8
	class  uint8 // index into table.classes
}

// key returns an address as two big-endian halves.
func key(a netip.Addr) [2]uint64 {
	if a.Is4() {
		b := a.As4()
		return [2]uint64{0, uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return [2]uint64{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func less(a, b [2]uint64) bool { return a[0] < b[0] || (a[0] == b[0] && a[1] < b[1]) }

// last returns the last address of the prefix lo/bits (v4: 32-bit space).
func last(lo [2]uint64, bits int, v4 bool) [2]uint64 {
	k := lo
	if v4 {
		k[1] |= (1<<(32-bits) - 1)
		return k
	}
	host := 128 - bits
	if host >= 64 {
		k[1] = ^uint64(0)
		k[0] |= (1<<(host-64) - 1) // host 128: the shift gives 0, so all ones
	} else {
		k[1] |= (1<<host - 1)
	}
	return k
}

// lastAddr returns the last address of p.
func lastAddr(p netip.Prefix) [2]uint64 {
	return last(key(p.Addr()), p.Bits(), p.Addr().Is4())
}

func (e *entry) last(v4 bool) [2]uint64 { return last(e.lo, int(e.bits), v4) }

// newTable builds the lookup table; a later network with the same prefix
// replaces an earlier one (tracking.networks_file over the built-in table).
func newTable(nets []Network) *table {
	byPrefix := make(map[netip.Prefix]int, len(nets))
	uniq := make([]Network, 0, len(nets))
	for _, n := range nets {
		if i, ok := byPrefix[n.Prefix]; ok {
			uniq[i] = n
			continue
		}
		byPrefix[n.Prefix] = len(uniq)
		uniq = append(uniq, n)
	}
	t := &table{}
	names, classes := map[string]uint32{}, map[string]uint8{}
	intern := func(m map[string]uint32, list *[]string, s string) uint32 {
		if i, ok := m[s]; ok {
			return i
		}
		m[s] = uint32(len(*list))
		*list = append(*list, s)
		return m[s]
	}
	for _, n := range uniq {
		if n.Prefix.Addr().Is4() {
			t.v4 = append(t.v4, entry{})
		} else {
			t.v6 = append(t.v6, entry{})
		}
	}
	i4, i6 := 0, 0
	for _, n := range uniq {
		var e *entry
		if n.Prefix.Addr().Is4() {
			e, i4 = &t.v4[i4], i4+1
		} else {
			e, i6 = &t.v6[i6], i6+1
		}
		e.lo, e.bits = key(n.Prefix.Addr()), uint8(n.Prefix.Bits())
		e.name = intern(names, &t.names, sourceName(n.Source))
		c, ok := classes[n.Class]
		if !ok {
			c = uint8(len(t.classes))
			classes[n.Class] = c
			t.classes = append(t.classes, n.Class)
		}
		e.class = c
	}
	link(t.v4, true)
	link(t.v6, false)
	return t
}

// link sorts entries and sets their parents.
func link(es []entry, v4 bool) {
	sort.Slice(es, func(i, j int) bool {
		if es[i].lo != es[j].lo {
			return less(es[i].lo, es[j].lo)
		}
		return es[i].bits < es[j].bits
	})
	var stack []int32 // enclosing entries of the current position
	for i := range es {
		for len(stack) > 0 && less(es[stack[len(stack)-1]].last(v4), es[i].lo) {
			stack = stack[:len(stack)-1]
		}
		es[i].parent = -1
		if len(stack) > 0 {
			es[i].parent = stack[len(stack)-1]
		}
		stack = append(stack, int32(i))
	}
}

// hit is a lookup's answer.
type hit struct {
	class  string
	reason string
}

// lookup returns the most specific entry containing a.
func (t *table) lookup(a netip.Addr) (hit, bool) {
	if t == nil || !a.IsValid() {
		return hit{}, false
	}
	a = a.Unmap()
	v4 := a.Is4()
	es := t.v6
	if v4 {
		es = t.v4
	}
	k := key(a)
	// The last entry starting at or before k.
	i := sort.Search(len(es), func(i int) bool { return less(k, es[i].lo) }) - 1
	for i >= 0 {
		e := &es[i]
		if !less(e.last(v4), k) {
			return hit{class: t.classes[e.class], reason: t.reason(e, v4)}, true
		}
		i = int(e.parent)
	}
	return hit{}, false
}

// reason returns "network: NAME CIDR", made once per entry.
func (t *table) reason(e *entry, v4 bool) string {
	if r := e.reason.Load(); r != nil {
		return *r
	}
	var a netip.Addr
	if v4 {
		a = netip.AddrFrom4([4]byte{byte(e.lo[1] >> 24), byte(e.lo[1] >> 16), byte(e.lo[1] >> 8), byte(e.lo[1])})
	} else {
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], e.lo[0])
		binary.BigEndian.PutUint64(b[8:], e.lo[1])
		a = netip.AddrFrom16(b)
	}
	r := "network: " + t.names[e.name] + " " + netip.PrefixFrom(a, int(e.bits)).String()
	e.reason.Store(&r)
	return r
}

// size is the number of entries.
func (t *table) size() int { return len(t.v4) + len(t.v6) }
