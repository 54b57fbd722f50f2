package remote

import (
	"errors"
	"net/http"
	"strings"

	"pixelrelay/tracker/token"
)

// PairingKeys is what pairing needs of the tracker's keyring.
// *token.Keyring implements it.
type PairingKeys interface {
	PairRelay(name string) (secret string, err error)
	RevokeRelay(name string) error
	Relays() []token.RelayInfo
	Export() (current int, keys []token.Key, err error)
}

// PathRelays is the admin API route that pairs relays.
const PathRelays = "/api/relays"

// RelaysResponse is GET /api/relays.
type RelaysResponse struct {
	Relays []token.RelayInfo `json:"relays"`
}

// RevokeResponse is DELETE /api/relays.
type RevokeResponse struct {
	Revoked string `json:"revoked"`
}

// AdminHandler serves /api/relays on the tracker's admin API; the caller
// has checked the admin key. POST ?name=NAME pairs a relay (again) and
// answers its relay key; GET lists the paired relays; DELETE ?name=NAME
// revokes one.
type AdminHandler struct {
	Keys PairingKeys
	// BaseURL returns tracking.base_url, written into relay keys as a hint
	// for the relay's tracker.remote_url.
	BaseURL func() string
}

func (a *AdminHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != PathRelays {
		writeJSON(w, http.StatusNotFound, ErrorResponse{"no such API route: " + r.URL.Path})
		return
	}
	name := strings.TrimSpace(r.URL.Query().Get("name"))
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, RelaysResponse{Relays: a.Keys.Relays()})
	case http.MethodPost:
		a.pair(w, name)
	case http.MethodDelete:
		err := a.Keys.RevokeRelay(name)
		switch {
		case errors.Is(err, token.ErrNoRelay):
			writeJSON(w, http.StatusNotFound, ErrorResponse{err.Error()})
		case err != nil:
			writeJSON(w, http.StatusInternalServerError, ErrorResponse{err.Error()})
		default:
			writeJSON(w, http.StatusOK, RevokeResponse{Revoked: name})
		}
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		writeJSON(w, http.StatusMethodNotAllowed, ErrorResponse{"use GET, POST or DELETE"})
	}
}

func (a *AdminHandler) pair(w http.ResponseWriter, name string) {
	if !token.ValidRelayName(name) {
		writeJSON(w, http.StatusBadRequest, ErrorResponse{"name: want 1 to 64 letters, digits, '.', '-' or '_'"})
		return
	}
	secret, err := a.Keys.PairRelay(name)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, ErrorResponse{err.Error()})
		return
	}
	cur, keys, err := a.Keys.Export()
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, ErrorResponse{err.Error()})
		return
	}
	rk := token.RelayKey{Format: token.RelayKeyFormat, Relay: name, Secret: secret, CurrentVersion: cur, TrackingKeys: keys}
	if a.BaseURL != nil {
		rk.Tracker = a.BaseURL()
	}
	writeJSON(w, http.StatusOK, rk)
}
