package classify

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestClickRules: the honeypot, its network around it and bursts of links
// make clicks a scanner's; a person elsewhere, or one link at a time,
// stays a person; a machine stays a machine for its own reason.
func TestClickRules(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	human := Result{Reason: ReasonHuman}
	curl := Result{Bot: true, BotType: Scanner, Reason: "user agent: curl/"}
	gmail := Result{Proxy: Gmail, Reason: "user agent: GoogleImageProxy"}
	ip := netip.MustParseAddr
	type in struct {
		sec  float64
		ip   string
		link int
		base Result
	}
	cases := []struct {
		name   string
		clicks []in
		want   []string // reason prefix per click; "" for human
	}{
		{"one click", []in{{0, "192.0.2.1", 1, human}}, []string{""}},
		{"same link twice", []in{{0, "192.0.2.1", 1, human}, {0.5, "192.0.2.1", 1, human}}, []string{"", ""}},
		{"two links apart", []in{{0, "192.0.2.1", 1, human}, {3, "192.0.2.1", 2, human}}, []string{"", ""}},
		{"two links at once", []in{{0, "192.0.2.1", 1, human}, {1.5, "198.51.100.1", 2, human}},
			[]string{"2 links of the copy", "2 links of the copy"}},
		{"three links", []in{{0, "192.0.2.1", 1, human}, {1, "192.0.2.1", 2, human}, {2, "192.0.2.1", 3, human}},
			[]string{"3 links", "3 links", "3 links"}},
		{"honeypot after its network's clicks", []in{{0, "192.0.2.1", 1, human}, {10, "192.0.2.200", 2, human},
			{25, "192.0.2.7", 0, human}, {40, "203.0.113.9", 3, human}},
			[]string{"honeypot fetched", "honeypot fetched", ReasonHoneypot, ""}},
		{"honeypot too long before", []in{{0, "192.0.2.1", 0, human}, {31, "192.0.2.1", 1, human}},
			[]string{ReasonHoneypot, ""}},
		{"honeypot from another network", []in{{0, "192.0.2.1", 0, human}, {5, "192.0.3.1", 1, human}},
			[]string{ReasonHoneypot, ""}},
		{"honeypot over IPv6 /48", []in{{0, "2001:db8:1:2::5", 1, human}, {2, "2001:db8:1:ff::9", 0, human}},
			[]string{"honeypot fetched", ReasonHoneypot}},
		{"a machine keeps its reason", []in{{0, "192.0.2.1", 0, curl}, {1, "192.0.2.1", 1, curl}},
			[]string{"user agent: curl/", "user agent: curl/"}},
		{"a provider proxy is not ruled", []in{{0, "192.0.2.1", 1, gmail}, {1, "192.0.2.1", 2, gmail}},
			[]string{"user agent: GoogleImageProxy", "user agent: GoogleImageProxy"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var cs []Click
			for _, c := range tc.clicks {
				cs = append(cs, Click{At: t0.Add(time.Duration(c.sec * float64(time.Second))), IP: ip(c.ip), Link: c.link, Base: c.base})
			}
			got := ClickRules(cs)
			for i, w := range tc.want {
				r := got[i]
				switch {
				case w == "" && (r.Bot || r.Reason != ReasonHuman):
					t.Errorf("click %d: %+v, want human", i, r)
				case w != "" && !strings.HasPrefix(r.Reason, w):
					t.Errorf("click %d: reason %q, want %q...", i, r.Reason, w)
				case w != "" && w != gmail.Reason && (!r.Bot || r.BotType == ""):
					t.Errorf("click %d: %+v, want a machine", i, r)
				}
			}
		})
	}
}
