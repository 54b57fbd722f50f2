package classify

import (
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var (
	sent    = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	later   = sent.Add(2 * time.Hour)
	homeIP  = netip.MustParseAddr("203.0.113.7")
	appleIP = netip.MustParseAddr("17.58.101.12")
)

// Verdicts without their reasons, as the table below states them.
var (
	mpp = Result{Bot: true, BotType: AppleMPP}
	hum = Result{}
	scn = Result{Bot: true, BotType: Scanner}
	pre = Result{Bot: true, BotType: Prefetch}
)

// verdict drops the reason.
func verdict(r Result) Result { r.Reason = ""; return r }

// Real user agents, each with where it was seen.
const (
	uaChrome      = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	uaFirefox     = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
	uaSafari      = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15"
	uaAppleMail   = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
	uaThunderbird = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.5.0"
	// Outlook desktop fetching an external image (github.com/shon/httpagentparser/issues/91).
	uaOutlook16  = "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 10.0; WOW64; Trident/7.0; .NET4.0C; .NET4.0E; .NET CLR 2.0.50727; .NET CLR 3.0.30729; .NET CLR 3.5.30729; Microsoft Outlook 16.0.5257; ms-office; MSOffice 16)"
	uaOutlookNew = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)"
	// scientiamobile.com/what-is-google-image-proxy/
	uaGmailProxy = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
	// botcrawl.com/bots/yahoomailproxy/
	uaYahooProxy = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
	uaCurl       = "curl/8.5.0"
	uaWget       = "Wget/1.21.4"
	uaRequests   = "python-requests/2.31.0"
	uaGo         = "Go-http-client/1.1"
	uaOkHTTP     = "okhttp/4.12.0"
	uaJava       = "Java/17.0.2"
	uaHeadless   = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/143.0.7499.4 Safari/537.36"
	uaPhantom    = "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1"
	uaGooglebot  = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
	uaBingbot    = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
	uaProofpoint = "Mozilla/5.0 (compatible; Proofpoint URL Defense)"
	uaBarracuda  = "Mozilla/5.0 (compatible; Barracuda Sentinel)"
	uaMPP        = "Mozilla/5.0"
	uaIPhoneMail = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
	// A months-old Chrome, as Defender for Office 365 sends (gophish #2549).
	uaOldChrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36"
	// Gmail's prefetch (issue 12; SparkPost 2022; mautic/mautic#10245).
	uaGmailPrefetch = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/42.0.2311.135 Safari/537.36 Edge/12.246 Mozilla/5.0"
	uaAndroidGmai   = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36"
)

func TestClassify(t *testing.T) {
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	rows := []struct {
		name   string
		ua     string
		ip     netip.Addr
		h      http.Header
		sentAt time.Time
		now    time.Time
		window time.Duration
		want   Result
	}{
		{name: "chrome", ua: uaChrome, want: hum},
		{name: "firefox", ua: uaFirefox, want: hum},
		{name: "safari", ua: uaSafari, want: hum},
		{name: "apple mail without MPP", ua: uaAppleMail, want: hum},
		{name: "iphone mail without MPP", ua: uaIPhoneMail, want: hum},
		{name: "thunderbird", ua: uaThunderbird, want: hum},
		{name: "outlook 16 desktop", ua: uaOutlook16, want: hum},
		{name: "outlook new UA", ua: uaOutlookNew, want: hum},
		{name: "android", ua: uaAndroidGmai, want: hum},
		{name: "gmail proxy", ua: uaGmailProxy, want: Result{Proxy: Gmail}},
		{name: "gmail proxy lowercased", ua: strings.ToLower(uaGmailProxy), want: Result{Proxy: Gmail}},
		{name: "yahoo proxy", ua: uaYahooProxy, want: Result{Proxy: Yahoo}},
		{name: "gmail proxy inside prefetch window stays human", ua: uaGmailProxy, sentAt: sent, now: sent.Add(time.Second), want: Result{Proxy: Gmail}},
		{name: "mpp bare UA from apple", ua: uaMPP, ip: appleIP, want: mpp},
		{name: "mpp bare UA elsewhere", ua: uaMPP, want: mpp},
		{name: "mpp bare UA with spaces", ua: "  Mozilla/5.0 ", want: mpp},
		{name: "safari from apple range (Private Relay browsing)", ua: uaSafari, ip: appleIP, want: hum},
		{name: "apple mail from apple range", ua: uaAppleMail, ip: appleIP, want: mpp},
		{name: "iphone mail from apple range", ua: uaIPhoneMail, ip: appleIP, want: mpp},
		{name: "thunderbird from apple range", ua: uaThunderbird, ip: appleIP, want: hum},
		{name: "v4-mapped apple", ua: uaAppleMail, ip: netip.MustParseAddr("::ffff:17.1.2.3"), want: mpp},
		{name: "next to apple range", ua: uaAppleMail, ip: netip.MustParseAddr("18.0.0.1"), want: hum},
		{name: "curl", ua: uaCurl, want: scn},
		{name: "CURL upper", ua: "CURL/8.5.0", want: scn},
		{name: "wget", ua: uaWget, want: scn},
		{name: "python-requests", ua: uaRequests, want: scn},
		{name: "go", ua: uaGo, want: scn},
		{name: "okhttp", ua: uaOkHTTP, want: scn},
		{name: "java", ua: uaJava, want: scn},
		{name: "headless chrome", ua: uaHeadless, want: scn},
		{name: "phantomjs", ua: uaPhantom, want: scn},
		{name: "googlebot", ua: uaGooglebot, want: scn},
		{name: "bingbot", ua: uaBingbot, want: scn},
		{name: "proofpoint", ua: uaProofpoint, want: scn},
		{name: "barracuda", ua: uaBarracuda, want: scn},
		{name: "empty UA", ua: "", want: scn},
		{name: "blank UA", ua: "   ", want: scn},
		{name: "sec-purpose prefetch", ua: uaFirefox, h: hdr("Sec-Purpose", "prefetch"), want: pre},
		{name: "purpose prefetch", ua: uaChrome, h: hdr("Purpose", "Prefetch"), want: pre},
		{name: "x-purpose preview", ua: uaSafari, h: hdr("X-Purpose", "preview"), want: pre},
		{name: "x-moz prefetch", ua: uaFirefox, h: hdr("X-Moz", "prefetch"), want: pre},
		{name: "sec-purpose anonymous proxy", ua: uaChrome, h: hdr("Sec-Purpose", "prefetch;anonymous-client-ip"), want: pre},
		{name: "unrelated header", ua: uaChrome, h: hdr("Sec-Fetch-Dest", "image"), want: hum},
		{name: "within window", ua: uaChrome, sentAt: sent, now: sent.Add(3 * time.Second), want: pre},
		{name: "just before sent", ua: uaChrome, sentAt: sent, now: sent.Add(-2 * time.Second), want: pre},
		{name: "after window", ua: uaChrome, sentAt: sent, now: sent.Add(11 * time.Second), want: hum},
		{name: "custom window", ua: uaChrome, sentAt: sent, now: sent.Add(50 * time.Second), window: time.Minute, want: pre},
		{name: "window disabled", ua: uaChrome, sentAt: sent, now: sent.Add(time.Second), window: -1, want: hum},
		{name: "not sent yet", ua: uaChrome, now: later, want: hum},
		{name: "scanner beats window", ua: uaCurl, sentAt: sent, now: sent.Add(time.Second), want: scn},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			ip := row.ip
			if !ip.IsValid() {
				ip = homeIP
			}
			now := row.now
			if now.IsZero() {
				now = later
			}
			got := Classify(Request{UserAgent: row.ua, IP: ip, Header: row.h, SentAt: row.sentAt, Now: now, PrefetchWindow: row.window})
			if got.Reason == "" {
				t.Errorf("Classify(%q): no reason", row.ua)
			}
			if verdict(got) != row.want {
				t.Errorf("Classify(%q) = %+v, want %+v", row.ua, got, row.want)
			}
			if got.Bot != (got.BotType != "") {
				t.Errorf("Bot=%v but BotType=%q", got.Bot, got.BotType)
			}
			if got.Bot && got.Proxy != "" {
				t.Errorf("a bot with a proxy: %+v", got)
			}
		})
	}
}

func TestExtraAppleRanges(t *testing.T) {
	file := filepath.Join(t.TempDir(), "apple.txt")
	text := "# Private Relay egress (sample)\n\n198.51.100.0/27 # comment\n2001:db8:b3c0:4000::/64\n192.0.2.9\n"
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	ranges, err := LoadRanges(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(ranges) != 3 {
		t.Fatalf("got %d ranges, want 3: %v", len(ranges), ranges)
	}
	c := New(AppleNetworks(ranges))
	for _, tc := range []struct {
		ip   string
		want Result
	}{
		{"198.51.100.5", mpp},
		{"198.51.100.40", hum},
		{"2001:db8:b3c0:4000::1", mpp},
		{"2001:db8:b3c0:4001::1", hum},
		{"192.0.2.9", mpp},
		{"192.0.2.10", hum},
		{"17.0.0.1", mpp},
	} {
		got := verdict(c.Classify(Request{UserAgent: uaAppleMail, IP: netip.MustParseAddr(tc.ip), Now: later}))
		if got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.ip, got, tc.want)
		}
	}
	// The package-level Classify does not know the extra ranges.
	if got := verdict(Classify(Request{UserAgent: uaAppleMail, IP: netip.MustParseAddr("192.0.2.9"), Now: later})); got != hum {
		t.Errorf("default classifier: got %+v", got)
	}
}

func TestLoadRangesErrors(t *testing.T) {
	for _, bad := range []string{"17.0.0.0/33\n", "1.2.3.4\nnot-an-ip\n", "10.0.0.0/8/8"} {
		file := filepath.Join(t.TempDir(), "apple.txt")
		if err := os.WriteFile(file, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadRanges(file)
		if err == nil {
			t.Errorf("%q: want an error", bad)
			continue
		}
		if !strings.Contains(err.Error(), "line ") || !strings.Contains(err.Error(), "tracking.apple_ranges_file") {
			t.Errorf("%q: error %q does not name the key and line", bad, err)
		}
	}
	if _, err := LoadRanges(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "tracking.apple_ranges_file") {
		t.Errorf("missing file: %v", err)
	}
}

func TestClassifyDoesNotAllocate(t *testing.T) {
	h := http.Header{"Sec-Fetch-Dest": {"image"}}
	req := Request{UserAgent: uaChrome, IP: homeIP, Header: h, SentAt: sent, Now: later}
	n := testing.AllocsPerRun(100, func() { Classify(req) })
	if n != 0 {
		t.Errorf("Classify allocates %.1f times per call", n)
	}
}

func FuzzClassify(f *testing.F) {
	for _, ua := range []string{uaChrome, uaGmailProxy, uaMPP, uaCurl, "", "\xff\xfe", strings.Repeat("A", 2000)} {
		f.Add(ua, []byte{17, 0, 0, 1}, "prefetch", int64(3))
	}
	f.Fuzz(func(t *testing.T, ua string, ip []byte, purpose string, secs int64) {
		addr, _ := netip.AddrFromSlice(ip)
		r := Classify(Request{
			UserAgent:      ua,
			IP:             addr,
			Header:         http.Header{"Sec-Purpose": {purpose}},
			SentAt:         sent,
			Now:            sent.Add(time.Duration(secs) * time.Second),
			PrefetchWindow: time.Duration(secs),
		})
		if r.Bot != (r.BotType != "") || (r.Bot && r.Proxy != "") {
			t.Fatalf("inconsistent result %+v", r)
		}
		if r.Reason == "" {
			t.Fatalf("no reason: %+v", r)
		}
		switch r.BotType {
		case "", AppleMPP, Scanner, Prefetch, Self:
		default:
			t.Fatalf("unknown bot type %q", r.BotType)
		}
	})
}

func BenchmarkClassify(b *testing.B) {
	reqs := []Request{
		{UserAgent: uaChrome, IP: homeIP, SentAt: sent, Now: later},
		{UserAgent: uaGmailProxy, IP: homeIP, SentAt: sent, Now: later},
		{UserAgent: uaOutlook16, IP: homeIP, SentAt: sent, Now: later},
		{UserAgent: uaCurl, IP: homeIP, SentAt: sent, Now: later},
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		Classify(reqs[i%len(reqs)])
	}
}
