package deliver

import (
	"errors"
	"strings"
	"testing"

	"pixelrelay/config"
	"pixelrelay/relay"
	"pixelrelay/relay/smtptest"
)

// TestAccounts: each account delivers to its own upstream with its own
// credentials ($PIXELRELAY_UPSTREAM_PASSWORD is [upstream]'s only), a
// removed or unknown account gets [upstream]'s, and a named account's
// setup failures name its own keys.
func TestAccounts(t *testing.T) {
	t.Setenv("PIXELRELAY_UPSTREAM_PASSWORD", "env-pw")
	def := smtptest.Start(t, smtptest.Script{AuthUsers: map[string]string{"me": "env-pw"}})
	work := smtptest.Start(t, smtptest.Script{AuthUsers: map[string]string{"w@work.test": "work-pw"}})
	club := smtptest.Start(t, smtptest.Script{AuthUsers: map[string]string{"c@club.test": "right"}})
	c := cfgFor(def, "smtp", "none")
	c.Upstream.Username = "me"
	c.Named = []config.Account{
		{Name: "work", Senders: []string{"@work.test"}, Upstream: config.Upstream{
			URL: work.URL("smtp"), TLS: "none", Connections: 1, Username: "w@work.test", Password: "work-pw"}},
		{Name: "club", Senders: []string{"@club.test"}, Upstream: config.Upstream{
			URL: club.URL("smtp"), TLS: "none", Connections: 1, Username: "c@club.test", Password: "wrong"}},
	}
	h := newHolder(c)
	ups := NewAccounts(h.get, nil)
	defer ups.Close()

	for _, tt := range []struct {
		account string
		srv     *smtptest.Server
		rcpt    string
	}{
		{"work", work, "w1@ex.test"},
		{"default", def, "d1@ex.test"},
		{"", def, "d2@ex.test"},
		{"gone", def, "d3@ex.test"},
	} {
		if err := deliver(ups.For(tt.account), tt.rcpt); err != nil {
			t.Fatalf("account %q: %v", tt.account, err)
		}
		if !received(tt.srv, tt.rcpt) {
			t.Errorf("account %q: %s did not reach its upstream", tt.account, tt.rcpt)
		}
	}

	err := deliver(ups.For("club"), "c1@ex.test")
	wantClass(t, err, relay.Setup, 535)
	if !strings.Contains(err.Error(), "check accounts[1].username and accounts[1].password") {
		t.Errorf("club's error %q does not name its keys", err)
	}

	// A reload removes work: its copies go to [upstream].
	next := *c
	next.Named = c.Named[1:]
	h.set(&next)
	if err := deliver(ups.For("work"), "w2@ex.test"); err != nil {
		t.Fatal(err)
	}
	if !received(def, "w2@ex.test") || received(work, "w2@ex.test") {
		t.Error("after the reload, work's copy did not go to [upstream]")
	}
}

func received(srv *smtptest.Server, rcpt string) bool {
	for _, m := range srv.Messages() {
		for _, to := range m.To {
			if to == rcpt {
				return true
			}
		}
	}
	return false
}

func TestKeyedError(t *testing.T) {
	tests := []struct{ in, want string }{
		{"check upstream.username and upstream.password", "check accounts[2].username and accounts[2].password"},
		{"upstream.password_file: no such file", "accounts[2].password_file: no such file"},
		{"x509: certificate is valid for upstream.example.com (check upstream.url)",
			"x509: certificate is valid for upstream.example.com (check accounts[2].url)"},
	}
	for _, tt := range tests {
		if got := (keyedError{err: errors.New(tt.in), key: "accounts[2]"}).Error(); got != tt.want {
			t.Errorf("%q: %q, want %q", tt.in, got, tt.want)
		}
	}
}
