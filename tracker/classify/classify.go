// Package classify decides whether a pixel fetch is a human open, a mail
// provider's image proxy acting for a human, or a machine (Apple Mail Privacy
// Protection, a security scanner, a prefetch, the sender's own view), and
// says which rule decided (Result.Reason).
//
// The rules are one ordered list (Classify, and the table in README.md),
// each citing its source; the first that matches wins:
//
//  1. provider image proxy (user agent)      -> human, Result.Proxy set
//  2. self: the address submitted mail here   -> bot "self"
//  3. Gmail's prefetch user agent             -> bot "prefetch"
//  4. machine network (networks.txt and tracking.networks_file, longest
//     prefix wins): Exchange Online Protection, secure email gateways,
//     Apple's Private Relay egress (MPP: only with Apple Mail's user agent)
//  5. the bare "Mozilla/5.0" user agent       -> bot "apple_mpp"
//  6. no user agent, or a scanner / library / crawler user agent -> "scanner"
//  7. HEAD before GET from the same client    -> "scanner"
//  8. Sec-Purpose/Purpose/X-Purpose/X-Moz prefetch headers -> "prefetch"
//  9. within PrefetchWindow of delivery       -> "prefetch"
//  10. several networks within BurstWindow of delivery -> "scanner"
//
// Classify does no regex work and lowercases the user agent once, into a
// stack buffer; every reason string is built in advance, so it does not
// allocate for ordinary user agents.
package classify

import (
	"bytes"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"pixelrelay/config"
)

// Bot types, as CONTRACT.md's OPEN.bot_type.
const (
	AppleMPP = "apple_mpp"
	Scanner  = "scanner"
	Prefetch = "prefetch"
	// Self is a fetch by the sender: from an address that submitted mail
	// through the relay within tracking.self_window.
	Self = "self"
)

// Proxy names, as CONTRACT.md's OPEN.proxy.
const (
	Gmail = "gmail"
	Yahoo = "yahoo"
)

// DefaultPrefetchWindow is used when Request.PrefetchWindow is zero.
const DefaultPrefetchWindow = 10 * time.Second

// Burst rule: a copy fetched from BurstNetworks distinct networks (/24 for
// IPv4, /48 for IPv6) within BurstWindow of its delivery is being scanned.
// A person opens a copy from one or two places (phone and laptop); a
// gateway cluster or a chain of scanners fetches from several at once.
const (
	BurstNetworks = 3
	BurstWindow   = 2 * time.Minute
)

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
	// Self: the address submitted mail through the relay recently.
	Self bool
	// HeadFirst: the same client sent HEAD for this pixel shortly before.
	HeadFirst bool
	// Networks is how many distinct networks (NetKey) fetched this copy
	// within BurstWindow of SentAt, counting this fetch; 0 when unknown.
	Networks int
}

// Result is the verdict. Bot false and Proxy "" is a plain human open.
type Result struct {
	Bot     bool
	BotType string // "" for humans
	Proxy   string // the provider whose image proxy fetched it, "" if none
	Reason  string // the rule that decided
}

// IsHuman reports a plain human open (no proxy).
func (r Result) IsHuman() bool { return !r.Bot && r.Proxy == "" }

// Reasons that do not depend on the request.
const (
	ReasonHuman      = "no machine signature"
	ReasonSelf       = "self: the address submitted mail through this relay"
	ReasonNoUA       = "no user agent"
	ReasonBareUA     = "user agent: bare Mozilla/5.0 (Apple MPP)"
	ReasonHeadFirst  = "HEAD request before GET (mail clients never send HEAD)"
	ReasonGmailFetch = "user agent: Gmail prefetch (Chrome/42 Edge/12.246 Mozilla/5.0)"
)

// uaRule is one case-insensitive substring signature of the User-Agent.
type uaRule struct {
	needle []byte // lowercase
	result Result
}

func rule(needle string, r Result) uaRule {
	r.Reason = "user agent: " + needle
	return uaRule{[]byte(strings.ToLower(needle)), r}
}

var (
	human   = Result{Reason: ReasonHuman}
	scanner = Result{Bot: true, BotType: Scanner}
	prefet  = Result{Bot: true, BotType: Prefetch}
)

// proxies: mail providers' image proxies. A fetch through one is made when a
// human opens the message in that provider's webmail or app, so it counts as
// a human open with Proxy set, whatever network it comes from.
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

// gmailPrefetchUA is the user agent of Gmail's fetch at delivery for
// recipients with an active session, from Google's networks: SparkPost's
// 2022 measurements, filtered by Mautic (https://github.com/mautic/mautic/pull/10245).
// It is a machine whenever it comes. A real EdgeHTML 12 browser sends the
// same string without the trailing " Mozilla/5.0".
const gmailPrefetchUA = "mozilla/5.0 (windows nt 10.0; win64; x64) applewebkit/537.36 (khtml, like gecko) chrome/42.0.2311.135 safari/537.36 edge/12.246 mozilla/5.0"

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
// It is a line of networks.txt too; tracking.apple_ranges_file adds more.
const appleSource = "Apple tracking.apple_ranges_file"

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

// purposeReasons[i] is the reason of purposeHeaders[i].
var purposeReasons = func() []string {
	out := make([]string, len(purposeHeaders))
	for i, h := range purposeHeaders {
		out[i] = "header: " + h + " prefetch"
	}
	return out
}()

// Classifier holds the network table. The zero value knows no networks;
// Default and New include the built-in table.
type Classifier struct {
	nets *table
}

var builtin = sync.OnceValue(BuiltinNetworks)

// New returns a Classifier with the built-in networks, then extra (a
// tracking.networks_file, Apple ranges): an extra line with the same prefix
// replaces the built-in one, a more specific one wins inside it.
func New(extra []Network) *Classifier {
	b := builtin()
	all := make([]Network, 0, len(b)+len(extra))
	all = append(append(all, b...), extra...)
	return &Classifier{nets: newTable(all)}
}

// AppleNetworks turns tracking.apple_ranges_file prefixes into networks.
func AppleNetworks(ps []netip.Prefix) []Network {
	out := make([]Network, len(ps))
	for i, p := range ps {
		out[i] = Network{Prefix: p.Masked(), Class: AppleMPP, Source: appleSource}
	}
	return out
}

var std = sync.OnceValue(func() *Classifier { return New(nil) })

// Default returns the classifier with the built-in table only.
func Default() *Classifier { return std() }

// Classify classifies with the built-in rules and table.
func Classify(r Request) Result { return std().Classify(r) }

// Networks returns how many entries the classifier's table holds.
func (c *Classifier) Networks() int { return c.nets.size() }

// Classify applies the rules in order; the first match wins.
func (c *Classifier) Classify(r Request) Result {
	ua := strings.TrimSpace(r.UserAgent)
	var buf [512]byte
	lua := lower(buf[:0], ua)

	if res, ok := match(lua, proxies); ok {
		return res
	}
	if r.Self {
		return Result{Bot: true, BotType: Self, Reason: ReasonSelf}
	}
	if string(lua) == gmailPrefetchUA {
		return Result{Bot: true, BotType: Prefetch, Reason: ReasonGmailFetch}
	}
	if res, ok := c.network(r.IP, lua); ok {
		return res
	}
	if ua == mppUA {
		return Result{Bot: true, BotType: AppleMPP, Reason: ReasonBareUA}
	}
	if len(lua) == 0 {
		return Result{Bot: true, BotType: Scanner, Reason: ReasonNoUA}
	}
	if res, ok := match(lua, scanners); ok {
		return res
	}
	if r.HeadFirst {
		return Result{Bot: true, BotType: Scanner, Reason: ReasonHeadFirst}
	}
	if i := purposePrefetch(r.Header); i >= 0 {
		return Result{Bot: true, BotType: Prefetch, Reason: purposeReasons[i]}
	}
	if w, ok := windowOf(r); ok {
		return Result{Bot: true, BotType: Prefetch, Reason: windowReason(w)}
	}
	if r.Networks >= BurstNetworks && !r.SentAt.IsZero() && !r.Now.IsZero() && r.Now.Sub(r.SentAt) < BurstWindow {
		return Result{Bot: true, BotType: Scanner, Reason: burstReason(r.Networks)}
	}
	return human
}

// network applies the network table. A machine class decides, except in
// Apple's egress ranges, where only Apple Mail's own user agents are MPP
// ("... AppleWebKit/605.1.15 (KHTML, like Gecko)" on a Mac, iPhone or iPad,
// with no Safari token, or the bare Mozilla/5.0): Private Relay also
// carries Safari browsing, and parts of the ranges are shared with other
// services of the same providers, where any other client is a person.
func (c *Classifier) network(ip netip.Addr, lua []byte) (Result, bool) {
	h, ok := c.nets.lookup(ip)
	if !ok || h.class == ClassHuman {
		return Result{}, false
	}
	if h.class == AppleMPP && !appleMailUA(lua) {
		return Result{}, false
	}
	return Result{Bot: true, BotType: h.class, Reason: h.reason}, true
}

// appleMailUA reports Apple Mail's user agent (or MPP's bare one).
func appleMailUA(lua []byte) bool {
	if string(lua) == "mozilla/5.0" {
		return true
	}
	if !bytes.Contains(lua, []byte("applewebkit/")) || bytes.Contains(lua, []byte("safari/")) {
		return false
	}
	return bytes.Contains(lua, []byte("macintosh")) || bytes.Contains(lua, []byte("iphone")) || bytes.Contains(lua, []byte("ipad"))
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

// purposePrefetch returns the index of the purpose header announcing a
// prefetch or preview, or -1.
func purposePrefetch(h http.Header) int {
	if h == nil {
		return -1
	}
	for i, name := range purposeHeaders {
		for _, v := range h[name] {
			if containsFold(v, "prefetch") || containsFold(v, "preview") {
				return i
			}
		}
	}
	return -1
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

// windowOf returns the prefetch window that r falls in.
func windowOf(r Request) (time.Duration, bool) {
	w := r.PrefetchWindow
	if w == 0 {
		w = DefaultPrefetchWindow
	}
	return w, InPrefetchWindow(r.SentAt, r.Now, r.PrefetchWindow)
}

var defaultWindowReason = "within " + DefaultPrefetchWindow.String() + " of delivery"

// WindowReason is the reason of the prefetch-window rule.
func windowReason(w time.Duration) string {
	if w == DefaultPrefetchWindow {
		return defaultWindowReason
	}
	return "within " + w.String() + " of delivery"
}

func burstReason(n int) string {
	return fmt.Sprintf("fetched from %d networks within %s of delivery", n, BurstWindow)
}

// InPrefetchWindow reports whether a fetch at now came within window of the
// copy's delivery at sentAt (window 0 means DefaultPrefetchWindow, negative
// disables). Gateways scan during or right after the upstream accepts the
// message, which can be a moment before the relay records SentAt, so the
// window counts both ways. A caller that must look SentAt up can classify
// without it first and apply this only to a plain human result.
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

// WindowResult is the verdict of the prefetch-window rule (for a caller
// applying InPrefetchWindow itself).
func WindowResult(window time.Duration) Result {
	if window <= 0 {
		window = DefaultPrefetchWindow
	}
	return Result{Bot: true, BotType: Prefetch, Reason: windowReason(window)}
}

// BurstResult is the verdict of the burst rule for n networks.
func BurstResult(n int) Result {
	return Result{Bot: true, BotType: Scanner, Reason: burstReason(n)}
}

// NetKey is the network an address counts as for the burst rule: its /24
// (IPv4) or /48 (IPv6).
func NetKey(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	bits := 48
	if ip.Is4() {
		bits = 24
	}
	p, _ := ip.Prefix(bits)
	return p
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
