package oauth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// Login signs opts.Account in: it listens on a random loopback port,
// shows the provider's consent page (open is called with its URL; it may
// only print it), takes the code the browser brings back (state checked),
// exchanges it with the PKCE verifier and stores the refresh token. It
// waits until ctx ends (give it a deadline).
func Login(ctx context.Context, opts Options, open func(url string) error) (Status, error) {
	conf, err := opts.config()
	if err != nil {
		return Status{}, err
	}
	lns, redirect, err := listenLoopback(opts.Provider == Microsoft)
	if err != nil {
		return Status{}, fmt.Errorf("cannot listen on the loopback address for the redirect: %w", err)
	}
	conf.RedirectURL = redirect
	f := &flow{opts: opts, conf: conf, state: rand.Text(), verifier: oauth2.GenerateVerifier(),
		done: make(chan result, 1)}
	srv := &http.Server{Handler: f, ReadHeaderTimeout: 10 * time.Second}
	for _, ln := range lns {
		go srv.Serve(ln)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	if err := open(f.authURL()); err != nil {
		return Status{}, err
	}
	select {
	case r := <-f.done:
		return r.status, r.err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return Status{}, errors.New("no sign-in arrived in time: run the command again")
		}
		return Status{}, ctx.Err()
	}
}

// listenLoopback listens on a random port of 127.0.0.1. Microsoft's
// redirect is http://localhost:PORT/ (what its app registration accepts
// for any port); the same port of ::1 is listened on too where it can be,
// for a browser that resolves localhost to ::1.
func listenLoopback(localhost bool) ([]net.Listener, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	if !localhost {
		return []net.Listener{ln}, "http://127.0.0.1:" + port + "/", nil
	}
	lns := []net.Listener{ln}
	if ln6, err := net.Listen("tcp", "[::1]:"+port); err == nil {
		lns = append(lns, ln6)
	}
	return lns, "http://localhost:" + port + "/", nil
}

type result struct {
	status Status
	err    error
}

// flow is one sign-in waiting for its redirect.
type flow struct {
	opts     Options
	conf     *oauth2.Config
	state    string
	verifier string
	once     sync.Once
	done     chan result
}

func (f *flow) authURL() string {
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(f.verifier)}
	if f.opts.Provider == Google {
		// A refresh token every time, also for a client signed in before.
		opts = append(opts, oauth2.AccessTypeOffline, oauth2.SetAuthURLParam("prompt", "consent"))
	}
	if f.opts.User != "" {
		opts = append(opts, oauth2.SetAuthURLParam("login_hint", f.opts.User))
	}
	return f.conf.AuthCodeURL(f.state, opts...)
}

// ServeHTTP takes the redirect. A request without the right state is
// answered and ignored (it is not the provider's); the first one with it
// ends the flow.
func (f *flow) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	q := r.URL.Query()
	if r.URL.Path != "/" || q.Get("state") != f.state {
		page(w, http.StatusBadRequest, "This is not the sign-in pixelrelay is waiting for.")
		return
	}
	var res result
	ran := false
	f.once.Do(func() {
		ran = true
		res = f.finish(r.Context(), q.Get("code"), q.Get("error"), q.Get("error_description"))
	})
	if ran {
		defer func() { f.done <- res }() // after the page is written
	}
	switch {
	case !ran:
		page(w, http.StatusConflict, "This sign-in is already finished.")
	case res.err != nil:
		page(w, http.StatusBadRequest, "Sign-in failed: "+res.err.Error())
	default:
		page(w, http.StatusOK, "pixelrelay is signed in to account "+f.opts.Account+". You can close this window.")
	}
}

// finish exchanges the code and stores the refresh token.
func (f *flow) finish(ctx context.Context, code, errCode, errDesc string) result {
	if errCode != "" {
		if errDesc != "" {
			errCode += ": " + errDesc
		}
		return result{err: fmt.Errorf("the provider refused the sign-in: %s", errCode)}
	}
	if code == "" {
		return result{err: errors.New("the provider's redirect carries no code")}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), Timeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Timeout: Timeout})
	tok, err := f.conf.Exchange(ctx, code, oauth2.VerifierOption(f.verifier))
	if err != nil {
		return result{err: fmt.Errorf("the token endpoint refused the code: %w", err)}
	}
	if tok.RefreshToken == "" {
		return result{err: errors.New("the provider returned no refresh token (for Microsoft, the offline_access scope is needed)")}
	}
	now := time.Now().UTC()
	st := stored{Account: f.opts.Account, Provider: f.opts.Provider, ClientID: f.opts.ClientID,
		RefreshToken: tok.RefreshToken, SavedAt: now, From: "login"}
	if err := writeToken(f.opts.DataDir, st); err != nil {
		return result{err: fmt.Errorf("cannot store the refresh token: %w", err)}
	}
	s := Status{Account: f.opts.Account, SignedIn: true, SavedAt: now, Expiry: tok.Expiry.UTC(), LastRefresh: now}
	if err := writeStatus(f.opts.DataDir, s); err != nil {
		return result{err: err}
	}
	return result{status: s}
}

func page(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintf(w, "<!doctype html><title>pixelrelay</title><p>%s</p>\n", html.EscapeString(msg))
}
