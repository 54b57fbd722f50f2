package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"pixelrelay/config"
	"pixelrelay/relay"
	"pixelrelay/relay/deliver"
	"pixelrelay/relay/oauth"
	"pixelrelay/relay/sentfolder"
)

// checkTimeout bounds each of init's checks.
const checkTimeout = 90 * time.Second

// checkLogin signs in to the SMTP upstream of cfg; "" means it worked.
func checkLogin(cfg *config.Config, p preset) string {
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	s := deliver.NewSMTP(func() *config.Config { return cfg }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.DialTimeout, s.CommandTimeout = 30*time.Second, 60*time.Second
	defer s.Close()
	if err := s.Check(ctx); err != nil {
		return smtpFailure(p, cfg.Upstream.Auth == "oauth", err)
	}
	return ""
}

// checkSent signs in to the IMAP server of cfg's Sent folder and finds
// the mailbox: its name, or the reason it failed.
func checkSent(cfg *config.Config, p preset) (mailbox, failure string) {
	acct, ok := sentfolder.FromConfig(cfg, config.DefaultAccount)
	if !ok {
		return "", "the Sent folder clean-up is off"
	}
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	mb, err := sentfolder.Check(ctx, acct)
	if err != nil {
		return "", imapFailure(p, err)
	}
	return mb.Sent, ""
}

// smtpFailure says in plain words why the SMTP check failed.
func smtpFailure(p preset, withOAuth bool, err error) string {
	var se *smtp.SMTPError
	if errors.As(err, &se) && (se.Code == 535 || se.Code == 534) {
		return refusedLogin(p, withOAuth, se)
	}
	var sie *oauth.SignInError
	if errors.As(err, &sie) {
		return sie.Error()
	}
	var de *relay.DeliveryError
	if errors.As(err, &de) && (de.Stage == "connect" || de.Stage == "tls") && de.Code == 0 && de.Class != relay.Setup {
		return fmt.Sprintf("could not reach the SMTP server: %v", de.Err)
	}
	if errors.As(err, &de) {
		return de.Err.Error()
	}
	return err.Error()
}

// refusedLogin words a 535 or 534 reply to AUTH.
func refusedLogin(p preset, withOAuth bool, se *smtp.SMTPError) string {
	reply := replyText(se)
	switch {
	case withOAuth && p.name == "microsoft":
		return fmt.Sprintf("Microsoft 365 refused the OAuth sign-in (%s): the address must be the one that signed in, and SMTP AUTH must be on for the mailbox (Exchange admin center: the user, Mail apps, Authenticated SMTP)", reply)
	case withOAuth:
		return fmt.Sprintf("%s refused the OAuth sign-in (%s): the address must be the one that signed in with pixelrelay auth login",
			titleCase(p.title), reply)
	case p.name == "gmail" && se.Code == 534:
		return fmt.Sprintf("Gmail wants an app password (%s): turn on 2-Step Verification and make one at myaccount.google.com/apppasswords", reply)
	case p.name == "gmail":
		return fmt.Sprintf("Gmail refused the app password (%s): use a 16-letter app password from myaccount.google.com/apppasswords, not the account's own password, and check the address", reply)
	case p.name == "microsoft":
		return fmt.Sprintf("Microsoft 365 refused the password (%s): SMTP AUTH with a password may be off for this mailbox or the whole organisation (it ends in December 2026); sign in with OAuth instead: pixelrelay init --force --oauth", reply)
	case p.name == "icloud":
		return fmt.Sprintf("iCloud refused the app-specific password (%s): make one at account.apple.com (Sign-In and Security, App-Specific Passwords); the address must be your iCloud Mail address", reply)
	}
	return fmt.Sprintf("the SMTP server refused the login (%s): check the login name and the password", reply)
}

// replyText is an SMTP reply as the server sent it ("535 5.7.8 ...").
func replyText(se *smtp.SMTPError) string {
	ec := se.EnhancedCode
	if ec == smtp.EnhancedCodeNotSet || ec == smtp.NoEnhancedCode {
		return fmt.Sprintf("%d %s", se.Code, oneLine(se.Message))
	}
	return fmt.Sprintf("%d %d.%d.%d %s", se.Code, ec[0], ec[1], ec[2], oneLine(se.Message))
}

// imapFailure says in plain words why the IMAP check failed.
func imapFailure(p preset, err error) string {
	var se *sentfolder.SetupError
	// sentfolder words a refused sign-in "IMAP login as USER refused: ...".
	if errors.As(err, &se) && strings.Contains(err.Error(), "IMAP login as") {
		switch p.name {
		case "gmail":
			return fmt.Sprintf("Gmail refused the IMAP login (%v): the app password works for IMAP as well; check the address", err)
		case "microsoft":
			return fmt.Sprintf("Microsoft 365 refused the IMAP login (%v): IMAP may be off for this mailbox", err)
		case "icloud":
			return fmt.Sprintf("iCloud refused the IMAP login (%v): use the app-specific password", err)
		}
		return fmt.Sprintf("the IMAP server refused the login (%v)", err)
	}
	if errors.Is(err, sentfolder.ErrNoSent) || errors.As(err, &se) {
		return err.Error()
	}
	return fmt.Sprintf("could not reach the IMAP server: %v", err)
}

// hostPort is the host:port of a URL, for messages.
func hostPort(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return raw
	}
	return u.Host
}

// loopbackURL reports whether raw's host is loopback.
func loopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	h := u.Hostname()
	ip := net.ParseIP(h)
	return h == "localhost" || (ip != nil && ip.IsLoopback())
}
