package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"pixelrelay/config"
	"pixelrelay/internal/oauthtest"
)

// options points an account at p.
func options(t *testing.T, p *oauthtest.Provider, account string) Options {
	return Options{Account: account, DataDir: t.TempDir(), ClientID: p.ClientID,
		AuthURL: p.AuthURL, TokenURL: p.TokenURL, Scopes: []string{"mail"}, User: "me@example.com"}
}

func login(t *testing.T, opts Options) Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := Login(ctx, opts, oauthtest.Browser(t))
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	return st
}

func TestLogin(t *testing.T) {
	for _, secret := range []string{"", "s3cret"} {
		t.Run("secret="+secret, func(t *testing.T) {
			p := oauthtest.Start(t, oauthtest.Options{ClientSecret: secret})
			opts := options(t, p, "work")
			opts.ClientSecret = secret
			st := login(t, opts)
			q := p.LastAuthorize()
			if q.Get("code_challenge_method") != "S256" || q.Get("state") == "" || q.Get("login_hint") != "me@example.com" {
				t.Errorf("authorization request %v: want PKCE S256, a state and the login hint", q)
			}
			if !strings.HasPrefix(q.Get("redirect_uri"), "http://127.0.0.1:") {
				t.Errorf("redirect_uri %q: want the loopback address", q.Get("redirect_uri"))
			}
			if !st.SignedIn || time.Until(st.Expiry) < 30*time.Minute {
				t.Errorf("status %+v: want signed in with an hour's token", st)
			}
			fi, err := os.Stat(TokenPath(opts.DataDir, "work"))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("token file: %v, mode %v; want 0600", err, fi.Mode())
			}
			got, err := ReadStatus(opts.DataDir, "work")
			if err != nil || !got.SignedIn || got.LastError != "" {
				t.Errorf("ReadStatus = %+v, %v", got, err)
			}
		})
	}
}

// TestLoginRefuses: the flow ends with the provider's refusal, and a
// redirect with the wrong state is ignored.
func TestLoginRefuses(t *testing.T) {
	p := oauthtest.Start(t, oauthtest.Options{})
	tests := []struct {
		name  string
		query func(state string) url.Values
		want  string
	}{
		{"denied", func(s string) url.Values { return url.Values{"state": {s}, "error": {"access_denied"}} }, "refused the sign-in: access_denied"},
		{"wrong code", func(s string) url.Values { return url.Values{"state": {s}, "code": {"forged"}} }, "invalid_grant"},
		{"no code", func(s string) url.Values { return url.Values{"state": {s}} }, "no code"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := options(t, p, "work")
			open := func(consent string) error {
				u, _ := url.Parse(consent)
				back, _ := url.Parse(u.Query().Get("redirect_uri"))
				go func() {
					// A stray request first: wrong state, ignored.
					back.RawQuery = tc.query("not-the-state").Encode()
					if resp, err := http.Get(back.String()); err == nil {
						resp.Body.Close()
						if resp.StatusCode != http.StatusBadRequest {
							t.Errorf("wrong state: status %d, want 400", resp.StatusCode)
						}
					}
					back.RawQuery = tc.query(u.Query().Get("state")).Encode()
					if resp, err := http.Get(back.String()); err == nil {
						resp.Body.Close()
					}
				}()
				return nil
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := Login(ctx, opts, open)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Login error %v, want %q", err, tc.want)
			}
			if _, err := os.Stat(TokenPath(opts.DataDir, "work")); err == nil {
				t.Error("a token file was written")
			}
		})
	}
}

func TestLoginTimeout(t *testing.T) {
	p := oauthtest.Start(t, oauthtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := Login(ctx, options(t, p, "work"), func(string) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "run the command again") {
		t.Fatalf("Login error %v, want a timeout", err)
	}
}

// TestRefresh: a cached token is handed out until it nears expiry, then
// refreshed once, also with many callers at once.
func TestRefresh(t *testing.T) {
	// Tokens live 6s, so refreshed in their last 2s: only a stall of
	// seconds could make the callers below refresh twice.
	p := oauthtest.Start(t, oauthtest.Options{AccessTTL: 6 * time.Second, Rotate: true})
	opts := options(t, p, "work")
	login(t, opts)
	s := For(opts)
	first, err := s.Token(context.Background())
	if err != nil || !p.Live(first) {
		t.Fatalf("Token = %q, %v; want a live token", first, err)
	}
	again, _ := s.Token(context.Background())
	if again != first || p.Refreshes() != 1 {
		t.Errorf("second Token: %q (refreshes %d); want the cached one", again, p.Refreshes())
	}
	time.Sleep(4100 * time.Millisecond) // inside the last third of its life
	var wg sync.WaitGroup
	tokens := make([]string, 8)
	for i := range tokens {
		wg.Go(func() { tokens[i], _ = s.Token(context.Background()) })
	}
	wg.Wait()
	for _, tok := range tokens {
		if tok == first || !p.Live(tok) || tok != tokens[0] {
			t.Fatalf("tokens after refresh %q: want one new live token", tokens)
		}
	}
	if p.Refreshes() != 2 {
		t.Errorf("refreshes = %d, want 2", p.Refreshes())
	}
	st, _ := readToken(opts.DataDir, "work")
	status, _ := ReadStatus(opts.DataDir, "work")
	if !status.SignedIn || status.LastError != "" || status.Expiry.IsZero() || st.RefreshToken == "" {
		t.Errorf("status %+v", status)
	}
}

// TestRefreshFails: revoked, never signed in, wrong client are SignInErrors
// naming the fix; an endpoint that is down is temporary.
func TestRefreshFails(t *testing.T) {
	retryAfter = 200 * time.Millisecond
	tests := []struct {
		name   string
		break_ func(p *oauthtest.Provider, o *Options)
		signIn bool
		want   string
	}{
		{"revoked", func(p *oauthtest.Provider, _ *Options) { p.Revoke() }, true,
			"OAuth sign-in of account work has expired or was revoked: run pixelrelay auth login --account work"},
		{"not signed in", func(_ *oauthtest.Provider, o *Options) { os.Remove(TokenPath(o.DataDir, "work")) }, true,
			"account work is not signed in with OAuth: run pixelrelay auth login --account work"},
		{"another client", func(_ *oauthtest.Provider, o *Options) { o.ClientID = "other" }, true,
			"account work was signed in with another oauth_client_id: run pixelrelay auth login --account work"},
		{"wrong secret", func(_ *oauthtest.Provider, o *Options) { o.ClientSecret = "wrong" }, true,
			"check oauth_client_id and oauth_client_secret"},
		{"down", func(p *oauthtest.Provider, _ *Options) { p.SetDown(true) }, false,
			"OAuth token endpoint unreachable for account work"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := oauthtest.Start(t, oauthtest.Options{ClientSecret: "s3cret"})
			opts := options(t, p, "work")
			opts.ClientSecret = "s3cret"
			login(t, opts)
			tc.break_(p, &opts)
			s := For(opts)
			_, err := s.Token(context.Background())
			var se *SignInError
			if err == nil || errors.As(err, &se) != tc.signIn || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Token error %v (sign-in error: %v), want %q", err, errors.As(err, &se), tc.want)
			}
			if st, _ := ReadStatus(opts.DataDir, "work"); st.LastError != err.Error() {
				t.Errorf("status last_error %q, want %q", st.LastError, err)
			}
		})
	}
}

// TestRecovers: after a revocation the endpoint is not asked again until
// a new sign-in; after an outage it is asked again.
func TestRecovers(t *testing.T) {
	retryAfter = 200 * time.Millisecond
	p := oauthtest.Start(t, oauthtest.Options{})
	opts := options(t, p, "work")
	login(t, opts)
	s := For(opts)
	p.Revoke()
	for range 3 {
		if _, err := s.Token(context.Background()); err == nil {
			t.Fatal("Token worked after revocation")
		}
	}
	login(t, opts)
	if tok, err := s.Token(context.Background()); err != nil || !p.Live(tok) {
		t.Fatalf("after a new sign-in: Token = %q, %v", tok, err)
	}
	p.SetDown(true)
	s.Invalidate()
	if _, err := s.Token(context.Background()); err == nil {
		t.Fatal("Token worked with the endpoint down")
	}
	p.SetDown(false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		tok, err := s.Token(context.Background())
		if err == nil && p.Live(tok) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no token after the endpoint came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st, _ := ReadStatus(opts.DataDir, "work"); st.LastError != "" {
		t.Errorf("last_error %q after recovering", st.LastError)
	}
}

// TestReload: a changed client id takes effect at once (the cached token
// is dropped).
func TestReload(t *testing.T) {
	p := oauthtest.Start(t, oauthtest.Options{})
	opts := options(t, p, "work")
	login(t, opts)
	if _, err := For(opts).Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	bad := opts
	bad.ClientID = "changed"
	if _, err := For(bad).Token(context.Background()); err == nil {
		t.Fatal("the changed client id was not used")
	}
	if _, err := For(opts).Token(context.Background()); err != nil {
		t.Fatalf("back to the right client id: %v", err)
	}
}

func TestConfig(t *testing.T) {
	google := func(id, authURL, tokenURL string) Options {
		return FromConfig("/d", config.Account{Name: "a", Upstream: config.Upstream{OAuthProvider: Google,
			OAuthClientID: id, OAuthAuthURL: authURL, OAuthTokenURL: tokenURL}})
	}
	microsoft := FromConfig("/d", config.Account{Name: "a", Upstream: config.Upstream{OAuthProvider: Microsoft, OAuthClientID: "x"}})
	tests := []struct {
		opts   Options
		auth   string
		scopes int
		err    string
	}{
		{google("x", "", ""), "https://accounts.google.com/o/oauth2/auth", 1, ""},
		{microsoft, "https://login.microsoftonline.com/common/oauth2/v2.0/authorize", 3, ""},
		{google("x", "https://a.example/auth", ""), "https://a.example/auth", 1, ""},
		{Options{ClientID: "x", AuthURL: "https://a", TokenURL: "https://t"}, "https://a", 0, ""},
		{Options{ClientID: "x"}, "", 0, "oauth_auth_url is not set"},
		{Options{ClientID: "x", AuthURL: "ftp://a", TokenURL: "https://t"}, "", 0, "oauth_auth_url"},
		{google("", "", ""), "", 0, "oauth_client_id is not set"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.opts), func(t *testing.T) {
			c, err := tc.opts.config()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || c.Endpoint.AuthURL != tc.auth || len(c.Scopes) != tc.scopes {
				t.Fatalf("config %+v, %v", c, err)
			}
		})
	}
}

func TestLoginCommand(t *testing.T) {
	for account, want := range map[string]string{
		"": "pixelrelay auth login", "default": "pixelrelay auth login",
		"work": "pixelrelay auth login --account work",
	} {
		if got := LoginCommand(account); got != want {
			t.Errorf("LoginCommand(%q) = %q, want %q", account, got, want)
		}
	}
}

// TestLoginMicrosoft: Microsoft's redirect is http://localhost:PORT/ (what
// its app registrations accept for any port), reachable over 127.0.0.1
// and, where the host has it, ::1; its scopes include offline_access.
func TestLoginMicrosoft(t *testing.T) {
	p := oauthtest.Start(t, oauthtest.Options{})
	opts := options(t, p, "work")
	opts.Provider, opts.Scopes = Microsoft, nil
	login(t, opts)
	q := p.LastAuthorize()
	if !strings.HasPrefix(q.Get("redirect_uri"), "http://localhost:") {
		t.Errorf("redirect_uri %q, want http://localhost:PORT/", q.Get("redirect_uri"))
	}
	if !strings.Contains(q.Get("scope"), "offline_access") || !strings.Contains(q.Get("scope"), "SMTP.Send") {
		t.Errorf("scope %q", q.Get("scope"))
	}
	if q.Get("access_type") != "" {
		t.Errorf("access_type %q is Google's", q.Get("access_type"))
	}
}

// FuzzFileName: any account name makes one plain file name in the oauth
// directory that names the account back.
func FuzzFileName(f *testing.F) {
	for _, s := range []string{"default", "work", "../x", "a/b", "..", ".", "%2F", "ä b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, account string) {
		if account == "" {
			return
		}
		name := fileName("token", account)
		if strings.ContainsAny(name, "/\\\x00") || name == "." || name == ".." {
			t.Fatalf("fileName(%q) = %q: not one plain name", account, name)
		}
		if got, ok := accountOf(name); !ok || got != account {
			t.Fatalf("accountOf(%q) = %q, %v; want %q", name, got, ok, account)
		}
	})
}
