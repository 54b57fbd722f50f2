package classify

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// naive is the longest-prefix match by a linear scan: what the table must
// agree with.
func naive(nets []Network, a netip.Addr) (Network, bool) {
	best, found := Network{}, false
	for _, n := range nets {
		if n.Prefix.Contains(a) && (!found || n.Prefix.Bits() >= best.Prefix.Bits()) {
			best, found = n, true
		}
	}
	return best, found
}

func randAddr(r *rand.Rand, v6 bool) netip.Addr {
	if v6 {
		var b [16]byte
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		b[0], b[1] = 0x20, 0x01 // stay in one /16 so prefixes nest often
		return netip.AddrFrom16(b)
	}
	return netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(256)), byte(r.IntN(256))})
}

// TestTableMatchesLinearScan checks the binary search and parent walk
// against a linear longest-prefix scan over nested, adjacent and disjoint
// random prefixes, IPv4 and IPv6, including /0-like wide ones and /32,
// /128 hosts.
func TestTableMatchesLinearScan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		var nets []Network
		for i := range 300 {
			v6 := i%2 == 1
			a := randAddr(r, v6)
			bits := 8 + r.IntN(25)
			if v6 {
				bits = 16 + r.IntN(113)
			}
			p, _ := a.Prefix(bits)
			nets = append(nets, Network{Prefix: p, Class: Scanner, Source: fmt.Sprintf("n%d", i)})
		}
		// Same prefix twice: the later one replaces the first.
		nets = append(nets, Network{Prefix: nets[0].Prefix, Class: ClassHuman, Source: "override"})
		tb := newTable(nets)
		want := nets // naive lets a later equal prefix win, as newTable does
		for range 3000 {
			a := randAddr(r, r.IntN(2) == 1)
			if r.IntN(3) == 0 { // an address at a prefix's edge
				n := want[r.IntN(len(want))]
				a = n.Prefix.Addr()
				if r.IntN(2) == 0 {
					k := lastAddr(n.Prefix)
					a = addrOf(k, a.Is4())
				}
			}
			got, found := tb.lookup(a)
			exp, ok := naive(want, a)
			switch {
			case !ok && found:
				t.Fatalf("round %d: %s: got %q, want no match", round, a, got.reason)
			case ok && !found:
				t.Fatalf("round %d: %s: no match, want %s", round, a, exp.Prefix)
			case ok && got.reason != "network: "+sourceName(exp.Source)+" "+exp.Prefix.String():
				t.Fatalf("round %d: %s: got %q, want %s %s", round, a, got.reason, sourceName(exp.Source), exp.Prefix)
			}
		}
	}
}

func addrOf(k [2]uint64, v4 bool) netip.Addr {
	if v4 {
		v := uint32(k[1])
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	var b [16]byte
	for i := range 8 {
		b[i] = byte(k[0] >> (56 - 8*i))
		b[8+i] = byte(k[1] >> (56 - 8*i))
	}
	return netip.AddrFrom16(b)
}

func TestLastAddr(t *testing.T) {
	for _, tc := range []struct{ p, last string }{
		{"10.0.0.0/8", "10.255.255.255"},
		{"0.0.0.0/0", "255.255.255.255"},
		{"1.2.3.4/32", "1.2.3.4"},
		{"2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"},
		{"2001:db8::/64", "2001:db8::ffff:ffff:ffff:ffff"},
		{"2001:db8::/96", "2001:db8::ffff:ffff"},
		{"::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
		{"2001:db8::1/128", "2001:db8::1"},
	} {
		p := netip.MustParsePrefix(tc.p)
		if got := addrOf(lastAddr(p), p.Addr().Is4()); got != netip.MustParseAddr(tc.last) {
			t.Errorf("lastAddr(%s) = %s, want %s", tc.p, got, tc.last)
		}
	}
}

func TestParseNetworks(t *testing.T) {
	text := "# comment\n\n203.0.113.0/24 scanner Example Gateway <https://example.com/ranges> 2026-12-01\n" +
		"2001:db8::/32 apple_mpp Example relay\n192.0.2.7 human My office NAT\n::ffff:198.51.100.0/120 prefetch Mapped\n"
	ns, err := ParseNetworks(strings.NewReader(text), "test")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ prefix, class, name string }{
		{"203.0.113.0/24", Scanner, "Example Gateway"},
		{"2001:db8::/32", AppleMPP, "Example relay"},
		{"192.0.2.7/32", ClassHuman, "My office NAT"},
		{"198.51.100.0/24", Prefetch, "Mapped"},
	}
	if len(ns) != len(want) {
		t.Fatalf("got %d networks, want %d", len(ns), len(want))
	}
	for i, w := range want {
		if ns[i].Prefix.String() != w.prefix || ns[i].Class != w.class || sourceName(ns[i].Source) != w.name {
			t.Errorf("line %d: got %s %s %q, want %s %s %q", i, ns[i].Prefix, ns[i].Class, sourceName(ns[i].Source), w.prefix, w.class, w.name)
		}
	}
	for _, bad := range []string{
		"203.0.113.0/24 scanner\n",               // no source
		"203.0.113.0/33 scanner X\n",             // bad prefix
		"example.com scanner X\n",                // not an address
		"203.0.113.0/24 robot X\n",               // unknown class
		"fe80::1%eth0 scanner X\n",               // zone
		"# ok\n10.0.0.0/8 scanner X\nnonsense\n", // line 3
	} {
		_, err := ParseNetworks(strings.NewReader(bad), "tracking.networks_file f")
		if err == nil || !strings.Contains(err.Error(), "tracking.networks_file f: line ") {
			t.Errorf("%q: error %v does not name the key and line", bad, err)
		}
	}
}

func TestNetworksFileOverrides(t *testing.T) {
	file := filepath.Join(t.TempDir(), "nets.txt")
	text := "# mine\n" +
		"40.107.0.0/16 human We route our own office through this (test)\n" + // replaces the built-in line
		"52.101.40.0/24 human Partner NAT\n" + // takes a part of 52.100.0.0/14 back
		"198.51.100.0/24 scanner Acme Mail Gateway <https://acme.example/ips> 2026-12-04\n" // adds
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	extra, err := LoadNetworks(file)
	if err != nil {
		t.Fatal(err)
	}
	c := New(extra)
	for _, tc := range []struct {
		ip     string
		want   Result
		reason string
	}{
		{"40.107.1.2", hum, ReasonHuman},
		{"52.101.40.9", hum, ReasonHuman},
		{"52.101.41.9", scn, "network: Microsoft Exchange Online Protection 52.100.0.0/14"},
		{"198.51.100.77", scn, "network: Acme Mail Gateway 198.51.100.0/24"},
		{"198.51.101.77", hum, ReasonHuman},
	} {
		got := c.Classify(Request{UserAgent: uaChrome, IP: netip.MustParseAddr(tc.ip), Now: later})
		if verdict(got) != tc.want || got.Reason != tc.reason {
			t.Errorf("%s: got %+v, want %+v with reason %q", tc.ip, got, tc.want, tc.reason)
		}
	}
	if _, err := LoadNetworks(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "tracking.networks_file") {
		t.Errorf("missing file: %v", err)
	}
}

// TestBuiltinTable keeps networks.txt honest: it parses, is dated, every
// line cites a URL and a date, no CIDR is listed twice, and the ranges the
// issue names are there.
func TestBuiltinTable(t *testing.T) {
	ns := BuiltinNetworks()
	if len(ns) < 20 {
		t.Fatalf("only %d networks", len(ns))
	}
	if d := BuiltinDate(); !isDate(d) {
		t.Errorf("made date %q", d)
	}
	seen := map[netip.Prefix]bool{}
	for _, n := range ns {
		if seen[n.Prefix] {
			t.Errorf("%s listed twice", n.Prefix)
		}
		seen[n.Prefix] = true
		f := strings.Fields(n.Source)
		if !strings.Contains(n.Source, "<https://") || !isDate(f[len(f)-1]) {
			t.Errorf("%s: source %q lacks <URL> and date", n.Prefix, n.Source)
		}
		if n.Prefix != n.Prefix.Masked() {
			t.Errorf("%s is not masked", n.Prefix)
		}
	}
	for _, tc := range []struct{ ip, reason string }{
		{"40.92.1.1", "network: Microsoft Exchange Online Protection 40.92.0.0/15"},
		{"40.107.212.5", "network: Microsoft Exchange Online Protection 40.107.0.0/16"},
		{"52.100.9.9", "network: Microsoft Exchange Online Protection 52.100.0.0/14"},
		{"104.47.51.1", "network: Microsoft Exchange Online Protection 104.47.0.0/17"},
		{"2a01:111:f403:c201::1", "network: Microsoft Exchange Online Protection 2a01:111:f403::/48"},
		{"205.139.110.40", "network: Mimecast 205.139.110.0/23"},
		{"67.231.149.10", "network: Proofpoint 67.231.144.0/20"},
		{"209.222.82.1", "network: Barracuda Email Security Service 209.222.80.0/21"},
	} {
		got := Classify(Request{UserAgent: uaOldChrome, IP: netip.MustParseAddr(tc.ip), Now: later})
		if verdict(got) != scn || got.Reason != tc.reason {
			t.Errorf("%s: got %+v, want scanner %q", tc.ip, got, tc.reason)
		}
	}
	for _, ip := range []string{"17.1.2.3", "172.225.40.1", "104.28.40.9", "146.75.160.1", "2a02:26f7:b3c0:4000::9", "2a04:4e41:1300::5", "2a09:bac3:2700::1", "2606:54c0:4000::2"} {
		got := Classify(Request{UserAgent: uaAppleMail, IP: netip.MustParseAddr(ip), Now: later})
		if verdict(got) != mpp || !strings.HasPrefix(got.Reason, "network: Apple") {
			t.Errorf("%s: got %+v, want apple_mpp by network", ip, got)
		}
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	c := Default()
	ips := []netip.Addr{netip.MustParseAddr("40.107.3.4"), netip.MustParseAddr("2a02:26f7:c000::1"), homeIP}
	n := testing.AllocsPerRun(200, func() {
		for _, ip := range ips {
			c.nets.lookup(ip)
		}
	})
	if n != 0 {
		t.Errorf("lookup allocates %.1f times", n)
	}
	for _, ua := range []string{uaOldChrome, uaAppleMail, uaSafari} {
		for _, ip := range ips {
			req := Request{UserAgent: ua, IP: ip, SentAt: sent, Now: later}
			if n := testing.AllocsPerRun(100, func() { c.Classify(req) }); n != 0 {
				t.Errorf("Classify(%s, %s) allocates %.1f times", ua, ip, n)
			}
		}
	}
}

// fullAppleSize is the size of Apple's egress list uncompacted (286,946
// rows on 2026-07-02: 41,818 IPv4, 245,128 IPv6).
const (
	fullApple4 = 41818
	fullApple6 = 245128
)

// syntheticApple makes a table as large as Apple's whole egress list,
// uncompacted: /32s and /64s with a few distinct sources.
func syntheticApple() []Network {
	out := make([]Network, 0, fullApple4+fullApple6)
	for i := range fullApple4 {
		a := netip.AddrFrom4([4]byte{172, byte(224 + i>>16), byte(i >> 8), byte(i)})
		out = append(out, Network{Prefix: netip.PrefixFrom(a, 32), Class: AppleMPP, Source: "Apple iCloud Private Relay egress <https://mask-api.icloud.com/egress-ip-ranges.csv> 2026-07-02"})
	}
	for i := range fullApple6 {
		var b [16]byte
		b[0], b[1], b[2], b[3] = 0x2a, 0x02, 0x26, 0xf7
		b[4], b[5], b[6] = byte(i>>16), byte(i>>8), byte(i)
		out = append(out, Network{Prefix: netip.PrefixFrom(netip.AddrFrom16(b), 64), Class: AppleMPP, Source: "Apple iCloud Private Relay egress <https://mask-api.icloud.com/egress-ip-ranges.csv> 2026-07-02"})
	}
	return out
}

// TestFullTableMemory loads a table as large as Apple's whole list
// uncompacted, on top of the built-in one, and checks it costs under the
// issue's 20 MB; lookups stay allocation-free.
func TestFullTableMemory(t *testing.T) {
	nets := syntheticApple()
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	c := New(nets)
	after := heap()
	runtime.KeepAlive(nets)
	cost := int64(after) - int64(before)
	t.Logf("%d networks: %.1f MB", c.Networks(), float64(cost)/(1<<20))
	if cost > 20<<20 {
		t.Errorf("table of %d networks costs %.1f MB, want < 20 MB", c.Networks(), float64(cost)/(1<<20))
	}
	ip := netip.MustParseAddr("2a02:26f7:0:1200::9")
	got := c.Classify(Request{UserAgent: uaAppleMail, IP: ip, Now: later})
	if verdict(got) != mpp {
		t.Errorf("%s: %+v", ip, got)
	}
	if n := testing.AllocsPerRun(100, func() { c.Classify(Request{UserAgent: uaChrome, IP: ip, Now: later}) }); n != 0 {
		t.Errorf("Classify allocates %.1f times with the full table", n)
	}
}

func BenchmarkLookupFullTable(b *testing.B) {
	c := New(syntheticApple())
	ips := []netip.Addr{netip.MustParseAddr("2a02:26f7:0:1200::9"), netip.MustParseAddr("172.224.3.4"), homeIP, netip.MustParseAddr("2001:db8::1")}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c.Classify(Request{UserAgent: uaChrome, IP: ips[i%len(ips)], Now: later})
	}
}

// FuzzParseNetworks: any text either fails with a line number or gives
// networks whose table agrees with a linear scan.
func FuzzParseNetworks(f *testing.F) {
	f.Add("10.0.0.0/8 scanner A\n10.1.0.0/16 human B <https://x> 2026-01-01\n", []byte{10, 1, 2, 3})
	f.Add("2001:db8::/32 apple_mpp R\n2001:db8::1 prefetch S\n", []byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add("::ffff:1.2.3.0/120 scanner M\n# c\n\n", []byte{1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, text string, ip []byte) {
		ns, err := ParseNetworks(strings.NewReader(text), "fuzz")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz: ") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			return
		}
		a = a.Unmap()
		got, found := newTable(ns).lookup(a)
		exp, want := naive(ns, a)
		if found != want || (found && got.reason != "network: "+sourceName(exp.Source)+" "+exp.Prefix.String()) {
			t.Fatalf("%s: got %v %q, want %v %s", a, found, got.reason, want, exp.Prefix)
		}
	})
}
