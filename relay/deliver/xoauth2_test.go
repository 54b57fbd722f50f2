package deliver

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"pixelrelay/config"
	"pixelrelay/internal/oauthtest"
	"pixelrelay/relay"
	"pixelrelay/relay/oauth"
	"pixelrelay/relay/smtptest"
)

// oauthCfg points the default account at srv with XOAUTH2 through p.
func oauthCfg(t *testing.T, srv *smtptest.Server, p *oauthtest.Provider) *config.Config {
	c := cfgFor(srv, "smtp", "none")
	c.DataDir = t.TempDir()
	c.Upstream.Auth = "oauth"
	c.Upstream.Username = "me@example.com"
	c.Upstream.OAuthClientID = p.ClientID
	c.Upstream.OAuthAuthURL, c.Upstream.OAuthTokenURL = p.AuthURL, p.TokenURL
	return c
}

func signIn(t *testing.T, c *config.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, _ := c.Account(config.DefaultAccount)
	if _, err := oauth.Login(ctx, oauth.FromConfig(c.DataDir, a), oauthtest.Browser(t)); err != nil {
		t.Fatalf("sign-in: %v", err)
	}
}

// TestDeliverXOAUTH2: with auth = "oauth" the upstream gets XOAUTH2 with a
// live token; an account that must sign in again is a setup failure naming
// the command, a token endpoint that is down a temporary one.
func TestDeliverXOAUTH2(t *testing.T) {
	tests := []struct {
		name   string
		script func(p *oauthtest.Provider) smtptest.Script
		signIn bool
		break_ func(p *oauthtest.Provider)
		class  relay.Class
		want   string // in the error; "" = delivered
	}{
		{"live token", xoauth2Only, true, nil, 0, ""},
		{"first token refused, a fresh one works", refuseFirst, true, nil, 0, ""},
		{"revoked", xoauth2Only, true, (*oauthtest.Provider).Revoke, relay.Setup,
			"auth: OAuth sign-in of account default has expired or was revoked: run pixelrelay auth login"},
		{"never signed in", xoauth2Only, false, nil, relay.Setup,
			"account default is not signed in with OAuth: run pixelrelay auth login"},
		{"token endpoint down", xoauth2Only, true, func(p *oauthtest.Provider) { p.SetDown(true) }, relay.Temporary,
			"OAuth token endpoint unreachable"},
		{"upstream refuses every token", func(*oauthtest.Provider) smtptest.Script {
			return smtptest.Script{XOAUTH2: func(string, string) bool { return false }}
		}, true, nil, relay.Setup, "535 5.7.8"},
		{"no XOAUTH2 offered", func(*oauthtest.Provider) smtptest.Script {
			return smtptest.Script{AuthUsers: map[string]string{"me@example.com": "pw"}}
		}, true, nil, relay.Setup, "does not offer AUTH XOAUTH2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := oauthtest.Start(t, oauthtest.Options{})
			srv := smtptest.Start(t, tc.script(p))
			c := oauthCfg(t, srv, p)
			if tc.signIn {
				signIn(t, c)
			}
			if tc.break_ != nil {
				tc.break_(p)
			}
			err := deliver(newTestSMTP(t, newHolder(c)), "b@example.com")
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if m := srv.Messages(); len(m) != 1 || m[0].AuthUser != "me@example.com" {
					t.Fatalf("messages %+v", m)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || relay.ClassOf(err) != tc.class {
				t.Fatalf("err %v (class %v), want %v %q", err, relay.ClassOf(err), tc.class, tc.want)
			}
		})
	}
}

func xoauth2Only(p *oauthtest.Provider) smtptest.Script {
	return smtptest.Script{XOAUTH2: func(user, tok string) bool { return user == "me@example.com" && p.Live(tok) }}
}

// refuseFirst refuses the first token it sees (revoked early by the
// provider), accepting later live ones.
func refuseFirst(p *oauthtest.Provider) smtptest.Script {
	var mu sync.Mutex
	first := ""
	return smtptest.Script{XOAUTH2: func(_, tok string) bool {
		mu.Lock()
		defer mu.Unlock()
		if first == "" {
			first = tok
		}
		return tok != first && p.Live(tok)
	}}
}

// TestDeliverXOAUTH2Refresh: a new connection after the access token
// expired gets a fresh one; a hot reload of the client id is used.
func TestDeliverXOAUTH2Refresh(t *testing.T) {
	p := oauthtest.Start(t, oauthtest.Options{AccessTTL: 2 * time.Second})
	srv := smtptest.Start(t, xoauth2Only(p))
	c := oauthCfg(t, srv, p)
	signIn(t, c)
	h := newHolder(c)
	s := newTestSMTP(t, h)
	s.IdleTimeout = 100 * time.Millisecond
	for i := range 3 {
		if err := deliver(s, "b@example.com"); err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
		time.Sleep(2100 * time.Millisecond)
	}
	if got := p.Refreshes(); got < 3 {
		t.Errorf("refreshes = %d, want 3 (one per expired token)", got)
	}
	wrong := *c
	wrong.Upstream.OAuthClientID = "not-the-client"
	h.set(&wrong)
	err := deliver(s, "b@example.com")
	if relay.ClassOf(err) != relay.Setup || !strings.Contains(err.Error(), "oauth_client_id") {
		t.Fatalf("after reloading a wrong client id: %v", err)
	}
}
