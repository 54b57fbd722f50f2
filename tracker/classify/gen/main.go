// Command gen remakes tracker/classify/networks.txt, the built-in table of
// machine networks, from the published lists (`make networks`). It needs
// internet access and is not run by CI or the tests.
//
// Fetched: Microsoft's Microsoft 365 endpoint list (the Exchange Online
// Protection mail-flow entry) and Apple's iCloud Private Relay egress list,
// merged into covering prefixes (/24 for IPv4, /40 for IPv6, then sibling
// prefixes joined) so that its ~287,000 rows become a few hundred lines.
// Kept as written below: the gateways that publish their ranges only on web
// pages (Mimecast, Proofpoint, Barracuda) and Apple's 17.0.0.0/8; update
// them here when their pages change.
//
//	go run ./tracker/classify/gen [-o tracker/classify/networks.txt]
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"
)

// Published lists.
const (
	eopName   = "Microsoft Exchange Online Protection"
	eopPage   = "https://learn.microsoft.com/en-us/microsoft-365/enterprise/urls-and-ip-address-ranges"
	eopURL    = "https://endpoints.office.com/endpoints/worldwide?clientrequestid="
	appleName = "Apple iCloud Private Relay egress"
	appleURL  = "https://mask-api.icloud.com/egress-ip-ranges.csv"
)

// static is one range kept as written (no machine-readable list exists).
type static struct{ cidr, class, name, url, date string }

const (
	mimecastURL = "https://mimecastsupport.zendesk.com/hc/en-us/articles/34000659090707"
	ppURL       = "https://proofpoint.my.site.com/support/PPSup_SupportInfo"
	barraURL    = "https://campus.barracuda.com/product/emailgatewaydefense/doc/96023004/ip-analysis-inbound/"
	appleMPPURL = "https://wordtothewise.com/2021/09/apple-mpp-reporting-and-geolocation/"
)

// sections are written in this order, each with its comment.
var sections = []struct {
	comment string
	lines   []static
}{
	{comment: `# Mimecast: the data-centre ranges of its "Data Centers and URLs" page (US, UK/EU, ZA grids),
# as quoted by public Microsoft 365 connection-filter scripts and SPF records; the page
# itself could not be read here, so grids not quoted there (DE, AU, CA, ...) are missing.`,
		lines: mimecast()},
	{comment: "# Proofpoint: the networks its support page lists for its hosted services.",
		lines: []static{{"67.231.144.0/20", "scanner", "Proofpoint", ppURL, "2026-12-04"}}},
	{comment: `# Barracuda Email Security Service (Email Gateway Defense), US instance; the page lists
# AU, CA, DE and UK instances too, which could not be read here.`,
		lines: []static{{"209.222.80.0/21", "scanner", "Barracuda Email Security Service", barraURL, "2026-12-04"}}},
}

func mimecast() []static {
	var out []static
	for _, c := range []string{"63.128.21.0/24", "170.10.128.0/22", "170.10.132.0/23", "205.139.110.0/23",
		"207.211.30.0/24", "207.211.31.0/25", "216.205.24.0/24", "91.220.42.0/24", "146.101.78.0/24",
		"185.58.85.0/24", "185.58.86.0/24", "195.130.217.0/24", "41.74.192.0/22", "41.74.196.0/22",
		"41.74.200.0/23", "41.74.204.0/23", "41.74.206.0/24"} {
		out = append(out, static{c, "scanner", "Mimecast", mimecastURL, "2026-12-04"})
	}
	return out
}

// appleOwn is Apple's own network, written before the egress list.
var appleOwn = static{"17.0.0.0/8", "apple_mpp", "Apple", appleMPPURL, "2026-12-04"}

const header = `# pixelrelay: networks whose pixel fetches are machines, one "CIDR CLASS SOURCE" a line.
# CLASS is the bot type a fetch from the network gets (apple_mpp, scanner, prefetch;
# "human" takes a range back). SOURCE is a name, the <URL> the range was taken
# from and the date it was fetched. The longest matching prefix wins;
# tracking.networks_file adds lines in this format (the same CIDR replaces a line here).
#
# made: %s
#
# Regenerate with ` + "`make networks`" + ` (go run ./tracker/classify/gen) on a machine
# with internet access: it fetches Microsoft's endpoint list and Apple's
# egress-ip-ranges.csv and keeps the sources that publish no machine-readable
# list as written in the generator.
`

func main() {
	out := flag.String("o", "tracker/classify/networks.txt", "file to write")
	timeout := flag.Duration("timeout", 2*time.Minute, "time allowed for the downloads")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := run(ctx, *out); err != nil {
		fmt.Fprintf(os.Stderr, "gen: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out string) error {
	today := time.Now().UTC().Format("2006-01-02")
	eopBody, err := fetch(ctx, eopURL+requestID())
	if err != nil {
		return err
	}
	eop, err := parseEOP(eopBody)
	if err != nil {
		return fmt.Errorf("%s: %w", eopURL, err)
	}
	appleBody, err := fetch(ctx, appleURL)
	if err != nil {
		return err
	}
	apple, rows, err := parseAppleCSV(appleBody)
	if err != nil {
		return fmt.Errorf("%s: %w", appleURL, err)
	}
	var b strings.Builder
	write(&b, today, eop, apple, rows)
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "gen: %d EOP ranges, %d Apple rows -> %d prefixes; wrote %s\n", len(eop), rows, len(apple), out)
	return os.Rename(tmp, out)
}

// write renders the table.
func write(w io.Writer, today string, eop, apple []netip.Prefix, appleRows int) {
	fmt.Fprintf(w, header, today)
	fmt.Fprintf(w, "\n# %s: the mail-flow entry (*.mail.protection.outlook.com, TCP 25) of the\n# Microsoft 365 endpoint list. Defender for Office 365 / Safe Links fetches images and\n# links from here at delivery, with a months-old Chrome user agent.\n", eopName)
	for _, p := range eop {
		fmt.Fprintf(w, "%s scanner %s <%s> %s\n", p, eopName, eopPage, today)
	}
	for _, s := range sections {
		fmt.Fprintf(w, "\n%s\n", s.comment)
		for _, l := range s.lines {
			fmt.Fprintf(w, "%s %s %s <%s> %s\n", l.cidr, l.class, l.name, l.url, l.date)
		}
	}
	fmt.Fprintf(w, "\n# Apple: its own 17.0.0.0/8, and the iCloud Private Relay egress list that Mail Privacy\n# Protection fetches through (%d rows), merged into covering prefixes.\n", appleRows)
	fmt.Fprintf(w, "%s %s %s <%s> %s\n", appleOwn.cidr, appleOwn.class, appleOwn.name, appleOwn.url, appleOwn.date)
	for _, p := range apple {
		fmt.Fprintf(w, "%s apple_mpp %s <%s> %s\n", p, appleName, appleURL, today)
	}
}

func fetch(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 256<<20))
}

// requestID is the GUID the endpoint service asks for.
func requestID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// parseEOP takes the endpoint list's JSON and returns the IP ranges of the
// entry for *.mail.protection.outlook.com on TCP 25 (ID 10 today).
func parseEOP(body []byte) ([]netip.Prefix, error) {
	var entries []struct {
		ID       int      `json:"id"`
		URLs     []string `json:"urls"`
		IPs      []string `json:"ips"`
		TCPPorts string   `json:"tcpPorts"`
	}
	if err := json.Unmarshal(body, &entries); err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, e := range entries {
		if !contains(e.URLs, "*.mail.protection.outlook.com") || !strings.Contains(","+e.TCPPorts+",", ",25,") {
			continue
		}
		for _, s := range e.IPs {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("entry %d: %q: %w", e.ID, s, err)
			}
			out = append(out, p.Masked())
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no *.mail.protection.outlook.com entry on TCP 25")
	}
	return sortPrefixes(out), nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// parseAppleCSV reads egress-ip-ranges.csv ("prefix,country,region,city,")
// and returns its covering prefixes and the number of rows.
func parseAppleCSV(body []byte) ([]netip.Prefix, int, error) {
	var ps []netip.Prefix
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		cidr, _, _ := strings.Cut(line, ",")
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			return nil, 0, fmt.Errorf("line %d: %q: %w", n, cidr, err)
		}
		ps = append(ps, p.Masked())
	}
	if err := sc.Err(); err != nil {
		return nil, 0, err
	}
	if len(ps) == 0 {
		return nil, 0, fmt.Errorf("no rows")
	}
	return Compact(ps, 24, 40), len(ps), nil
}

// Compact widens every prefix longer than /bits4 (IPv4) or /bits6 (IPv6)
// to that length, drops prefixes inside others, and joins two halves of
// the same parent into the parent, repeatedly.
func Compact(ps []netip.Prefix, bits4, bits6 int) []netip.Prefix {
	set := map[netip.Prefix]bool{}
	for _, p := range ps {
		limit := bits6
		if p.Addr().Is4() {
			limit = bits4
		}
		if p.Bits() > limit {
			p, _ = p.Addr().Prefix(limit)
		}
		set[p.Masked()] = true
	}
	for changed := true; changed; {
		changed = false
		for p := range set {
			if p.Bits() == 0 || !set[p] {
				continue
			}
			parent, _ := p.Addr().Prefix(p.Bits() - 1)
			sib := sibling(p, parent)
			if set[sib] {
				delete(set, p)
				delete(set, sib)
				set[parent] = true
				changed = true
			}
		}
	}
	out := make([]netip.Prefix, 0, len(set))
	for p := range set {
		if !covered(set, p) {
			out = append(out, p)
		}
	}
	return sortPrefixes(out)
}

// sibling is the other half of parent.
func sibling(p, parent netip.Prefix) netip.Prefix {
	b := p.Addr().AsSlice()
	bit := p.Bits() - 1
	b[bit/8] ^= 0x80 >> (bit % 8)
	a, _ := netip.AddrFromSlice(b)
	return netip.PrefixFrom(a, p.Bits())
}

// covered reports whether a shorter prefix in set contains p.
func covered(set map[netip.Prefix]bool, p netip.Prefix) bool {
	for bits := p.Bits() - 1; bits >= 0; bits-- {
		q, _ := p.Addr().Prefix(bits)
		if set[q] {
			return true
		}
	}
	return false
}

func sortPrefixes(ps []netip.Prefix) []netip.Prefix {
	sort.Slice(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.Addr().Is4() != b.Addr().Is4() {
			return a.Addr().Is4()
		}
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c < 0
		}
		return a.Bits() < b.Bits()
	})
	return ps
}
