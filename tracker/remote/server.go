package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
	"pixelrelay/tracker/token"
)

// TrackerStore is what the relay API needs of the tracker's store.
// *store.Store implements it.
type TrackerStore interface {
	Register(relay string, copies []record.Copy) (store.RegisterResult, error)
	RelayFeed(relay string, limit int) ([]store.FeedOpen, error)
	AckRelayFeed(relay string, seqs []uint64) (int, error)
	Subscribe() *store.Subscription
}

// TrackerKeys is what the relay API needs of the tracker's keyring.
// *token.Keyring implements it.
type TrackerKeys interface {
	RelayOf(secret string) (name string, ok bool)
	Export() (current int, keys []token.Key, err error)
	Rotate() (int, error)
	Current() int
}

// Handler serves the relay API (/relay/v1/...) on a public tracker.
type Handler struct {
	Store TrackerStore
	Keys  TrackerKeys
	Log   *slog.Logger     // nil: slog.Default()
	Now   func() time.Time // nil: time.Now

	stopOnce sync.Once
	stop     chan struct{}
	mu       sync.Mutex
}

// Shutdown ends the long polls in progress (they answer at once) and
// those that come later: call it before shutting the HTTP server down,
// which waits for requests in flight.
func (h *Handler) Shutdown() {
	h.stopOnce.Do(func() { close(h.stopped()) })
}

// stopped returns the channel Shutdown closes.
func (h *Handler) stopped() chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stop == nil {
		h.stop = make(chan struct{})
	}
	return h.stop
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Handler) log() *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return slog.Default()
}

// ServeHTTP authenticates the relay and routes the request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	relay, ok := h.relayOf(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="pixelrelay relay"`)
		writeJSON(w, http.StatusUnauthorized, ErrorResponse{"missing or unknown relay key: pair this relay with `pixelrelay keys export` on the tracker and `pixelrelay keys import` on the relay"})
		return
	}
	type route struct {
		method string
		fn     func(http.ResponseWriter, *http.Request, string)
	}
	var rt route
	switch r.URL.Path {
	case PathCopies:
		rt = route{http.MethodPost, h.register}
	case PathOpens:
		rt = route{http.MethodGet, h.opens}
	case PathAck:
		rt = route{http.MethodPost, h.ack}
	case PathKeys:
		rt = route{http.MethodGet, h.keys}
	case PathRotate:
		rt = route{http.MethodPost, h.rotate}
	default:
		writeJSON(w, http.StatusNotFound, ErrorResponse{"no such relay API route: " + r.URL.Path})
		return
	}
	if r.Method != rt.method {
		w.Header().Set("Allow", rt.method)
		writeJSON(w, http.StatusMethodNotAllowed, ErrorResponse{"use " + rt.method})
		return
	}
	rt.fn(w, r, relay)
}

// relayOf returns the paired relay whose secret the request carries as a
// bearer token.
func (h *Handler) relayOf(r *http.Request) (string, bool) {
	scheme, secret, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return h.Keys.RelayOf(strings.TrimSpace(secret))
}

func (h *Handler) register(w http.ResponseWriter, r *http.Request, relay string) {
	var req RegisterRequest
	if !readJSON(w, r, &req) {
		return
	}
	if len(req.Copies) > MaxCopies {
		writeJSON(w, http.StatusRequestEntityTooLarge, ErrorResponse{fmt.Sprintf("copies: at most %d per request", MaxCopies)})
		return
	}
	now := h.now()
	skew := skewOf(now, req.Now)
	copies := make([]record.Copy, 0, len(req.Copies))
	for i := range req.Copies {
		c := &req.Copies[i]
		if !token.ValidID(c.TrackingID) {
			writeJSON(w, http.StatusBadRequest, ErrorResponse{fmt.Sprintf("copies[%d].tracking_id: %q is not a tracking id", i, c.TrackingID)})
			return
		}
		c.TrackingID = strings.ToLower(c.TrackingID)
		copies = append(copies, copyOf(c, skew))
	}
	res, err := h.Store.Register(relay, copies)
	if err != nil {
		h.log().Error("relay registration not stored", "relay", relay, "copies", len(copies), "err", err)
		writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{"not stored: " + err.Error()})
		return
	}
	if skew != 0 {
		h.log().Debug("relay clock differs; registered times corrected", "relay", relay, "skew", skew)
	}
	writeJSON(w, http.StatusOK, RegisterResponse{RegisterResult: res, Now: now.UTC(), KeyVersion: h.Keys.Current()})
}

// opens answers the relay's waiting opens; with wait, it holds the request
// until some arrive or wait passes (a long poll).
func (h *Handler) opens(w http.ResponseWriter, r *http.Request, relay string) {
	q := r.URL.Query()
	limit, ok := intParam(w, q.Get("limit"), "limit", 1, MaxFeed, 500)
	if !ok {
		return
	}
	waitSec, ok := intParam(w, q.Get("wait"), "wait", 0, int(MaxWait/time.Second), 0)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Duration(waitSec)*time.Second)
	defer cancel()
	version := h.Keys.Current()
	var sub *store.Subscription
	var tick *time.Ticker
	for {
		feed, err := h.Store.RelayFeed(relay, limit)
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{err.Error()})
			return
		}
		if len(feed) > 0 || ctx.Err() != nil || h.Keys.Current() != version {
			writeJSON(w, http.StatusOK, OpensResponse{Opens: feed, Now: h.now().UTC(), KeyVersion: h.Keys.Current()})
			return
		}
		if sub == nil {
			sub = h.Store.Subscribe()
			defer sub.Close()
			// A rotation is news too: it is looked for every second.
			tick = time.NewTicker(keyCheckEvery)
			defer tick.Stop()
			continue // look again: an open may have come before the subscription
		}
		select {
		case <-sub.C:
			sub.Take()
		case <-tick.C:
		case <-ctx.Done():
		case <-h.stopped():
			cancel()
		}
	}
}

// keyCheckEvery is how often a long poll looks for a new tracking key
// version, which ends it so the relay adopts the version at once.
const keyCheckEvery = time.Second

func (h *Handler) ack(w http.ResponseWriter, r *http.Request, relay string) {
	var req AckRequest
	if !readJSON(w, r, &req) {
		return
	}
	if len(req.Seqs) > MaxFeed {
		writeJSON(w, http.StatusRequestEntityTooLarge, ErrorResponse{fmt.Sprintf("seqs: at most %d per request", MaxFeed)})
		return
	}
	n, err := h.Store.AckRelayFeed(relay, req.Seqs)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, AckResponse{Acked: n})
}

func (h *Handler) keys(w http.ResponseWriter, _ *http.Request, _ string) {
	cur, keys, err := h.Keys.Export()
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, ErrorResponse{err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, KeysResponse{CurrentVersion: cur, TrackingKeys: keys})
}

func (h *Handler) rotate(w http.ResponseWriter, r *http.Request, relay string) {
	v, err := h.Keys.Rotate()
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, ErrorResponse{err.Error()})
		return
	}
	h.log().Info("tracking key rotated at a relay's request", "relay", relay, "version", v)
	h.keys(w, r, relay)
}

// readJSON decodes a request body of at most maxBodySize into v, or
// answers 400/413 and returns false.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodySize))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			writeJSON(w, http.StatusRequestEntityTooLarge, ErrorResponse{fmt.Sprintf("body larger than %d bytes", maxBodySize)})
			return false
		}
		writeJSON(w, http.StatusBadRequest, ErrorResponse{"reading the body: " + err.Error()})
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		writeJSON(w, http.StatusBadRequest, ErrorResponse{"body: " + err.Error()})
		return false
	}
	return true
}

// intParam parses an optional whole-number query parameter within
// [lo, hi] (a larger one is capped), or answers 400 and returns false.
func intParam(w http.ResponseWriter, s, name string, lo, hi, def int) (int, bool) {
	if s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo {
		writeJSON(w, http.StatusBadRequest, ErrorResponse{fmt.Sprintf("%s: want a whole number from %d", name, lo)})
		return 0, false
	}
	return min(n, hi), true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}
