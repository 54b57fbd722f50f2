package deliver

import (
	"context"
	"errors"
	"fmt"

	"github.com/emersion/go-smtp"

	"pixelrelay/relay"
	"pixelrelay/relay/oauth"
)

// authOAuth authenticates with XOAUTH2 and the account's access token. A
// refused token is dropped and a fresh one tried once more: the provider
// may have revoked it before it expired. An account whose sign-in expired
// or was revoked is a Setup failure naming the command that fixes it; a
// token endpoint out of reach is Temporary.
func (s *SMTP) authOAuth(ctx context.Context, c *smtp.Client, st *settings) error {
	if !c.SupportsAuth(oauth.Mechanism) {
		c.Close()
		return setupErr("auth", fmt.Errorf(`upstream %s does not offer AUTH XOAUTH2 but upstream.auth is "oauth"`, st.addr))
	}
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		var tok string
		if tok, err = st.oauth.Token(ctx); err != nil {
			c.Close()
			return tokenErr(err)
		}
		if err = c.Auth(oauth.XOAUTH2(st.user, tok)); err == nil {
			return nil
		}
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code/100 != 5 {
			break
		}
		st.oauth.Invalidate()
	}
	c.Close()
	de := classify(err, "auth")
	var se *smtp.SMTPError
	if de.Class == relay.Setup && errors.As(err, &se) {
		de.Err = fmt.Errorf("%w (the upstream refuses the OAuth access token for %s: check that upstream.username is the address that signed in; on Microsoft 365 SMTP AUTH must be enabled for the mailbox)",
			&replyError{se}, st.user)
	}
	return de
}

// tokenErr classifies a failure to get an access token.
func tokenErr(err error) *relay.DeliveryError {
	var sie *oauth.SignInError
	if errors.As(err, &sie) {
		return setupErr("auth", err)
	}
	return &relay.DeliveryError{Class: relay.Temporary, Stage: "auth", Err: err}
}
