package main

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	"pixelrelay/tracker/classify"
)

// A trimmed copy of the Microsoft 365 endpoint list's shape.
const eopSample = `[
 {"id":1,"serviceArea":"Exchange","urls":["outlook.office.com"],"ips":["13.107.6.152/31"],"tcpPorts":"80,443"},
 {"id":10,"serviceArea":"Exchange","urls":["*.mail.protection.outlook.com"],"ips":["40.92.0.0/15","40.107.0.0/16","52.100.0.0/14","104.47.0.0/17","2a01:111:f400::/48","2a01:111:f403::/48"],"tcpPorts":"25"}
]`

func TestParseEOP(t *testing.T) {
	ps, err := parseEOP([]byte(eopSample))
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(ps))
	for i, p := range ps {
		got[i] = p.String()
	}
	want := "40.92.0.0/15 40.107.0.0/16 52.100.0.0/14 104.47.0.0/17 2a01:111:f400::/48 2a01:111:f403::/48"
	if strings.Join(got, " ") != want {
		t.Errorf("got %v", got)
	}
	if _, err := parseEOP([]byte(`[{"id":1,"urls":["x"],"ips":["1.2.3.0/24"],"tcpPorts":"443"}]`)); err == nil {
		t.Error("a list without the mail-flow entry: want an error")
	}
	if _, err := parseEOP([]byte(`not json`)); err == nil {
		t.Error("bad JSON: want an error")
	}
}

func TestParseAppleCSVCompacts(t *testing.T) {
	csv := "172.225.40.0/28,US,US-CA,Los Angeles,\n172.225.40.16/28,US,US-CA,Los Angeles,\n" +
		"172.225.41.7/32,US,US-CA,Los Angeles,\n" + // joins 172.225.40.0/24 into a /23
		"104.28.91.70/31,GB,GB-EN,London,\n" +
		"2a02:26f7:b3c0:4000::/64,DE,DE-BE,Berlin,\n2a02:26f7:b3c1:4000::/64,DE,DE-BE,Berlin,\n" +
		"2a02:26f7:b300::/40,DE,,,\n" // the two /64s are inside this /40 once widened
	ps, rows, err := parseAppleCSV([]byte(csv))
	if err != nil {
		t.Fatal(err)
	}
	if rows != 7 {
		t.Errorf("rows = %d", rows)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.String())
	}
	want := "104.28.91.0/24 172.225.40.0/23 2a02:26f7:b300::/40"
	if strings.Join(got, " ") != want {
		t.Errorf("got %v, want %s", got, want)
	}
	if _, _, err := parseAppleCSV([]byte("garbage,US\n")); err == nil {
		t.Error("bad row: want an error")
	}
}

func TestCompactKeepsEveryAddress(t *testing.T) {
	in := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("10.0.1.0/24"),
		netip.MustParsePrefix("10.0.2.0/24"), netip.MustParsePrefix("10.0.3.0/25"),
		netip.MustParsePrefix("10.9.0.0/16"), netip.MustParsePrefix("10.9.4.0/24"),
	}
	out := Compact(in, 24, 40)
	want := "10.0.0.0/22 10.9.0.0/16"
	var got []string
	for _, p := range out {
		got = append(got, p.String())
	}
	if strings.Join(got, " ") != want {
		t.Errorf("got %v, want %s", got, want)
	}
	for _, p := range in {
		found := false
		for _, q := range out {
			found = found || q.Contains(p.Addr())
		}
		if !found {
			t.Errorf("%s lost", p)
		}
	}
}

// TestWriteParses renders a table and reads it back with the classifier's
// parser, and checks that the sources the generator keeps as written are
// in the committed networks.txt exactly, so that `make networks` does not
// silently change them.
func TestWriteParses(t *testing.T) {
	var b strings.Builder
	eop, _ := parseEOP([]byte(eopSample))
	write(&b, "2026-12-04", eop, []netip.Prefix{netip.MustParsePrefix("172.225.0.0/16")}, 1)
	ns, err := classify.ParseNetworks(strings.NewReader(b.String()), "generated")
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != len(eop)+len(mimecast())+2+1+1 {
		t.Errorf("%d networks", len(ns))
	}
	if !strings.Contains(b.String(), "# made: 2026-12-04") {
		t.Error("no made date")
	}
	committed, err := os.ReadFile("../networks.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sections {
		for _, l := range s.lines {
			line := l.cidr + " " + l.class + " " + l.name + " <" + l.url + "> " + l.date + "\n"
			if !strings.Contains(string(committed), line) {
				t.Errorf("networks.txt lacks %q", line)
			}
		}
	}
}
