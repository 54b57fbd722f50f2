package httpd

import (
	"net"
	"net/http"
	"net/url"
	"strings"

	"pixelrelay/tracker/ui"
)

// The server's side of the dashboard (tracker/ui): the one-time sign-in
// links `pixelrelay dashboard` asks for, and what the status page shows.

// apiDashboardLogin answers POST /api/dashboard/login with a one-time
// sign-in link (valid ui.LoginTTL).
func (s *Server) apiDashboardLogin(w http.ResponseWriter, r *http.Request) {
	if s.ui == nil {
		writeError(w, http.StatusNotFound, "this server has no dashboard")
		return
	}
	tok, exp := s.ui.MintLogin()
	s.log.Info("dashboard: one-time sign-in link made", "expires", exp.UTC())
	writeJSON(w, http.StatusOK, DashboardLoginResponse{Path: "/ui/login?token=" + url.QueryEscape(tok), ExpiresAt: exp.UTC()})
}

// uiStatus is the status page's data.
func (s *Server) uiStatus() (ui.Status, error) {
	st, err := s.status()
	if err != nil {
		return ui.Status{}, err
	}
	u := ui.Status{Version: st.Version, ConfigFile: st.ConfigFile, DataDir: st.DataDir, SMTPListen: st.SMTPListen,
		HTTPListen: st.HTTPListen, Upstream: st.Upstream, TrackingKeyVersion: st.TrackingKeyVersion,
		Queue: st.Queue, Database: st.Database, ConfigProblem: st.ConfigProblem}
	if len(st.Accounts) > 1 {
		for _, a := range st.Accounts {
			u.Accounts = append(u.Accounts, a.Name+" ("+a.Upstream+")")
		}
	}
	for _, w := range st.Webhooks {
		h := ui.Webhook{Name: w.Name, URL: w.URL, State: w.State, LastError: w.LastError, Backlog: w.Backlog}
		if w.LastSuccess != nil {
			h.LastSuccess = *w.LastSuccess
		}
		u.Webhooks = append(u.Webhooks, h)
	}
	return u, nil
}

// isHTTPS reports whether the request came over HTTPS: TLS on this
// listener, or a trusted proxy saying so in X-Forwarded-Proto.
func (s *Server) isHTTPS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, ok := parseHop(host)
	return ok && inPrefixes(ip, s.current().trusted) && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}
