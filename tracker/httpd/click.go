package httpd

import (
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"pixelrelay/tracker/classify"
	"pixelrelay/tracker/store"
)

// LinkVerifier is implemented by Keys that verify link tokens
// (*token.Keyring does); without it every click URL gets the neutral page.
type LinkVerifier interface {
	VerifyLink(token string) (trackingID string, link int, ok bool)
}

// ClickStore is implemented by a Store that keeps links and clicks
// (*store.Store does); without it every click URL gets the neutral page
// and /api/clicks answers 501.
type ClickStore interface {
	LinkOf(trackingID string, link int) (url string, sentAt time.Time, found bool, err error)
	RecordClick(store.ClickHit) (stored bool, err error)
	Clicks(store.ClickQuery) ([]store.Click, error)
}

// ClickEnqueuer is implemented by a ClickStore that can take a click
// without waiting for its commit.
type ClickEnqueuer interface {
	EnqueueClick(store.ClickHit) error
}

// notFoundPage is the neutral page of a click URL that leads nowhere (an
// unknown, forged or damaged token) and of the honeypot. It says nothing
// about the request and never redirects.
var notFoundPage = []byte("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><meta name=\"robots\" content=\"noindex\">" +
	"<title>Link not available</title></head><body><p>This link is not available.</p></body></html>\n")

var (
	hdrHTML     = []string{"text/html; charset=utf-8"}
	hdrNoStore  = []string{"no-store"}
	hdrNoRef    = []string{"no-referrer"}
	hdrNoSniff  = []string{"nosniff"}
	hdrZeroLen  = []string{"0"}
	hdrPageLen  = []string{strconv.Itoa(len(notFoundPage))}
	hdrNoFollow = []string{"noindex, nofollow"}
)

// click answers /c/TOKEN: a genuine link token of a known link is
// redirected (302, Cache-Control: no-store) to exactly the URL the
// message had, which the store keeps (the token only names copy and
// link); anything else gets notFoundPage (404), and the honeypot (link 0)
// the same page with 200. A GET is then classified and recorded; a HEAD
// records nothing (a GET after it from the same client is a scanner's).
// The Referer of the page the reader lands on is not this URL
// (Referrer-Policy: no-referrer): the token stays between the reader and
// the tracker.
func (s *Server) click(w http.ResponseWriter, r *http.Request) {
	if s.clickDone != nil {
		defer s.clickDone()
	}
	if !allow(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	id, link, url, sentAt, ok := s.resolveClick(r.URL.Path)
	if ok && r.Method == http.MethodHead {
		s.opt.Metrics.ClickHead()
	}
	first := ok && s.opt.CommitFirst && r.Method == http.MethodGet
	if first {
		s.recordClick(r, id, link, sentAt) // committed before the answer
	}
	h := w.Header()
	h["Cache-Control"] = hdrNoStore
	h["Referrer-Policy"] = hdrNoRef
	h["X-Robots-Tag"] = hdrNoFollow
	switch {
	case ok && link > 0:
		h["Location"] = []string{url}
		h["Content-Length"] = hdrZeroLen
		w.WriteHeader(http.StatusFound)
	default:
		h["Content-Type"] = hdrHTML
		h["Content-Length"] = hdrPageLen
		h["X-Content-Type-Options"] = hdrNoSniff
		code := http.StatusNotFound
		if ok {
			code = http.StatusOK // the honeypot: a page like any other
		}
		w.WriteHeader(code)
		if r.Method != http.MethodHead {
			w.Write(notFoundPage)
		}
	}
	if !ok || first {
		return
	}
	if r.Method == http.MethodHead {
		s.recent.noteHead(clickKey(id), clientOf(r, s.current().trusted).ip, r.UserAgent(), s.now().UTC())
		return
	}
	if f, okf := w.(http.Flusher); okf {
		f.Flush()
	}
	s.recordClick(r, id, link, sentAt)
}

// resolveClick finds what the click URL path names: the copy, its link
// and the link's URL, when the token is genuine and the store knows the
// link (for the honeypot, link 0, url is ""). It counts the requests that
// end here: forged tokens, unknown links, store errors.
func (s *Server) resolveClick(path string) (id string, link int, url string, sentAt time.Time, ok bool) {
	tok := path[len("/c/"):]
	lv, okv := s.opt.Keys.(LinkVerifier)
	cs, okc := s.opt.Store.(ClickStore)
	if !okv || !okc || tok == "" || len(tok) > maxTokenLen || strings.IndexByte(tok, '/') >= 0 {
		s.opt.Metrics.ClickForged()
		return "", 0, "", time.Time{}, false
	}
	id, link, ok = lv.VerifyLink(tok)
	if !ok {
		s.opt.Metrics.ClickForged()
		return "", 0, "", time.Time{}, false
	}
	url, sentAt, found, err := cs.LinkOf(id, link)
	switch {
	case err != nil:
		s.recordError(err)
		s.opt.Metrics.Click("failed", "")
	case !found:
		s.opt.Metrics.Click("unknown", "")
	}
	return id, link, url, sentAt, found && err == nil
}

// clickKey is the recentSet key of a copy's click URLs (its pixel's is
// the tracking id).
func clickKey(id string) string { return "c/" + id }

// recordClick classifies a genuine GET of a click URL with the open rules
// (the store applies the click rules) and stores it.
func (s *Server) recordClick(r *http.Request, id string, link int, sentAt time.Time) {
	d := s.current()
	now := s.now().UTC()
	cl := clientOf(r, d.trusted)
	ua := r.UserAgent()
	window := d.cfg.Tracking.PrefetchWindow.D()
	if window == 0 {
		window = -1 // tracking.prefetch_window = 0 turns the rule off
	}
	res := d.cls.Classify(classify.Request{UserAgent: ua, IP: cl.ip, Header: r.Header, Now: now, SentAt: sentAt,
		PrefetchWindow: window, Self: s.isSelf(d, cl.ip, now), HeadFirst: s.recent.headFirst(clickKey(id), cl.ip, ua, now)})
	if res.Reason == classify.ReasonHuman {
		res = s.recent.burst(clickKey(id), res, sentAt, now, cl.ip)
	}
	if res.Proxy != "" {
		res = classify.Result{Reason: res.Reason} // no image proxy follows links: a person's click
	}
	hit := store.ClickHit{TrackingID: id, Link: link, At: now, IP: cl.ip.String(), UserAgent: ua,
		Bot: res.Bot, BotType: res.BotType, Reason: res.Reason, Country: cl.country, City: cl.city}
	var err error
	if e, ok := s.opt.Store.(ClickEnqueuer); ok && s.enq != nil {
		err = e.EnqueueClick(hit)
	} else {
		_, err = s.opt.Store.(ClickStore).RecordClick(hit)
	}
	if err != nil {
		s.recordError(err)
	}
	if s.log.Enabled(r.Context(), slog.LevelDebug) {
		s.log.Debug("click", "id", id, "link", link, "ip", hit.IP, "bot_type", res.BotType, "reason", res.Reason, "err", err)
	}
}

// apiClicks answers GET /api/clicks?id=&to=&since=&limit=, as /api/opens.
func (s *Server) apiClicks(w http.ResponseWriter, r *http.Request) {
	cs, ok := s.opt.Store.(ClickStore)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this store keeps no clicks")
		return
	}
	q := r.URL.Query()
	cq := store.ClickQuery{To: strings.TrimSpace(q.Get("to"))}
	var err error
	if cq.ID, err = trackingID(q); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if cq.Since, err = s.since(q); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if cq.Limit, err = limit(q); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	clicks, err := cs.Clicks(cq)
	if err != nil {
		s.internal(w, "clicks", err)
		return
	}
	if len(clicks) == 0 && !s.knownID(w, cq.ID) {
		return
	}
	if clicks == nil {
		clicks = []store.Click{}
	}
	writeJSON(w, http.StatusOK, ClicksResponse{Clicks: clicks})
}
