package httpd

import (
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"pixelrelay/tracker/classify"
	"pixelrelay/tracker/store"
)

// gif is a 1x1 transparent GIF89a, 43 bytes: header, logical screen of 1x1
// with a 2-colour global table (black, white), a graphic control extension
// marking colour 0 transparent, one 1x1 image, trailer.
var gif = []byte{
	'G', 'I', 'F', '8', '9', 'a', // header
	0x01, 0x00, 0x01, 0x00, // 1x1
	0x80, 0x00, 0x00, // global colour table, 2 entries; background 0; aspect 0
	0x00, 0x00, 0x00, 0xff, 0xff, 0xff, // colour table
	0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, // GCE: transparent, index 0
	0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, // image descriptor
	0x02, 0x02, 0x44, 0x01, 0x00, // LZW min code 2; one 2-byte block; end
	0x3b, // trailer
}

// Response headers of the pixel, prebuilt: the handler assigns these slices
// to the header map and never modifies them.
var (
	hdrGIF     = []string{"image/gif"}
	hdrLen     = []string{"43"}
	hdrCache   = []string{"no-store, no-cache, must-revalidate, private"}
	hdrPragma  = []string{"no-cache"}
	hdrExpires = []string{"0"}
)

// maxTokenLen is CONTRACT.md's bound on a token's length.
const maxTokenLen = 64

// pixel answers /o/TOKEN.gif: always the pixel, whatever the token. Only a
// genuine token of a known copy, fetched with GET, is recorded, after the
// pixel has been flushed to the client (before it, with CommitFirst).
func (s *Server) pixel(w http.ResponseWriter, r *http.Request) {
	if s.pixelDone != nil {
		defer s.pixelDone()
	}
	if !allow(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	h := w.Header()
	h["Content-Type"] = hdrGIF
	h["Content-Length"] = hdrLen
	h["Cache-Control"] = hdrCache
	h["Pragma"] = hdrPragma
	h["Expires"] = hdrExpires
	if s.opt.CommitFirst && r.Method == http.MethodGet {
		if id, ok := s.genuine(r); ok {
			s.record(r, id) // committed before the answer
		}
		w.WriteHeader(http.StatusOK)
		w.Write(gif)
		return
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		s.opt.Metrics.PixelHead()
		s.noteHead(r)
		return
	}
	w.Write(gif)
	id, ok := s.genuine(r)
	if !ok {
		return
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	s.record(r, id)
}

// genuine returns the tracking id of the request's token, counting forged
// and damaged ones.
func (s *Server) genuine(r *http.Request) (string, bool) {
	tok, ok := tokenOf(r.URL.Path)
	if !ok {
		s.opt.Metrics.PixelForged()
		return "", false
	}
	id, ok := s.opt.Keys.Verify(tok)
	if !ok {
		s.opt.Metrics.PixelForged()
		return "", false
	}
	return id, true
}

// noteHead remembers a HEAD for a genuine pixel: nothing is recorded
// (CONTRACT.md), but a GET that follows from the same client is a
// scanner's.
func (s *Server) noteHead(r *http.Request) {
	tok, ok := tokenOf(r.URL.Path)
	if !ok {
		return
	}
	if id, ok := s.opt.Keys.Verify(tok); ok {
		s.recent.noteHead(id, clientOf(r, s.current().trusted).ip, r.UserAgent(), s.now().UTC())
	}
}

// tokenOf extracts TOKEN from "/o/TOKEN.gif" (".gif" in any case).
func tokenOf(path string) (string, bool) {
	name := path[len("/o/"):]
	if len(name) <= 4 || !strings.EqualFold(name[len(name)-4:], ".gif") {
		return "", false
	}
	tok := name[:len(name)-4]
	if len(tok) > maxTokenLen || strings.IndexByte(tok, '/') >= 0 {
		return "", false
	}
	return tok, true
}

// record classifies and stores one genuine fetch: enqueued to the store's
// batch writer when it has one, else recorded synchronously. The copy is
// looked up (a read transaction) only when the fetch would otherwise be a
// plain human open: its delivery time decides the prefetch and burst
// rules. Errors are counted and logged (rate-limited); they never change
// the answer, which is already sent.
func (s *Server) record(r *http.Request, id string) {
	d := s.current()
	now := s.now().UTC()
	cl := clientOf(r, d.trusted)
	ua := r.UserAgent()
	window := d.cfg.Tracking.PrefetchWindow.D()
	if window == 0 {
		window = -1 // tracking.prefetch_window = 0 turns the rule off
	}
	res := d.cls.Classify(classify.Request{UserAgent: ua, IP: cl.ip, Header: r.Header, Now: now, PrefetchWindow: window,
		Self: s.isSelf(d, cl.ip, now), HeadFirst: s.recent.headFirst(id, cl.ip, ua, now)})
	if res.Reason == classify.ReasonHuman && !s.settled.has(id) {
		c, found, err := s.opt.Store.Copy(id)
		if err != nil {
			s.recordError(err)
			return
		}
		switch {
		case !found && !s.opt.KeepUnknown:
			return // a genuine token of a purged or unknown copy
		case !found:
			// Not registered yet (a public tracker): the store keeps it
			// and judges it again with the delivery time when it is.
		case classify.InPrefetchWindow(c.SentAt, now, window):
			res = classify.WindowResult(window)
		case !c.SentAt.IsZero() && now.Sub(c.SentAt) > max(window, maxPrefetchWindow):
			s.settled.add(id)
		}
		res = s.recent.burst(id, res, c.SentAt, now, cl.ip)
	}
	hit := store.Hit{
		TrackingID: id,
		At:         now,
		IP:         cl.ip.String(),
		UserAgent:  ua,
		Bot:        res.Bot,
		BotType:    res.BotType,
		Proxy:      res.Proxy,
		Reason:     res.Reason,
		Country:    cl.country,
		City:       cl.city,
	}
	var err error
	if s.enq != nil {
		err = s.enq.Enqueue(hit) // commit errors are counted in Stats().Dropped
	} else {
		_, err = s.opt.Store.Record(hit)
	}
	if err != nil {
		s.recordError(err)
	}
	if s.log.Enabled(r.Context(), slog.LevelDebug) {
		s.log.Debug("open", "id", id, "ip", hit.IP, "bot_type", res.BotType, "proxy", res.Proxy, "reason", res.Reason, "err", err)
	}
}

// isSelf reports a fetch from an address that submitted mail through the
// relay within tracking.self_window, when the relay listens off loopback
// (on loopback every submitter is this machine).
func (s *Server) isSelf(d *derived, ip netip.Addr, now time.Time) bool {
	if s.opt.Senders == nil || !d.selfOn {
		return false
	}
	return s.opt.Senders.Seen(ip, now, d.cfg.Tracking.SelfWindow.D())
}

// client is where a request came from, as far as it can be believed.
type client struct {
	ip            netip.Addr
	country, city string // only from a trusted proxy
}

// maxGeoLen bounds CF-IPCountry / CF-IPCity values stored with an open.
const maxGeoLen = 64

// clientOf returns the client's address: the peer's, unless the peer is a
// trusted proxy; then the right-most X-Forwarded-For hop that is not a
// trusted proxy, else CF-Connecting-IP. Location headers are believed only
// from a trusted proxy.
func clientOf(r *http.Request, trusted []netip.Prefix) client {
	peer := peerAddr(r.RemoteAddr)
	if !inPrefixes(peer, trusted) {
		return client{ip: peer}
	}
	cl := client{ip: peer}
	if ip, ok := forwardedFor(r.Header["X-Forwarded-For"], trusted); ok {
		cl.ip = ip
	} else if ip, ok := parseHop(r.Header.Get("Cf-Connecting-Ip")); ok {
		cl.ip = ip
	}
	cl.country = clip(r.Header.Get("Cf-Ipcountry"))
	cl.city = clip(r.Header.Get("Cf-Ipcity"))
	return cl
}

// forwardedFor walks X-Forwarded-For from the right (the hop the trusted
// peer added last) and returns the first hop that is not a trusted proxy.
// When every hop is trusted, the left-most is the client. An unparsable hop
// ends the walk: what is left of it cannot be believed, so the last trusted
// hop seen is returned.
func forwardedFor(lines []string, trusted []netip.Prefix) (netip.Addr, bool) {
	var last netip.Addr
	for i := len(lines) - 1; i >= 0; i-- {
		rest := lines[i]
		for rest != "" {
			hop := rest
			if j := strings.LastIndexByte(rest, ','); j >= 0 {
				hop, rest = rest[j+1:], rest[:j]
			} else {
				rest = ""
			}
			hop = strings.TrimSpace(hop)
			if hop == "" {
				continue
			}
			ip, ok := parseHop(hop)
			if !ok {
				return last, last.IsValid()
			}
			if !inPrefixes(ip, trusted) {
				return ip, true
			}
			last = ip
		}
	}
	return last, last.IsValid()
}

// parseHop parses "1.2.3.4", "1.2.3.4:5678", "2001:db8::1" or "[2001:db8::1]:80".
func parseHop(s string) (netip.Addr, bool) {
	if s == "" {
		return netip.Addr{}, false
	}
	if ip, err := netip.ParseAddr(s); err == nil {
		return ip.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}

// peerAddr parses http.Request.RemoteAddr ("ip:port").
func peerAddr(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	ip, _ := parseHop(remote)
	return ip
}

func inPrefixes(ip netip.Addr, ps []netip.Prefix) bool {
	if !ip.IsValid() {
		return false
	}
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func clip(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > maxGeoLen {
		s = strings.ToValidUTF8(s[:maxGeoLen], "")
	}
	return s
}

// maxPrefetchWindow: a copy delivered longer ago than this is past any
// sensible tracking.prefetch_window, so its later opens need no lookup.
const maxPrefetchWindow = time.Hour

// settledSet remembers tracking ids whose copy was delivered long ago
// (SentAt never changes once set), so repeated opens of the same copy skip
// the read transaction. It is bounded: when full it starts over.
type settledSet struct {
	mu sync.Mutex
	m  map[string]struct{}
}

const maxSettled = 1 << 16

func (c *settledSet) has(id string) bool {
	c.mu.Lock()
	_, ok := c.m[id]
	c.mu.Unlock()
	return ok
}

func (c *settledSet) add(id string) {
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxSettled {
		c.m = make(map[string]struct{}, 1024)
	}
	c.m[id] = struct{}{}
	c.mu.Unlock()
}
