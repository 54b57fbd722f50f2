// Package ui is the web dashboard at /ui/: server-rendered pages of the
// sent copies, each copy's timeline, opens over time, the queue and the
// server's status, with a little JavaScript that keeps the page live over
// Server-Sent Events. Everything it serves is embedded in the binary; it
// asks no other host for anything (no CDN, no web fonts), and its
// Content-Security-Policy forbids inline script and style.
//
// Security: every page needs a session (see session.go); the session
// cookie is HttpOnly, SameSite=Strict and Secure over HTTPS; POSTs pass Go's
// cross-origin protection and carry the session's CSRF token; no key or
// session id ever appears in a URL after sign-in.
package ui

import (
	"bytes"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
)

// Store is what the dashboard reads. *store.Store implements it.
type Store interface {
	List(store.ListQuery) (store.ListPage, error)
	ByKey(key string) (store.Message, bool, error)
	Opens(store.OpenQuery) ([]store.Open, error)
	Clicks(store.ClickQuery) ([]store.Click, error)
	Events(id string) ([]store.Event, error)
	ActivityBetween(from, to time.Time) ([]store.Activity, error)
	Subscribe() *store.Subscription
}

// Status is what the status page shows; the server fills it in.
type Status struct {
	Version            string
	ConfigFile         string
	DataDir            string
	SMTPListen         string
	HTTPListen         string
	Upstream           string
	Accounts           []string // names of the configured accounts, when there are several
	TrackingKeyVersion int
	Queue              map[string]int
	Database           store.Stats
	ConfigProblem      string    // why the config in force is not the file's
	Webhooks           []Webhook // the [[webhooks]] endpoints
}

// Webhook is one webhook endpoint on the status page.
type Webhook struct {
	Name, URL, State, LastError string
	Backlog                     int
	LastSuccess                 time.Time
}

// Options configures the dashboard. Store, AdminKey and Status are
// required.
type Options struct {
	Store    Store
	AdminKey func() string
	Status   func() (Status, error)
	// Queue lists the copies waiting in the spool; nil shows none.
	Queue func() []record.QueueEntry
	// HTTPS reports whether a request reached the server over HTTPS
	// (directly, or through a trusted proxy): the cookie is then Secure.
	HTTPS func(*http.Request) bool
	Now   func() time.Time
	Log   *slog.Logger
}

// Handler serves /ui/.
type Handler struct {
	opt   Options
	log   *slog.Logger
	now   func() time.Time
	sess  *sessions
	fails loginLimiter
	cop   *http.CrossOriginProtection
	pages map[string]*template.Template

	closeOnce sync.Once
	closed    chan struct{} // Close: live streams end
}

// New returns the dashboard's handler. It panics when a required option is
// missing or a template does not parse (programming errors).
func New(opt Options) *Handler {
	if opt.Store == nil || opt.AdminKey == nil || opt.Status == nil {
		panic("ui.New: Store, AdminKey and Status are required")
	}
	h := &Handler{opt: opt, log: opt.Log, now: opt.Now, closed: make(chan struct{})}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.opt.Queue == nil {
		h.opt.Queue = func() []record.QueueEntry { return nil }
	}
	if h.opt.HTTPS == nil {
		h.opt.HTTPS = func(r *http.Request) bool { return r.TLS != nil }
	}
	h.sess = newSessions(h.now)
	h.cop = http.NewCrossOriginProtection()
	h.cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, http.StatusForbidden, "This request came from another site and was refused.")
	}))
	h.pages = parsePages()
	return h
}

// MintLogin makes a one-time sign-in token for /ui/login?token=, valid
// for LoginTTL (the admin API hands it to `pixelrelay dashboard`).
func (h *Handler) MintLogin() (token string, expires time.Time) {
	return h.sess.mintLogin()
}

// Close ends the live streams (call it when the server shuts down, so
// they do not hold the shutdown up).
func (h *Handler) Close() {
	h.closeOnce.Do(func() { close(h.closed) })
}

// contentSecurityPolicy allows only the dashboard's own files: no inline
// script or style, no other origin, no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// ServeHTTP routes /ui/*.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	p := r.URL.Path
	if strings.HasPrefix(p, "/ui/static/") {
		serveStatic(w, r)
		return
	}
	h.cop.Handler(http.HandlerFunc(h.route)).ServeHTTP(w, r)
}

// route dispatches the pages that need (or give) a session.
func (h *Handler) route(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	p := r.URL.Path
	switch p {
	case "/ui/login":
		h.login(w, r)
		return
	case "/ui":
		http.Redirect(w, r, "/ui/", http.StatusMovedPermanently)
		return
	}
	sess, id, ok := h.session(r)
	if !ok {
		h.needLogin(w, r)
		return
	}
	c := &call{h: h, w: w, r: r, sess: sess, sid: id}
	switch {
	case p == "/ui/":
		c.get(c.list)
	case strings.HasPrefix(p, "/ui/m/"):
		c.get(c.timeline)
	case p == "/ui/activity":
		c.get(c.activity)
	case p == "/ui/queue":
		c.get(c.queue)
	case p == "/ui/status":
		c.get(c.status)
	case p == "/ui/events":
		c.get(c.events)
	case p == "/ui/logout":
		c.logout()
	default:
		h.fail(w, r, http.StatusNotFound, "There is no such page.")
	}
}

// session returns the request's live session.
func (h *Handler) session(r *http.Request) (*session, string, bool) {
	ck, err := r.Cookie(CookieName)
	if err != nil {
		return nil, "", false
	}
	s, ok := h.sess.get(ck.Value)
	return s, ck.Value, ok
}

// needLogin sends a browser to the sign-in page; a script's fetch gets 401.
func (h *Handler) needLogin(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.Header.Get("X-Partial") == "" && r.URL.Path != "/ui/events" {
		http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
		return
	}
	http.Error(w, "sign in first: /ui/login", http.StatusUnauthorized)
}

// call is one signed-in request.
type call struct {
	h    *Handler
	w    http.ResponseWriter
	r    *http.Request
	sess *session
	sid  string
}

// get runs fn for GET and HEAD, else answers 405.
func (c *call) get(fn func()) {
	if c.r.Method != http.MethodGet && c.r.Method != http.MethodHead {
		c.w.Header().Set("Allow", "GET, HEAD")
		c.h.fail(c.w, c.r, http.StatusMethodNotAllowed, "This page only shows; it changes nothing.")
		return
	}
	fn()
}

// render writes a page: the whole document, or only its <main> when the
// page's script asks for a refresh (X-Partial).
func (h *Handler) render(w http.ResponseWriter, r *http.Request, code int, page string, data *pageData) {
	t := h.pages[page]
	name := "layout"
	if r.Header.Get("X-Partial") != "" {
		name = "main"
	}
	if data.TZ == "" {
		data.TZ = zoneName(r)
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, name, data); err != nil {
		h.log.Error("dashboard: rendering "+page, "err", err)
		http.Error(w, "the page could not be rendered (logged)", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(b.Bytes())
}

// fail shows an error page (or, for a script's fetch, the text).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if r.Header.Get("X-Partial") != "" || r.URL.Path == "/ui/events" {
		http.Error(w, msg, code)
		return
	}
	h.render(w, r, code, "error", &pageData{Title: http.StatusText(code), Error: msg})
}

// internal logs a failed read and shows an error page.
func (c *call) internal(what string, err error) {
	c.h.log.Error("dashboard: "+what, "err", err)
	c.h.fail(c.w, c.r, http.StatusInternalServerError, "Reading "+what+" failed: "+err.Error())
}
