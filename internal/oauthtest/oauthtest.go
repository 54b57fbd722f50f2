// Package oauthtest is a fake OAuth 2.0 provider for tests, on
// 127.0.0.1: an authorization endpoint that redirects straight back to
// the client's loopback redirect URI with a code (no consent page: the
// test plays the user who consents), and a token endpoint that checks the
// client, the redirect URI and the PKCE S256 verifier, hands out
// short-lived access tokens, refreshes them and honours revocation.
//
//	p := oauthtest.Start(t, oauthtest.Options{AccessTTL: 3 * time.Second})
//	// point the code under test at p.AuthURL and p.TokenURL, client p.ClientID
//	p.Live(token)   // is this access token valid now? (for a fake upstream)
//	p.Revoke()      // every refresh token stops working (invalid_grant)
//	p.SetDown(true) // the token endpoint answers 503
package oauthtest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"
)

// Options configure the provider. Zero values get defaults.
type Options struct {
	ClientID     string        // default "pixelrelay-test"
	ClientSecret string        // "" = a public client (no secret checked)
	AccessTTL    time.Duration // default 1h
	// Rotate hands out a new refresh token with every refresh (as
	// Microsoft does); the old one keeps working, as there.
	Rotate bool
}

// Provider is a running fake provider.
type Provider struct {
	AuthURL  string
	TokenURL string
	ClientID string

	opts Options
	srv  *httptest.Server

	mu        sync.Mutex
	codes     map[string]grant     // authorization code -> what it was issued for
	refresh   map[string]bool      // refresh token -> still valid
	access    map[string]time.Time // access token -> expiry
	down      bool
	refreshes int
	lastAuth  url.Values
}

type grant struct {
	redirect  string
	challenge string
}

// Start runs a provider until the test ends.
func Start(t testing.TB, opts Options) *Provider {
	t.Helper()
	if opts.ClientID == "" {
		opts.ClientID = "pixelrelay-test"
	}
	if opts.AccessTTL == 0 {
		opts.AccessTTL = time.Hour
	}
	p := &Provider{opts: opts, ClientID: opts.ClientID, codes: map[string]grant{},
		refresh: map[string]bool{}, access: map[string]time.Time{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	p.AuthURL = p.srv.URL + "/authorize"
	p.TokenURL = p.srv.URL + "/token"
	return p
}

// authorize checks the request and redirects back with a code.
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p.mu.Lock()
	p.lastAuth = q
	p.mu.Unlock()
	redirect := q.Get("redirect_uri")
	if !loopback(redirect) || q.Get("client_id") != p.opts.ClientID {
		http.Error(w, "bad client_id or redirect_uri", http.StatusBadRequest)
		return
	}
	back, _ := url.Parse(redirect)
	v := url.Values{"state": {q.Get("state")}}
	switch {
	case q.Get("response_type") != "code":
		v.Set("error", "unsupported_response_type")
	case q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "":
		v.Set("error", "invalid_request")
		v.Set("error_description", "PKCE S256 required")
	default:
		code := rand.Text()
		p.mu.Lock()
		p.codes[code] = grant{redirect: redirect, challenge: q.Get("code_challenge")}
		p.mu.Unlock()
		v.Set("code", code)
	}
	back.RawQuery = v.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func loopback(redirect string) bool {
	u, err := url.Parse(redirect)
	if err != nil || u.Scheme != "http" {
		return false
	}
	if u.Hostname() == "localhost" {
		return true
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback()
}

func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	if err := r.ParseForm(); err != nil || !p.client(r) {
		fail(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		p.exchange(w, r.PostForm)
	case "refresh_token":
		p.refreshToken(w, r.PostForm)
	default:
		fail(w, http.StatusBadRequest, "unsupported_grant_type")
	}
}

// client checks the client id (and secret), in the form or Basic auth.
func (p *Provider) client(r *http.Request) bool {
	id, secret, basic := r.BasicAuth()
	if basic {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	return id == p.opts.ClientID && (p.opts.ClientSecret == "" || secret == p.opts.ClientSecret)
}

func (p *Provider) exchange(w http.ResponseWriter, f url.Values) {
	g, ok := p.codes[f.Get("code")]
	delete(p.codes, f.Get("code")) // a code works once
	sum := sha256.Sum256([]byte(f.Get("code_verifier")))
	switch {
	case !ok, g.redirect != f.Get("redirect_uri"):
		fail(w, http.StatusBadRequest, "invalid_grant")
	case base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge:
		fail(w, http.StatusBadRequest, "invalid_grant")
	default:
		rt := "rt-" + rand.Text()
		p.refresh[rt] = true
		p.issue(w, rt)
	}
}

func (p *Provider) refreshToken(w http.ResponseWriter, f url.Values) {
	if !p.refresh[f.Get("refresh_token")] {
		fail(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	p.refreshes++
	rt := ""
	if p.opts.Rotate {
		rt = "rt-" + rand.Text()
		p.refresh[rt] = true
	}
	p.issue(w, rt)
}

// issue answers with a new access token (and rt when not empty); p.mu is held.
func (p *Provider) issue(w http.ResponseWriter, rt string) {
	at := "at-" + rand.Text()
	p.access[at] = time.Now().Add(p.opts.AccessTTL)
	resp := map[string]any{"access_token": at, "token_type": "Bearer",
		"expires_in": int(p.opts.AccessTTL.Seconds())}
	if rt != "" {
		resp["refresh_token"] = rt
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

func fail(w http.ResponseWriter, code int, e string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": e})
}

// Live reports whether token is an access token that has not expired.
func (p *Provider) Live(token string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	exp, ok := p.access[token]
	return ok && time.Now().Before(exp)
}

// Revoke makes every refresh token and access token invalid.
func (p *Provider) Revoke() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.refresh)
	clear(p.access)
}

// SetDown makes the token endpoint answer 503 (true) or work again.
func (p *Provider) SetDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
}

// Refreshes counts the refresh_token grants that succeeded.
func (p *Provider) Refreshes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refreshes
}

// LastAuthorize is the query of the last authorization request.
func (p *Provider) LastAuthorize() url.Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastAuth
}

// Browser plays the user's browser for a sign-in: given the consent URL it
// follows it (the provider redirects at once) to the loopback redirect, in
// the background. Usable as the open function of oauth.Login.
func Browser(t testing.TB) func(url string) error {
	return func(u string) error {
		go func() {
			resp, err := http.Get(u)
			if err != nil {
				t.Errorf("oauthtest browser: %v", err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
		return nil
	}
}
