package oauth

import (
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"pixelrelay/relay/smtptest"
)

// TestXOAUTH2 signs in to an upstream that takes only XOAUTH2: a live
// token is accepted, a dead one refused with 535 after the challenge.
func TestXOAUTH2(t *testing.T) {
	live := map[string]bool{"good": true}
	srv := smtptest.Start(t, smtptest.Script{XOAUTH2: func(user, token string) bool {
		return user == "me@example.com" && live[token]
	}})
	tests := []struct {
		user, token string
		want        string
	}{
		{"me@example.com", "good", ""},
		{"me@example.com", "stale", "535"},
		{"other@example.com", "good", "535"},
	}
	for _, tc := range tests {
		t.Run(tc.user+"/"+tc.token, func(t *testing.T) {
			c, err := smtp.Dial(srv.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Hello("localhost"); err != nil {
				t.Fatal(err)
			}
			if !c.SupportsAuth(Mechanism) {
				t.Fatal("XOAUTH2 not offered")
			}
			err = c.Auth(XOAUTH2(tc.user, tc.token))
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Auth: %v, want %q", err, tc.want)
			}
			if err == nil {
				if err := c.Mail("me@example.com", nil); err != nil {
					t.Errorf("MAIL after AUTH: %v", err)
				}
			}
		})
	}
}
