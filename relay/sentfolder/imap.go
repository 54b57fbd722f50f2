package sentfolder

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/emersion/go-imap"
	"github.com/emersion/go-imap/client"

	"pixelrelay/config"
	"pixelrelay/relay/oauth"
)

// TokenSource gives a current OAuth access token (XOAUTH2).
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// Account is how to reach one mail account's IMAP server.
type Account struct {
	Name     string // the account's name, for logs ("default" for [upstream])
	URL      string // "imaps://host:993" or "imap://host:143" (STARTTLS)
	TLS      string // "none" allows plain imap:// to a loopback host
	CAFile   string // more trusted roots (PEM)
	Username string
	Password string
	// Token, when set, signs in with XOAUTH2 instead of the password.
	Token TokenSource
	// Err is why the account's credentials cannot be had (an unreadable
	// password_file): signing in fails with it.
	Err error
}

// SetupError is a failure of the account's own setup (its URL, its TLS
// settings, a refused sign-in): retried like the others, and named so in
// the reason.
type SetupError struct{ Err error }

func (e *SetupError) Error() string { return e.Err.Error() }
func (e *SetupError) Unwrap() error { return e.Err }

// dialTimeout bounds connecting, TLS and every IMAP command.
const dialTimeout = 60 * time.Second

// connect signs in to the account's IMAP server.
func connect(ctx context.Context, a Account) (*client.Client, error) {
	u, err := url.Parse(a.URL)
	if err != nil || u.Hostname() == "" {
		return nil, &SetupError{fmt.Errorf("imap_url %q: want imaps://host:993 or imap://host:143", a.URL)}
	}
	host := u.Hostname()
	tc, err := tlsConfig(host, a.CAFile)
	if err != nil {
		return nil, &SetupError{err}
	}
	if a.TLS == "none" && u.Scheme == "imap" && !loopback(host) {
		return nil, &SetupError{fmt.Errorf("tls = \"none\" is allowed for a loopback imap_url only, not %s", u.Host)}
	}
	d := &net.Dialer{Timeout: dialTimeout}
	var c *client.Client
	switch u.Scheme {
	case "imaps":
		c, err = client.DialWithDialerTLS(d, net.JoinHostPort(host, portOr(u, "993")), tc)
	case "imap":
		c, err = client.DialWithDialer(d, net.JoinHostPort(host, portOr(u, "143")))
	default:
		return nil, &SetupError{fmt.Errorf("imap_url %q: unknown scheme %q", a.URL, u.Scheme)}
	}
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", u.Host, err)
	}
	c.Timeout = dialTimeout
	c.ErrorLog = log.New(io.Discard, "", 0) // failures reach the caller as errors
	if err := secure(c, u, a.TLS, tc); err != nil {
		c.Terminate()
		return nil, err
	}
	if err := signIn(ctx, c, a); err != nil {
		c.Logout()
		return nil, err
	}
	return c, nil
}

func portOr(u *url.URL, def string) string {
	if p := u.Port(); p != "" {
		return p
	}
	return def
}

// secure starts TLS on a plain imap:// connection, which only tls = "none"
// to a loopback host may skip.
func secure(c *client.Client, u *url.URL, mode string, tc *tls.Config) error {
	if u.Scheme == "imaps" {
		return nil
	}
	if mode == "none" { // loopback only: connect checked it
		return nil
	}
	ok, err := c.SupportStartTLS()
	if err != nil {
		return err
	}
	if !ok {
		return &SetupError{fmt.Errorf("%s offers no STARTTLS (use imaps://)", u.Host)}
	}
	if err := c.StartTLS(tc); err != nil {
		return &SetupError{fmt.Errorf("STARTTLS with %s: %w", u.Host, err)}
	}
	return nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// signIn logs in with the password, or with XOAUTH2 and a fresh token.
func signIn(ctx context.Context, c *client.Client, a Account) error {
	if a.Err != nil {
		return &SetupError{a.Err}
	}
	var err error
	if a.Token != nil {
		var tok string
		if tok, err = a.Token.Token(ctx); err != nil {
			return &SetupError{fmt.Errorf("OAuth token: %w", err)}
		}
		if err = c.Authenticate(oauth.XOAUTH2(a.Username, tok)); err != nil {
			if inv, ok := a.Token.(interface{ Invalidate() }); ok {
				inv.Invalidate() // the next run gets a fresh one
			}
		}
	} else {
		err = c.Login(a.Username, a.Password)
	}
	if err != nil {
		return &SetupError{fmt.Errorf("IMAP login as %s refused: %v", a.Username, err)}
	}
	return nil
}

// tlsConfig verifies the server name against the system roots plus caFile.
func tlsConfig(host, caFile string) (*tls.Config, error) {
	return config.ClientTLS(host, caFile)
}

// Mailboxes are the ones a replacement works in ("" when there is none).
type Mailboxes struct {
	Sent, All, Trash string
}

// sentNames are looked for, case-insensitively, when no mailbox is marked
// \Sent (RFC 6154): the names of Gmail, Outlook/Exchange, Apple and most
// servers.
var sentNames = []string{"Sent", "[Gmail]/Sent Mail", "[Google Mail]/Sent Mail", "Sent Items", "Sent Messages", "Sent Mail", "INBOX.Sent", "INBOX/Sent"}

var trashNames = []string{"Trash", "[Gmail]/Trash", "[Google Mail]/Trash", "Deleted Items", "Deleted Messages", "INBOX.Trash", "INBOX/Trash"}

// ErrNoSent is the failure when the account has no Sent mailbox.
var ErrNoSent = errors.New("no Sent mailbox found (none marked \\Sent, none named " + strings.Join(sentNames, ", ") + ")")

// findMailboxes lists the account's mailboxes and picks Sent, All Mail and
// Trash by their RFC 6154 attributes, Sent and Trash by name when none is
// marked.
func findMailboxes(c *client.Client) (Mailboxes, error) {
	ch := make(chan *imap.MailboxInfo, 64)
	done := make(chan error, 1)
	go func() { done <- c.List("", "*", ch) }()
	var names []string
	var mb Mailboxes
	for info := range ch {
		names = append(names, info.Name)
		for _, attr := range info.Attributes {
			switch {
			case strings.EqualFold(attr, imap.SentAttr) && mb.Sent == "":
				mb.Sent = info.Name
			case strings.EqualFold(attr, imap.AllAttr) && mb.All == "":
				mb.All = info.Name
			case strings.EqualFold(attr, imap.TrashAttr) && mb.Trash == "":
				mb.Trash = info.Name
			}
		}
	}
	if err := <-done; err != nil {
		return mb, fmt.Errorf("LIST: %w", err)
	}
	if mb.Sent == "" {
		mb.Sent = byName(names, sentNames)
	}
	if mb.Trash == "" {
		mb.Trash = byName(names, trashNames)
	}
	if mb.Sent == "" {
		return mb, ErrNoSent
	}
	return mb, nil
}

// byName is the first of want that names a mailbox (case-insensitive).
func byName(names, want []string) string {
	for _, w := range want {
		for _, n := range names {
			if strings.EqualFold(n, w) {
				return n
			}
		}
	}
	return ""
}
