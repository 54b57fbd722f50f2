package httpd

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"pixelrelay/config"
	"pixelrelay/tracker/classify"
	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
	"pixelrelay/tracker/token"
)

// Query limits, as CONTRACT.md.
const (
	DefaultLimit = 100
	MaxLimit     = 500
)

// Error texts of bad query parameters.
const (
	errSince     = "since: want RFC 3339 time, YYYY-MM-DD or a duration like 24h or 7d"
	errLimit     = "limit: want a whole number from 1 (values above 500 are capped)"
	errUnopened  = "unopened: want true or false"
	errOlderThan = "older_than: want a positive Go duration like 720h or a number of days like 90d"
	errID        = "id: want a tracking id, 16 letters and digits as /api/messages shows it"
)

// adminOnly answers 401 unless the request carries the admin key as a
// bearer token (and not in its URL).
func (s *Server) adminOnly(w http.ResponseWriter, r *http.Request) bool {
	if name, ok := keyInQuery(r); ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="pixelrelay"`)
		writeError(w, http.StatusUnauthorized, "the admin key is never taken from the URL (parameter "+name+"): URLs end up in logs; send Authorization: Bearer ADMIN_KEY")
		return false
	}
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="pixelrelay"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong admin key: send Authorization: Bearer ADMIN_KEY")
		return false
	}
	return true
}

// api authenticates and routes /api/*.
func (s *Server) api(w http.ResponseWriter, r *http.Request) {
	if !s.adminOnly(w, r) {
		return
	}
	type route struct {
		method string
		fn     func(http.ResponseWriter, *http.Request)
	}
	var rt route
	switch r.URL.Path {
	case "/api/opens":
		rt = route{http.MethodGet, s.apiOpens}
	case "/api/clicks":
		rt = route{http.MethodGet, s.apiClicks}
	case "/api/messages":
		rt = route{http.MethodGet, s.apiMessages}
	case "/api/status":
		rt = route{http.MethodGet, s.apiStatus}
	case "/api/queue":
		rt = route{http.MethodGet, s.apiQueue}
	case "/api/keys/rotate":
		rt = route{http.MethodPost, s.apiRotate}
	case "/api/purge":
		rt = route{http.MethodPost, s.apiPurge}
	case "/api/reclassify":
		rt = route{http.MethodPost, s.apiReclassify}
	case "/api/webhooks":
		rt = route{http.MethodGet, s.apiWebhooks}
	case "/api/webhooks/test":
		rt = route{http.MethodPost, s.apiWebhookTest}
	case "/api/dashboard/login":
		rt = route{http.MethodPost, s.apiDashboardLogin}
	default:
		if s.opt.AdminRoutes != nil {
			s.opt.AdminRoutes.ServeHTTP(w, r)
			return
		}
		writeError(w, http.StatusNotFound, "no such API route: "+r.URL.Path)
		return
	}
	if !allow(w, r, rt.method) {
		return
	}
	rt.fn(w, r)
}

// authorized reports whether the request carries the admin key as
// "Authorization: Bearer KEY". An empty admin key authorizes nobody.
func (s *Server) authorized(r *http.Request) bool {
	want := s.opt.Keys.AdminKey()
	auth := r.Header.Get("Authorization")
	scheme, got, ok := strings.Cut(auth, " ")
	if want == "" || !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return keyMatches(strings.TrimSpace(got), want)
}

// keyMatches compares a presented key with the admin key in constant time,
// also in their lengths: it compares their SHA-256 digests, so the time
// taken says nothing about how much of the key, or which length, was right.
func keyMatches(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// queryKeyNames are query parameters that look like an attempt to pass the
// admin key in the URL. Such a request is refused even with the right key
// (and even with a right Authorization header): a key in a URL leaks into
// logs, proxies and shell history.
var queryKeyNames = []string{"key", "admin_key", "adminkey", "api_key", "apikey", "token", "access_token", "auth", "authorization", "bearer", "password"}

// keyInQuery returns the first such parameter the request has, in any case.
func keyInQuery(r *http.Request) (string, bool) {
	if r.URL.RawQuery == "" {
		return "", false
	}
	for name := range r.URL.Query() {
		for _, k := range queryKeyNames {
			if strings.EqualFold(strings.TrimSpace(name), k) {
				return k, true
			}
		}
	}
	return "", false
}

func (s *Server) apiOpens(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	oq := store.OpenQuery{To: strings.TrimSpace(q.Get("to"))}
	var err error
	if oq.ID, err = trackingID(q); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if oq.Since, err = s.since(q); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if oq.Limit, err = limit(q); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	opens, err := s.opt.Store.Opens(oq)
	if err != nil {
		s.internal(w, "opens", err)
		return
	}
	if len(opens) == 0 && !s.knownID(w, oq.ID) {
		return
	}
	if opens == nil {
		opens = []store.Open{}
	}
	writeJSON(w, http.StatusOK, OpensResponse{Opens: opens})
}

func (s *Server) apiMessages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	mq := store.MessageQuery{To: strings.TrimSpace(q.Get("to"))}
	var err error
	if mq.ID, err = trackingID(q); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if mq.Since, err = s.since(q); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if mq.Limit, err = limit(q); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if v := q.Get("unopened"); v != "" {
		if mq.Unopened, err = strconv.ParseBool(v); err != nil {
			writeError(w, http.StatusBadRequest, errUnopened)
			return
		}
	}
	msgs, err := s.opt.Store.Messages(mq)
	if err != nil {
		s.internal(w, "messages", err)
		return
	}
	if len(msgs) == 0 && !s.knownID(w, mq.ID) {
		return
	}
	if msgs == nil {
		msgs = []store.Message{}
	}
	writeJSON(w, http.StatusOK, MessagesResponse{Messages: msgs})
}

func (s *Server) apiStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.status()
	if err != nil {
		s.internal(w, "status", err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// status assembles GET /api/status.
func (s *Server) status() (StatusResponse, error) {
	cfg := s.current().cfg
	db, err := s.opt.Store.Stats()
	if err != nil {
		return StatusResponse{}, err
	}
	httpListen := cfg.HTTP.Listen
	if a, ok := s.addr.Load().(string); ok && a != "" {
		httpListen = a
	}
	smtpListen := cfg.SMTP.Listen
	if s.opt.SMTPAddr != nil {
		if a := s.opt.SMTPAddr(); a != "" {
			smtpListen = a
		}
	}
	hooks, err := s.webhookStatus()
	if err != nil {
		return StatusResponse{}, err
	}
	counts := map[string]int{record.StatusQueued: 0, record.StatusDeferred: 0}
	entries := s.queue()
	for _, e := range entries {
		counts[e.Status]++
	}
	if d, ok := s.opt.Queue.(DamagedCounter); ok {
		counts[QueueDamaged] = d.Damaged()
	}
	note := ""
	if s.opt.ConfigNote != nil {
		note = s.opt.ConfigNote()
	}
	var remote any
	if s.opt.Remote != nil {
		remote = s.opt.Remote()
	}
	upstream := cfg.UpstreamRedacted()
	accounts := accountStatus(cfg, entries)
	if s.opt.Role == "tracker" {
		smtpListen, upstream, accounts = "", "", nil
	}
	var sent *SentFolderCounts
	if s.opt.SentFolder != nil && s.opt.Role != "tracker" {
		c := s.opt.SentFolder()
		sent = &c
	}
	return StatusResponse{
		SentFolder:         sent,
		Remote:             remote,
		Role:               s.opt.Role,
		Version:            s.opt.Version,
		ConfigFile:         cfg.Path,
		ConfigProblem:      note,
		DataDir:            cfg.DataDir,
		SMTPListen:         smtpListen,
		HTTPListen:         httpListen,
		Upstream:           upstream,
		TrackingKeyVersion: s.opt.Keys.Current(),
		Queue:              counts,
		Database:           db,
		Webhooks:           hooks,
		Accounts:           accounts,
	}, nil
}

// accountStatus describes each account, with its waiting copies.
func accountStatus(cfg *config.Config, entries []record.QueueEntry) []AccountStatus {
	var out []AccountStatus
	for _, a := range cfg.Accounts() {
		sent := "off"
		if a.SentFolderOn() {
			sent = "on"
		}
		out = append(out, AccountStatus{
			Name: a.Name, Upstream: config.RedactURL(a.URL), Senders: nonNil(a.Senders),
			SMTPUsers: nonNil(a.SMTPUsers), Auth: a.Auth, SentFolder: sent,
			Queue: map[string]int{record.StatusQueued: 0, record.StatusDeferred: 0},
		})
	}
	for _, e := range entries {
		for i := range out {
			if out[i].Name == e.Account || (e.Account == "" && i == 0) {
				out[i].Queue[e.Status]++
				break
			}
		}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *Server) queue() []record.QueueEntry {
	if s.opt.Queue == nil {
		return nil
	}
	return s.opt.Queue.Entries()
}

func (s *Server) apiQueue(w http.ResponseWriter, r *http.Request) {
	entries := s.queue()
	if entries == nil {
		entries = []record.QueueEntry{}
	}
	for i := range entries {
		if entries[i].Recipients == nil {
			entries[i].Recipients = []string{}
		}
	}
	writeJSON(w, http.StatusOK, QueueResponse{Queue: entries})
}

func (s *Server) apiRotate(w http.ResponseWriter, r *http.Request) {
	v, err := s.opt.Keys.Rotate()
	if err != nil {
		s.internal(w, "keys rotate", err)
		return
	}
	s.log.Info("tracking key rotated", "version", v)
	writeJSON(w, http.StatusOK, RotateResponse{Version: v})
}

func (s *Server) apiPurge(w http.ResponseWriter, r *http.Request) {
	age := s.retention()
	if v := r.URL.Query().Get("older_than"); v != "" {
		d, err := config.ParseDuration(v)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, errOlderThan)
			return
		}
		age = d
	}
	// A purge with compaction can outlast the server's timeouts: lift them
	// for this request (the client waits for the result).
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{})
	rc.SetReadDeadline(time.Time{})
	res, err := s.Purge(r.Context(), age)
	if errors.Is(err, ErrPurgeRunning) {
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	if err != nil {
		s.internal(w, "purge", err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// apiReclassify answers POST /api/reclassify?since=: the stored opens
// since WHEN (all without it) classified again with the rules, networks
// and windows in force.
func (s *Server) apiReclassify(w http.ResponseWriter, r *http.Request) {
	rc, ok := s.opt.Store.(Reclassifier)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this store cannot reclassify")
		return
	}
	since, err := s.since(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	d := s.current()
	window := d.cfg.Tracking.PrefetchWindow.D()
	if window == 0 {
		window = -1
	}
	judge := func(sentAt time.Time, fs []classify.Fetch) []classify.Result {
		return d.cls.Reclassify(sentAt, fs, window)
	}
	// A large database can take longer than the server's timeouts.
	ctl := http.NewResponseController(w)
	ctl.SetWriteDeadline(time.Time{})
	ctl.SetReadDeadline(time.Time{})
	res, err := rc.Reclassify(r.Context(), since, judge)
	if err != nil {
		s.internal(w, "reclassify", err)
		return
	}
	s.log.Info("reclassified opens", "since", since, "examined", res.Examined, "changed", res.Changed)
	writeJSON(w, http.StatusOK, res)
}

// since parses the "since" parameter ("" is the zero time: no filter). A
// time before 1970 is no filter; one past what the store's nanosecond
// timestamps reach (year 2262) is clamped to that end, so it matches
// nothing instead of wrapping around.
func (s *Server) since(q url.Values) (time.Time, error) {
	v := q.Get("since")
	if v == "" {
		return time.Time{}, nil
	}
	t, err := config.ParseWhen(v, s.now())
	if err != nil {
		return time.Time{}, errors.New(errSince)
	}
	switch {
	case t.Before(time.Unix(0, 0)):
		return time.Time{}, nil
	case t.After(maxSince):
		return maxSince, nil
	}
	return t.UTC(), nil
}

// maxSince is the latest time the store can compare with.
var maxSince = time.Unix(0, math.MaxInt64).UTC()

// knownID reports whether a query for id ("" for no id) may answer an
// empty list: with an id no copy has, it answers 404 (a mistyped id is an
// error, not "no opens yet") and reports false.
func (s *Server) knownID(w http.ResponseWriter, id string) bool {
	if id == "" {
		return true
	}
	_, ok, err := s.opt.Store.Copy(id)
	if err != nil {
		s.internal(w, "copy lookup", err)
		return false
	}
	if !ok {
		writeError(w, http.StatusNotFound, "no tracked copy has the id "+id)
		return false
	}
	return true
}

// trackingID parses the "id" parameter: "" (no filter) or a tracking id
// in any case, returned lowercase.
func trackingID(q url.Values) (string, error) {
	id := strings.ToLower(strings.TrimSpace(q.Get("id")))
	if id != "" && !token.ValidID(id) {
		return "", errors.New(errID)
	}
	return id, nil
}

// limit parses the "limit" parameter: default 100, capped at 500.
func limit(q url.Values) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && errors.Is(ne.Err, strconv.ErrRange) && !strings.HasPrefix(strings.TrimSpace(v), "-") {
			return MaxLimit, nil
		}
		return 0, errors.New(errLimit)
	}
	if n < 1 {
		return 0, errors.New(errLimit)
	}
	return min(n, MaxLimit), nil
}

// internal answers 500 and logs the cause.
func (s *Server) internal(w http.ResponseWriter, what string, err error) {
	s.log.Error("admin API: "+what+" failed", "err", err)
	writeError(w, http.StatusInternalServerError, fmt.Sprintf("%s: %v", what, err))
}

// allow answers 405 with an Allow header unless r uses one of methods.
func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use "+strings.Join(methods, " or "))
	return false
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // Message-IDs and addresses keep their <>
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, ErrorResponse{Error: msg})
}

// metrics answers GET /metrics: the Prometheus text format, with the admin
// key as for /api/*.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.opt.Metrics == nil {
		http.NotFound(w, r)
		return
	}
	if !s.adminOnly(w, r) || !allow(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	s.opt.Metrics.Handler().ServeHTTP(w, r)
}
