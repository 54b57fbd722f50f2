// Package oauth signs pixelrelay in to a mail account with OAuth 2.0 and
// hands out access tokens for XOAUTH2 on SMTP and IMAP.
//
// Login runs the installed-app flow (RFC 8252): a loopback redirect on a
// random port of 127.0.0.1, PKCE S256 and a state check; it stores the
// refresh token in data_dir/oauth/token-ACCOUNT.json (0600, written to a
// temporary file, synced and renamed). For returns the process-wide Source
// of an account: Token hands out a cached access token and refreshes it
// before it expires; a refresh that fails is recorded in
// data_dir/oauth/status-ACCOUNT.json, which ReadStatus (and `pixelrelay
// auth status`) reads. A refresh token the provider no longer accepts
// (invalid_grant), or none at all, is a *SignInError naming the command
// that fixes it; a token endpoint that cannot be reached is a plain error
// (temporary). XOAUTH2 is the SASL client for the access token.
//
// Built on golang.org/x/oauth2.
package oauth

import (
	"fmt"
	"net/url"
	"strings"

	"golang.org/x/oauth2"

	"pixelrelay/config"
)

// Providers with built-in scopes.
const (
	Google    = "google"
	Microsoft = "microsoft"
)

// Options are one account's OAuth settings.
type Options struct {
	// Account is the account's name ("default" for [upstream]).
	Account string
	// DataDir holds the token and status files.
	DataDir string
	// Provider is "google", "microsoft" or "" (custom: AuthURL and TokenURL).
	Provider     string
	ClientID     string
	ClientSecret string
	// AuthURL and TokenURL are the endpoints (config.Upstream.OAuthURLs
	// knows the providers').
	AuthURL  string
	TokenURL string
	// Scopes override the provider's (custom providers have none by default).
	Scopes []string
	// User is the account's address (login_hint; XOAUTH2's user).
	User string
}

// DefaultAccount is the name of the [upstream] account.
const DefaultAccount = config.DefaultAccount

// FromConfig returns the options of account a with data directory dataDir.
func FromConfig(dataDir string, a config.Account) Options {
	authURL, tokenURL := a.OAuthURLs()
	return Options{Account: a.Name, DataDir: dataDir, Provider: a.OAuthProvider,
		ClientID: a.OAuthClientID, ClientSecret: a.OAuthClientSecret,
		AuthURL: authURL, TokenURL: tokenURL, User: a.Username}
}

var scopes = map[string][]string{
	Google: {"https://mail.google.com/"},
	Microsoft: {"https://outlook.office.com/SMTP.Send",
		"https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access"},
}

// config is the oauth2.Config for o, without a redirect URL.
func (o Options) config() (*oauth2.Config, error) {
	ep := oauth2.Endpoint{AuthURL: o.AuthURL, TokenURL: o.TokenURL}
	if err := checkURL("oauth_auth_url", ep.AuthURL); err != nil {
		return nil, err
	}
	if err := checkURL("oauth_token_url", ep.TokenURL); err != nil {
		return nil, err
	}
	if o.ClientID == "" {
		return nil, fmt.Errorf("account %s: oauth_client_id is not set", o.Account)
	}
	ep.AuthStyle = oauth2.AuthStyleInParams
	if o.Provider == "" && o.ClientSecret != "" {
		ep.AuthStyle = oauth2.AuthStyleAutoDetect
	}
	sc := o.Scopes
	if sc == nil {
		sc = scopes[o.Provider]
	}
	return &oauth2.Config{ClientID: o.ClientID, ClientSecret: o.ClientSecret,
		Endpoint: ep, Scopes: sc}, nil
}

func checkURL(key, s string) error {
	if s == "" {
		return fmt.Errorf("%s is not set (needed without oauth_provider)", key)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%s %q: want an https:// URL", key, s)
	}
	return nil
}

// key is what a cached access token depends on.
func (o Options) key() string {
	return strings.Join(append([]string{o.DataDir, o.Provider, o.ClientID, o.ClientSecret,
		o.AuthURL, o.TokenURL}, o.Scopes...), "\x00")
}

// LoginCommand is the command that signs account in again.
func LoginCommand(account string) string {
	if account == "" || account == DefaultAccount {
		return "pixelrelay auth login"
	}
	return "pixelrelay auth login --account " + account
}
