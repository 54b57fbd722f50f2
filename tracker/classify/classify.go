// Package classify decides whether a pixel fetch is a human open, a mail
// provider's image proxy acting for a human, or a machine (Apple Mail Privacy
// Protection, a security scanner, a prefetch).
//
// All rules live in one ordered table below (rules, proxies, scanners), each
// row naming where the signature comes from. The first matching rule wins:
//
//  1. provider image proxy  -> human open, Result.Proxy set
//  2. apple_mpp             -> IP in Apple's egress ranges, or the bare "Mozilla/5.0" UA
//  3. scanner               -> security gateways, HTTP libraries, headless browsers, crawlers, no UA
//  4. prefetch              -> Sec-Purpose/Purpose/X-Purpose/X-Moz headers, or a fetch within
//     PrefetchWindow of the copy's delivery
//
// Classify does no regex work and lowercases the user agent once, into a
// stack buffer, so it does not allocate for ordinary user agents.
package classify

import (
	"bytes"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"pixelrelay/config"
)

// Bot types, as CONTRACT.md's OPEN.bot_type.
const (
	AppleMPP = "apple_mpp"
	Scanner  = "scanner"
	Prefetch = "prefetch"
)

// Proxy names, as CONTRACT.md's OPEN.proxy.
const (
	Gmail = "gmail"
	Yahoo = "yahoo"
)

// DefaultPrefetchWindow is used when Request.PrefetchWindow is zero.
const DefaultPrefetchWindow = 10 * time.Second

// Request is what Classify looks at.
type Request struct {
	UserAgent string
	IP        netip.Addr
	// Header is the request's header (may be nil); only the purpose headers
	// are read, by their canonical names.
	Header http.Header
	// SentAt is when the copy was delivered (zero: unknown / not yet).
	SentAt time.Time
	Now    time.Time
	// PrefetchWindow: fetches this soon after SentAt are prefetches.
	// Zero means DefaultPrefetchWindow; negative disables the rule.
	PrefetchWindow time.Duration
}

// Result is the verdict. Bot false and Proxy "" is a plain human open.
type Result struct {
	Bot     bool
	BotType string // "" for humans
	Proxy   string // the provider whose image proxy fetched it, "" if none
}

// uaRule is one case-insensitive substring signature of the User-Agent.
type uaRule struct {
	needle []byte // lowercase
	result Result
}

func rule(needle string, r Result) uaRule { return uaRule{[]byte(strings.ToLower(needle)), r} }

var (
	human   = Result{}
	scanner = Result{Bot: true, BotType: Scanner}
	mpp     = Result{Bot: true, BotType: AppleMPP}
	prefet  = Result{Bot: true, BotType: Prefetch}
)

// proxies: mail providers' image proxies. A fetch through one is made when a
// human opens the message in that provider's webmail or app, so it counts as
// a human open with Proxy set.
var proxies = []uaRule{
	// Gmail: "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)".
	// Source: https://www.scientiamobile.com/what-is-google-image-proxy/ (WURFL reclassified it
	// from robot to email client) and https://www.mailgun.com/blog/product/bot-detection/.
	rule("GoogleImageProxy", Result{Proxy: Gmail}),
	rule("via ggpht.com", Result{Proxy: Gmail}),
	// Yahoo Mail: "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html".
	// Source: Yahoo's help article named in the UA itself, as catalogued at
	// https://botcrawl.com/bots/yahoomailproxy/; image caching described at
	// https://www.validity.com/how-yahoos-image-caching-will-impact-your-email-marketing-metrics/.
	rule("YahooMailProxy", Result{Proxy: Yahoo}),
	// Outlook / Office 365: deliberately no row. Outlook clients load remote
	// images directly from the recipient's device (no provider proxy), per
	// https://mailping.pro/research/email-privacy-ip-exposure-study; Outlook
	// desktop's own UA ("... Microsoft Outlook 16.0.xxxx; ms-office; MSOffice 16)",
	// https://github.com/shon/httpagentparser/issues/91) is a human open.
}

// scanners: machine fetchers. Security gateways that open mail on its way to
// the inbox, HTTP libraries and command-line tools (no mail client uses
// them), headless browsers and crawlers.
var scanners = []uaRule{
	// Secure email gateways. Source: "Bot clicks from security scanners: a field guide",
	// https://check.live-direct-marketing.online/blog/bot-clicks-security-scanners-detect
	// (Barracuda, Proofpoint, Mimecast, Trend Micro, Sophos UAs; SafeLinks and
	// URL Defense rewrite domains) and https://www.unmta.com/docs/bot-signatures
	// (security gateways matched by case-insensitive UA substring).
	rule("Barracuda", scanner),
	rule("Mimecast", scanner),
	rule("Proofpoint", scanner),
	rule("urldefense", scanner),
	rule("safelinks", scanner),
	rule("Symantec", scanner),
	rule("Sophos", scanner),
	rule("TrendMicro", scanner),
	rule("Trend Micro", scanner),
	rule("Zscaler", scanner),
	// Command-line tools and HTTP libraries: each names itself in its default UA
	// ("curl/8.5.0", "Wget/1.21.4", "python-requests/2.31.0", "Go-http-client/1.1",
	// "okhttp/4.12.0", "Java/17.0.2" — the defaults set by curl, GNU Wget,
	// Requests, Go's net/http, OkHttp and the JDK's HttpURLConnection).
	rule("curl/", scanner),
	rule("wget/", scanner),
	rule("python-requests", scanner),
	rule("python-urllib", scanner),
	rule("Go-http-client", scanner),
	rule("okhttp", scanner),
	rule("Java/", scanner),
	// Headless browsers: Chrome headless says "HeadlessChrome/..."
	// (https://github.com/fnando/browser/issues/562); PhantomJS says "PhantomJS/...".
	rule("HeadlessChrome", scanner),
	rule("PhantomJS", scanner),
	// Crawlers name themselves: "Googlebot/2.1; +http://www.google.com/bot.html",
	// "bingbot/2.0", "...spider", "...crawler" (https://developers.google.com/search/docs/crawling-indexing/overview-google-crawlers).
	rule("bot", scanner),
	rule("spider", scanner),
	rule("crawl", scanner),
}

// appleBuiltin is Apple's own 17.0.0.0/8, the egress of Mail Privacy
// Protection's relays (https://wordtothewise.com/2021/09/apple-mpp-reporting-and-geolocation/:
// MPP uses the iCloud Private Relay infrastructure; 17.0.0.0/8 as its common
// range per https://check.live-direct-marketing.online/blog/apple-mail-v16-click-reporting-changes).
// Private Relay's published egress list is far larger; load it with
// tracking.apple_ranges_file.
var appleBuiltin = netip.MustParsePrefix("17.0.0.0/8")

// mppUA is the generic user agent MPP's prefetch sends: "The User-Agent string
// returns as a generic `Mozilla/5.0` user-agent" (https://www.mailgun.com/blog/product/bot-detection/).
const mppUA = "Mozilla/5.0"

// purposeHeaders announce a speculative fetch. Sec-Purpose: prefetch is the
// Fetch standard's header (https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Sec-Purpose);
// Chrome sends the legacy "Purpose: prefetch" and Firefox sent "X-moz: prefetch"
// before Sec-Purpose (MDN browser-compat data for Sec-Purpose). X-Purpose is
// an older unstandardised spelling of Purpose; it is matched the same way but
// no current source documents who sends it.
var purposeHeaders = []string{"Sec-Purpose", "Purpose", "X-Purpose", "X-Moz"}

// Classifier holds the Apple ranges. The zero value knows only 17.0.0.0/8.
type Classifier struct {
	apple []netip.Prefix
}

// New returns a Classifier that also treats the extra prefixes as Apple MPP
// egress.
func New(extraApple []netip.Prefix) *Classifier {
	return &Classifier{apple: extraApple}
}

var std Classifier

// Classify classifies with the built-in rules only.
func Classify(r Request) Result { return std.Classify(r) }

// Classify applies the rules in order; the first match wins.
func (c *Classifier) Classify(r Request) Result {
	ua := strings.TrimSpace(r.UserAgent)
	var buf [512]byte
	lua := lower(buf[:0], ua)

	if res, ok := match(lua, proxies); ok {
		return res
	}
	if c.isApple(r.IP) || ua == mppUA {
		return mpp
	}
	if len(lua) == 0 {
		return scanner // no user agent at all: no mail client does that
	}
	if res, ok := match(lua, scanners); ok {
		return res
	}
	if purposePrefetch(r.Header) || withinWindow(r) {
		return prefet
	}
	return human
}

func match(lua []byte, rules []uaRule) (Result, bool) {
	for i := range rules {
		if bytes.Contains(lua, rules[i].needle) {
			return rules[i].result, true
		}
	}
	return Result{}, false
}

// lower appends the ASCII-lowercased s to dst (non-ASCII bytes kept as is).
func lower(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		dst = append(dst, b)
	}
	return dst
}

func (c *Classifier) isApple(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap()
	if appleBuiltin.Contains(ip) {
		return true
	}
	for _, p := range c.apple {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func purposePrefetch(h http.Header) bool {
	if h == nil {
		return false
	}
	for _, name := range purposeHeaders {
		for _, v := range h[name] {
			if containsFold(v, "prefetch") || containsFold(v, "preview") {
				return true
			}
		}
	}
	return false
}

// containsFold reports whether s contains the lowercase ASCII needle,
// ignoring case, without allocating.
func containsFold(s, needle string) bool {
	n := len(needle)
	for i := 0; i+n <= len(s); i++ {
		if strings.EqualFold(s[i:i+n], needle) {
			return true
		}
	}
	return false
}

func withinWindow(r Request) bool { return InPrefetchWindow(r.SentAt, r.Now, r.PrefetchWindow) }

// InPrefetchWindow reports whether a fetch at now came within window of the
// copy's delivery at sentAt (the last rule of Classify; window 0 means
// DefaultPrefetchWindow, negative disables). Gateways scan during or right
// after the upstream accepts the message, which can be a moment before the
// relay records SentAt, so the window counts both ways. A caller that must
// look SentAt up can classify without it first and apply this only to a
// plain human result.
func InPrefetchWindow(sentAt, now time.Time, window time.Duration) bool {
	if window == 0 {
		window = DefaultPrefetchWindow
	}
	if window < 0 || sentAt.IsZero() || now.IsZero() {
		return false
	}
	d := now.Sub(sentAt)
	return d > -window && d < window
}

// LoadRanges reads a tracking.apple_ranges_file (config.ParseRanges format:
// one CIDR or IP per line, '#' comments); errors name the key and the file.
func LoadRanges(path string) ([]netip.Prefix, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tracking.apple_ranges_file: %w", err)
	}
	defer f.Close()
	p, err := config.ParseRanges(f)
	if err != nil {
		return nil, fmt.Errorf("tracking.apple_ranges_file %s: %w", path, err)
	}
	return p, nil
}
