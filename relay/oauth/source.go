package oauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// SignInError says an account cannot get access tokens until someone acts:
// it was never signed in, its refresh token expired or was revoked, or the
// provider refuses the client. It is a setup failure, not a temporary one.
type SignInError struct {
	Account string
	Reason  string
	Err     error
}

func (e *SignInError) Error() string {
	msg := e.Reason
	if e.Err != nil {
		msg += " (" + e.Err.Error() + ")"
	}
	return msg
}

func (e *SignInError) Unwrap() error { return e.Err }

// Timeout bounds one request to the token endpoint.
const Timeout = 30 * time.Second

// retryAfter: after a temporary failure the endpoint is not asked again
// sooner than this; callers get the same error meanwhile.
var retryAfter = 5 * time.Second

// maxMargin: an access token is refreshed this long before it expires at
// most (a third of its lifetime for short-lived ones).
const maxMargin = 5 * time.Minute

// Source hands out access tokens of one account. It is safe for
// concurrent use; refreshes are made one at a time.
type Source struct {
	log *slog.Logger

	mu      sync.Mutex
	opts    Options
	tok     *oauth2.Token // the cached access token
	fetched time.Time     // when tok was fetched
	failed  error         // the last refresh's error
	failRT  string        // ...made with this refresh token
	failAt  time.Time
}

var (
	sourcesMu sync.Mutex
	sources   = map[string]*Source{}
)

// For returns the process-wide Source of opts.Account in opts.DataDir,
// updated to opts (a hot reload of the client id or secret takes effect
// at the next refresh). Deliveries and the Sent folder share it.
func For(opts Options) *Source {
	sourcesMu.Lock()
	defer sourcesMu.Unlock()
	k := opts.DataDir + "\x00" + opts.Account
	s := sources[k]
	if s == nil {
		s = &Source{log: slog.Default().With("component", "oauth", "account", opts.Account), opts: opts}
		sources[k] = s
	}
	s.update(opts)
	return s
}

func (s *Source) update(opts Options) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if opts.key() != s.opts.key() {
		s.tok, s.failed = nil, nil
	}
	s.opts = opts
}

// Invalidate drops the cached access token (the server refused it), so
// the next Token refreshes.
func (s *Source) Invalidate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tok = nil
}

// Token returns a live access token, refreshing it when it expires soon.
// Errors are *SignInError when the user must act, else temporary.
func (s *Source) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok != nil && time.Until(s.tok.Expiry) > s.margin() {
		return s.tok.AccessToken, nil
	}
	st, err := readToken(s.opts.DataDir, s.opts.Account)
	if err := s.usable(st, err); err != nil {
		return "", s.fail(err, st.RefreshToken)
	}
	if s.failed != nil && st.RefreshToken == s.failRT && !s.retry() {
		return "", s.failed
	}
	return s.refresh(ctx, st)
}

// usable says why the stored sign-in (read with err) cannot be refreshed.
func (s *Source) usable(st stored, err error) error {
	a := s.opts.Account
	switch {
	case errors.Is(err, errNoToken):
		return &SignInError{Account: a, Reason: fmt.Sprintf(
			"account %s is not signed in with OAuth: run %s", a, LoginCommand(a))}
	case err != nil:
		return err
	case st.ClientID != "" && st.ClientID != s.opts.ClientID:
		return &SignInError{Account: a, Reason: fmt.Sprintf(
			"account %s was signed in with another oauth_client_id: run %s", a, LoginCommand(a))}
	}
	return nil
}

// fail remembers a failure made with refresh token rt and records it in
// the status file; a failure like the last is logged and written once.
func (s *Source) fail(err error, rt string) error {
	now := time.Now()
	again := s.failed != nil && s.failed.Error() == err.Error()
	s.failed, s.failRT, s.failAt, s.tok = err, rt, now, nil
	if !again {
		s.record(Status{Account: s.opts.Account, LastError: err.Error(), LastErrorAt: now})
		s.log.Warn("OAuth access token unavailable", "err", err)
	}
	return err
}

// retry reports whether the last failure may be retried now: a temporary
// one after retryAfter; a sign-in failure only with a new refresh token.
func (s *Source) retry() bool {
	var se *SignInError
	if errors.As(s.failed, &se) {
		return false
	}
	return time.Since(s.failAt) >= retryAfter
}

func (s *Source) margin() time.Duration {
	return min(maxMargin, s.tok.Expiry.Sub(s.fetched)/3)
}

func (s *Source) refresh(ctx context.Context, st stored) (string, error) {
	conf, err := s.opts.config()
	if err != nil {
		return "", s.fail(&SignInError{Account: s.opts.Account, Reason: "account " + s.opts.Account + ": " + err.Error()}, st.RefreshToken)
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Timeout: Timeout})
	now := time.Now()
	tok, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: st.RefreshToken}).Token()
	if err != nil {
		return "", s.fail(classify(s.opts.Account, err), st.RefreshToken)
	}
	s.tok, s.fetched, s.failed = tok, now, nil
	if tok.RefreshToken != "" && tok.RefreshToken != st.RefreshToken {
		s.rotate(st, tok.RefreshToken)
	}
	s.record(Status{Account: s.opts.Account, Expiry: tok.Expiry, LastRefresh: now})
	s.log.Debug("OAuth access token refreshed", "expiry", tok.Expiry)
	return tok.AccessToken, nil
}

// rotate stores the new refresh token the provider returned, unless the
// file changed meanwhile (a new sign-in wins).
func (s *Source) rotate(old stored, rt string) {
	cur, err := readToken(s.opts.DataDir, s.opts.Account)
	if err != nil || cur.RefreshToken != old.RefreshToken {
		return
	}
	cur.RefreshToken, cur.SavedAt, cur.From = rt, time.Now().UTC(), "refresh"
	if err := writeToken(s.opts.DataDir, cur); err != nil {
		s.log.Error("cannot store the rotated refresh token", "err", err)
	}
}

func (s *Source) record(st Status) {
	if st.LastError != "" {
		if prev, err := ReadStatus(s.opts.DataDir, s.opts.Account); err == nil {
			st.Expiry, st.LastRefresh = prev.Expiry, prev.LastRefresh
		}
	}
	if err := writeStatus(s.opts.DataDir, st); err != nil {
		s.log.Error("cannot write the OAuth status file", "err", err)
	}
}

// classify turns a refresh failure into a *SignInError when the provider
// refused the refresh token or the client, else keeps it temporary.
func classify(account string, err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response == nil || re.Response.StatusCode >= 500 {
		return fmt.Errorf("OAuth token endpoint unreachable for account %s: %w", account, err)
	}
	switch re.ErrorCode {
	case "invalid_grant":
		return &SignInError{Account: account, Err: err, Reason: fmt.Sprintf(
			"OAuth sign-in of account %s has expired or was revoked: run %s", account, LoginCommand(account))}
	case "invalid_client", "unauthorized_client":
		return &SignInError{Account: account, Err: err, Reason: fmt.Sprintf(
			"the OAuth provider refuses the client of account %s: check oauth_client_id and oauth_client_secret", account)}
	case "":
		if re.Response.StatusCode == http.StatusTooManyRequests {
			return fmt.Errorf("OAuth token endpoint busy for account %s: %w", account, err)
		}
	}
	return &SignInError{Account: account, Err: err, Reason: fmt.Sprintf(
		"the OAuth provider refused to refresh the token of account %s: run %s", account, LoginCommand(account))}
}
