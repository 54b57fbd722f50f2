package config

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// NetworkLine is one line of a networks table (tracking.networks_file and
// the built-in table): "CIDR CLASS SOURCE".
type NetworkLine struct {
	Prefix netip.Prefix
	Class  string // a bot type (apple_mpp, scanner, prefetch) or "human"
	Source string // the rest of the line: name, <URL>, date
}

// NetworkClasses are the CLASS values a networks table accepts.
var NetworkClasses = []string{"apple_mpp", "scanner", "prefetch", "human"}

// ParseNetworks reads "CIDR CLASS SOURCE" lines; blank lines and lines
// starting with '#' are skipped. CIDR may be a single address; IPv4-mapped
// IPv6 prefixes are unmapped. Errors name the line.
func ParseNetworks(r io.Reader) ([]NetworkLine, error) {
	var out []NetworkLine
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			return nil, fmt.Errorf("line %d: want \"CIDR CLASS SOURCE\", got %q", n, line)
		}
		p, err := parseNetworkPrefix(f[0])
		if err != nil {
			return nil, fmt.Errorf("line %d: %q is not an IP address or CIDR", n, f[0])
		}
		if !validClass(f[1]) {
			return nil, fmt.Errorf("line %d: class %q: want %s", n, f[1], strings.Join(NetworkClasses, ", "))
		}
		out = append(out, NetworkLine{Prefix: p, Class: f[1], Source: strings.Join(f[2:], " ")})
	}
	return out, sc.Err()
}

func validClass(c string) bool {
	for _, v := range NetworkClasses {
		if c == v {
			return true
		}
	}
	return false
}

// parseNetworkPrefix is parsePrefix without zones, unmapping ::ffff:a.b.c.d/N.
func parseNetworkPrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "%") {
		return netip.Prefix{}, fmt.Errorf("zone")
	}
	p, err := parsePrefix(s)
	if err != nil {
		return p, err
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p, nil
}
