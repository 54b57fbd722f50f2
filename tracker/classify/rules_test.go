package classify

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var (
	googleIP = netip.MustParseAddr("66.102.8.33")  // Google, not in the table
	eopIP    = netip.MustParseAddr("40.107.212.5") // Exchange Online Protection
)

// TestBehaviourRules covers the rules added for issue 12, each with the
// reason it must give.
func TestBehaviourRules(t *testing.T) {
	rows := []struct {
		name   string
		req    Request
		want   Result
		reason string
	}{
		{"gmail prefetch at delivery", Request{UserAgent: uaGmailPrefetch, IP: googleIP, SentAt: sent, Now: sent.Add(2 * time.Second)}, pre, ReasonGmailFetch},
		{"gmail prefetch hours later", Request{UserAgent: uaGmailPrefetch, IP: googleIP, SentAt: sent, Now: sent.Add(5 * time.Hour)}, pre, ReasonGmailFetch},
		{"real EdgeHTML 12 browser", Request{UserAgent: strings.TrimSuffix(uaGmailPrefetch, " Mozilla/5.0"), IP: homeIP, SentAt: sent, Now: later}, hum, ReasonHuman},
		{"gmail proxy from anywhere", Request{UserAgent: uaGmailProxy, IP: eopIP, SentAt: sent, Now: later}, Result{Proxy: Gmail}, "user agent: GoogleImageProxy"},
		{"EOP with old chrome", Request{UserAgent: uaOldChrome, IP: eopIP, SentAt: sent, Now: sent.Add(40 * time.Second)}, scn, "network: Microsoft Exchange Online Protection 40.107.0.0/16"},
		{"old chrome at home", Request{UserAgent: uaOldChrome, IP: homeIP, SentAt: sent, Now: later}, hum, ReasonHuman},
		{"self", Request{UserAgent: uaThunderbird, IP: homeIP, Self: true, Now: later}, Result{Bot: true, BotType: Self}, ReasonSelf},
		{"self through gmail's proxy is the proxy", Request{UserAgent: uaGmailProxy, IP: googleIP, Self: true, Now: later}, Result{Proxy: Gmail}, "user agent: GoogleImageProxy"},
		{"HEAD before GET", Request{UserAgent: uaChrome, IP: homeIP, HeadFirst: true, SentAt: sent, Now: later}, scn, ReasonHeadFirst},
		{"burst of 3 networks", Request{UserAgent: uaChrome, IP: homeIP, Networks: 3, SentAt: sent, Now: sent.Add(50 * time.Second)}, scn, "fetched from 3 networks within 2m0s of delivery"},
		{"two networks is a person", Request{UserAgent: uaChrome, IP: homeIP, Networks: 2, SentAt: sent, Now: sent.Add(50 * time.Second)}, hum, ReasonHuman},
		{"burst window over", Request{UserAgent: uaChrome, IP: homeIP, Networks: 5, SentAt: sent, Now: sent.Add(3 * time.Minute)}, hum, ReasonHuman},
		{"window reason", Request{UserAgent: uaChrome, IP: homeIP, SentAt: sent, Now: sent.Add(3 * time.Second)}, pre, "within 10s of delivery"},
		{"custom window reason", Request{UserAgent: uaChrome, IP: homeIP, SentAt: sent, Now: sent.Add(30 * time.Second), PrefetchWindow: time.Minute}, pre, "within 1m0s of delivery"},
		{"purpose reason", Request{UserAgent: uaChrome, IP: homeIP, Header: http.Header{"Purpose": {"prefetch"}}, Now: later}, pre, "header: Purpose prefetch"},
		{"no UA", Request{IP: homeIP, Now: later}, scn, ReasonNoUA},
		{"curl reason", Request{UserAgent: uaCurl, IP: homeIP, Now: later}, scn, "user agent: curl/"},
		{"bare UA", Request{UserAgent: uaMPP, IP: homeIP, Now: later}, mpp, ReasonBareUA},
		{"bare UA from apple", Request{UserAgent: uaMPP, IP: netip.MustParseAddr("172.225.40.1"), Now: later}, mpp, "network: Apple iCloud Private Relay egress 172.225.0.0/16"},
		{"chrome on WARP in shared Cloudflare space", Request{UserAgent: uaChrome, IP: netip.MustParseAddr("104.28.40.9"), Now: later}, hum, ReasonHuman},
		{"safari through private relay", Request{UserAgent: uaSafari, IP: netip.MustParseAddr("172.225.40.1"), Now: later}, hum, ReasonHuman},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			got := Classify(row.req)
			if verdict(got) != row.want || got.Reason != row.reason {
				t.Errorf("got %+v, want %+v reason %q", got, row.want, row.reason)
			}
		})
	}
}

func TestReclassifyCopy(t *testing.T) {
	c := Default()
	at := func(d time.Duration) time.Time { return sent.Add(d) }
	ip := netip.MustParseAddr
	fetches := []Fetch{
		// A gateway without published ranges: three networks in a minute.
		{At: at(20 * time.Second), IP: ip("198.51.100.7"), UserAgent: uaChrome, Old: Result{Reason: ReasonHuman}},
		{At: at(30 * time.Second), IP: ip("198.51.101.7"), UserAgent: uaChrome, Old: Result{Reason: ReasonHuman}},
		{At: at(40 * time.Second), IP: ip("198.51.102.7"), UserAgent: uaChrome, Old: Result{Reason: ReasonHuman}},
		// A known machine in the same minutes does not count toward a burst.
		{At: at(45 * time.Second), IP: eopIP, UserAgent: uaOldChrome},
		// The reader, an hour later.
		{At: at(time.Hour), IP: homeIP, UserAgent: uaThunderbird, Old: Result{Reason: ReasonHuman}},
		// Decided by what was not stored: kept.
		{At: at(2 * time.Hour), IP: homeIP, UserAgent: uaChrome, Old: Result{Bot: true, BotType: Prefetch, Reason: "header: Sec-Purpose prefetch"}},
		{At: at(3 * time.Hour), IP: homeIP, UserAgent: uaChrome, Old: Result{Bot: true, BotType: Self, Reason: ReasonSelf}},
		// An old record (no reason) of a prefetch the window does not explain: kept.
		{At: at(4 * time.Hour), IP: homeIP, UserAgent: uaChrome, Old: Result{Bot: true, BotType: Prefetch}},
		// An old record that today's table calls a machine.
		{At: at(5 * time.Hour), IP: eopIP, UserAgent: uaOldChrome},
		// An old MPP verdict of a Safari user through Private Relay: now human.
		{At: at(6 * time.Hour), IP: ip("172.225.40.1"), UserAgent: uaSafari, Old: Result{Bot: true, BotType: AppleMPP}},
	}
	// The first two of the burst came before its third network: as at
	// request time, they stay people (a reader may have opened first).
	want := []Result{hum, hum, scn, scn, hum, pre, {Bot: true, BotType: Self}, pre, scn, hum}
	got := c.Reclassify(sent, fetches, 0)
	for i := range want {
		if verdict(got[i]) != want[i] || got[i].Reason == "" {
			t.Errorf("fetch %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if got[2].Reason != "fetched from 3 networks within 2m0s of delivery" {
		t.Errorf("burst reason %q", got[2].Reason)
	}
	if Label(got[2]) != "bot:scanner" || Label(got[4]) != "human" || Label(Result{Proxy: Gmail}) != "proxy:gmail" {
		t.Errorf("labels %q %q", Label(got[2]), Label(got[4]))
	}
}

func TestNetKey(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"203.0.113.77", "203.0.113.0/24"},
		{"::ffff:203.0.113.77", "203.0.113.0/24"},
		{"2001:db8:1:2:3::4", "2001:db8:1::/48"},
	} {
		if got := NetKey(netip.MustParseAddr(tc.ip)).String(); got != tc.want {
			t.Errorf("NetKey(%s) = %s, want %s", tc.ip, got, tc.want)
		}
	}
}
