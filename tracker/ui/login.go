package ui

import (
	"net/http"
)

// login serves /ui/login: the sign-in form (GET), the one-time link
// (GET ?token=) and the form's key (POST).
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if tok := r.URL.Query().Get("token"); tok != "" {
			h.loginLink(w, r, tok)
			return
		}
		if _, _, ok := h.session(r); ok {
			http.Redirect(w, r, "/ui/", http.StatusSeeOther)
			return
		}
		h.render(w, r, http.StatusOK, "login", &pageData{Title: "Sign in"})
	case http.MethodPost:
		h.loginKey(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		h.fail(w, r, http.StatusMethodNotAllowed, "Sign in with the form or a link from pixelrelay dashboard.")
	}
}

// loginLink signs in with a one-time token. The answer is a small page
// that moves on to /ui/ by itself (a meta refresh, not a redirect: a
// navigation started outside the site, such as a link opened from a
// terminal, would not carry the SameSite=Strict cookie through a
// redirect), so the token leaves the address bar at once.
func (h *Handler) loginLink(w http.ResponseWriter, r *http.Request, tok string) {
	if !h.sess.useLogin(tok) {
		h.log.Warn("dashboard: a sign-in link was refused (expired, used or unknown)", "client", r.RemoteAddr)
		h.render(w, r, http.StatusUnauthorized, "login", &pageData{Title: "Sign in",
			Error: "This sign-in link has expired or was already used. Run pixelrelay dashboard for a new one, or sign in with the admin key."})
		return
	}
	id, _ := h.sess.start()
	setCookie(w, id, h.opt.HTTPS(r))
	h.log.Info("dashboard: signed in with a one-time link", "client", r.RemoteAddr)
	h.render(w, r, http.StatusOK, "signedin", &pageData{Title: "Signed in"})
}

// loginKey signs in with the admin key typed into the form.
func (h *Handler) loginKey(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if !h.fails.allow(h.now()) {
		h.render(w, r, http.StatusTooManyRequests, "login", &pageData{Title: "Sign in",
			Error: "Too many wrong keys in the last minute. Wait a minute, or use pixelrelay dashboard."})
		return
	}
	if err := r.ParseForm(); err != nil || !keyMatches(r.PostForm.Get("key"), h.opt.AdminKey()) {
		h.fails.fail()
		h.log.Warn("dashboard: sign-in with a wrong admin key", "client", r.RemoteAddr)
		h.render(w, r, http.StatusUnauthorized, "login", &pageData{Title: "Sign in",
			Error: "That is not the admin key. It is admin_key in data_dir/secrets.json (or PIXELRELAY_ADMIN_KEY)."})
		return
	}
	id, _ := h.sess.start()
	setCookie(w, id, h.opt.HTTPS(r))
	h.log.Info("dashboard: signed in with the admin key", "client", r.RemoteAddr)
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

// logout ends the session (POST with the session's CSRF token).
func (c *call) logout() {
	if c.r.Method != http.MethodPost {
		c.w.Header().Set("Allow", "POST")
		c.h.fail(c.w, c.r, http.StatusMethodNotAllowed, "Sign out with the button.")
		return
	}
	c.r.Body = http.MaxBytesReader(c.w, c.r.Body, 4096)
	if err := c.r.ParseForm(); err != nil || !c.csrfOK(c.r.PostForm.Get("csrf")) {
		c.h.fail(c.w, c.r, http.StatusForbidden, "This form is out of date; reload the page and try again.")
		return
	}
	c.h.sess.end(c.sid)
	clearCookie(c.w, c.h.opt.HTTPS(c.r))
	http.Redirect(c.w, c.r, "/ui/login", http.StatusSeeOther)
}

// csrfOK compares a form's CSRF token with the session's.
func (c *call) csrfOK(got string) bool {
	return got != "" && keyMatches(got, c.sess.csrf)
}
