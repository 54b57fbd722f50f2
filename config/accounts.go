package config

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
)

// DefaultAccount names [upstream] among the accounts.
const DefaultAccount = "default"

// Account is one upstream account: [upstream] (named "default") or an
// [[accounts]] block, which has every key of [upstream] besides its own.
type Account struct {
	// Name is unique: letters, digits, '-' and '_', at most 64; shown by
	// messages, queue and status, and names the account's files in data_dir.
	Name string `toml:"name"`
	// Senders are envelope senders ("alice@example.com") or domains
	// ("@example.com") that use this account; lowercased at load.
	Senders []string `toml:"senders"`
	// SMTPUsers are SMTP AUTH users whose messages use this account.
	SMTPUsers []string `toml:"smtp_users"`
	Upstream
}

// setDefaults gives an [[accounts]] block [upstream]'s built-in defaults
// (not the values of the file's [upstream]) before its keys are decoded.
func (a *Account) setDefaults() { a.Upstream = defaultUpstream() }

// Accounts returns every account: [upstream] as "default" first, then the
// [[accounts]] blocks in file order.
func (c *Config) Accounts() []Account {
	out := make([]Account, 0, 1+len(c.Named))
	out = append(out, Account{Name: DefaultAccount, Upstream: c.Upstream})
	return append(out, c.Named...)
}

// Account returns the account called name ("default" is [upstream]).
func (c *Config) Account(name string) (Account, bool) {
	if name == DefaultAccount {
		return Account{Name: DefaultAccount, Upstream: c.Upstream}, true
	}
	for _, a := range c.Named {
		if a.Name == name {
			return a, true
		}
	}
	return Account{}, false
}

// Route returns the account a message uses: the first [[accounts]] block
// whose senders match the envelope sender (an address or "@domain",
// case-insensitively) or whose smtp_users holds the SMTP AUTH user
// (authUser, "" when none), else [upstream] ("default").
func (c *Config) Route(sender, authUser string) Account {
	for _, a := range c.Named {
		if a.Sends(sender) || (authUser != "" && slices.Contains(a.SMTPUsers, authUser)) {
			return a
		}
	}
	return Account{Name: DefaultAccount, Upstream: c.Upstream}
}

// Sends reports whether the account's senders match addr.
func (a *Account) Sends(addr string) bool {
	addr = strings.ToLower(strings.TrimSpace(addr))
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return false
	}
	for _, s := range a.Senders {
		if s == addr || (strings.HasPrefix(s, "@") && addr[at:] == s) {
			return true
		}
	}
	return false
}

// knownProvider is a mail provider whose SMTP server files sent mail in
// the account's Sent folder.
type knownProvider struct {
	name      string
	smtpHosts []string
	imap      string
}

var knownProviders = []knownProvider{
	{"gmail", []string{"smtp.gmail.com", "smtp.googlemail.com"}, "imaps://imap.gmail.com:993"},
	{"microsoft", []string{"smtp.office365.com", "smtp-mail.outlook.com", "outlook.office365.com"}, "imaps://outlook.office365.com:993"},
	{"icloud", []string{"smtp.mail.me.com"}, "imaps://imap.mail.me.com:993"},
}

// Provider names the provider of the SMTP host in url: "gmail",
// "microsoft" (Microsoft 365, Outlook.com), "icloud", or "" when unknown.
func (u *Upstream) Provider() string {
	p, ok := u.known()
	if !ok {
		return ""
	}
	return p.name
}

func (u *Upstream) known() (knownProvider, bool) {
	pu, err := url.Parse(u.URL)
	if err != nil {
		return knownProvider{}, false
	}
	host := strings.TrimSuffix(strings.ToLower(pu.Hostname()), ".")
	for _, p := range knownProviders {
		if slices.Contains(p.smtpHosts, host) {
			return p, true
		}
	}
	return knownProvider{}, false
}

// IMAP returns the account's IMAP server: imap_url when set, else the
// provider's (Gmail, Microsoft 365 / Outlook.com, iCloud) from the SMTP
// host, else "".
// A URL without a port gets its scheme's (993 for imaps, 143 for imap).
func (u *Upstream) IMAP() string {
	if u.IMAPURL == "" {
		p, _ := u.known()
		return p.imap
	}
	pu, err := url.Parse(u.IMAPURL)
	if err != nil || pu.Port() != "" || pu.Hostname() == "" {
		return u.IMAPURL
	}
	port := map[string]string{"imaps": "993", "imap": "143"}[pu.Scheme]
	if port == "" {
		return u.IMAPURL
	}
	pu.Host = net.JoinHostPort(pu.Hostname(), port)
	return pu.String()
}

// SentFolderOn reports whether the Sent folder is cleaned up: sent_folder
// "on", or "auto" with a known provider (see Provider).
func (u *Upstream) SentFolderOn() bool {
	switch u.SentFolder {
	case "on":
		return true
	case "auto":
		return u.Provider() != ""
	}
	return false
}

// OAuth endpoints of the known providers.
var oauthEndpoints = map[string][2]string{
	"google":    {"https://accounts.google.com/o/oauth2/auth", "https://oauth2.googleapis.com/token"},
	"microsoft": {"https://login.microsoftonline.com/common/oauth2/v2.0/authorize", "https://login.microsoftonline.com/common/oauth2/v2.0/token"},
}

// OAuthURLs returns the authorization and token endpoints: oauth_auth_url
// and oauth_token_url where set, else oauth_provider's.
func (u *Upstream) OAuthURLs() (authURL, tokenURL string) {
	e := oauthEndpoints[u.OAuthProvider]
	authURL, tokenURL = u.OAuthAuthURL, u.OAuthTokenURL
	if authURL == "" {
		authURL = e[0]
	}
	if tokenURL == "" {
		tokenURL = e[1]
	}
	return authURL, tokenURL
}

// normalizeAccounts lowercases and trims each account's senders.
func (c *Config) normalizeAccounts() {
	for i := range c.Named {
		for j, s := range c.Named[i].Senders {
			c.Named[i].Senders[j] = strings.ToLower(strings.TrimSpace(s))
		}
	}
}

// checkAccounts validates every [[accounts]] block.
func (c *Config) checkAccounts(v *validator) {
	seen := map[string]int{}
	users := map[string]bool{}
	for _, u := range c.SMTP.Users {
		users[u.Username] = true
	}
	for i, a := range c.Named {
		key := fmt.Sprintf("accounts[%d]", i)
		if checkAccountName(v, key+".name", a.Name) {
			if j, dup := seen[a.Name]; dup {
				v.add(key+".name", "%q is already used by accounts[%d]", a.Name, j)
			} else {
				seen[a.Name] = i
			}
		}
		if len(a.Senders) == 0 && len(a.SMTPUsers) == 0 {
			v.add(key+".senders", "set senders or smtp_users: without either no message uses this account")
		}
		for j, s := range a.Senders {
			if !validExclude(s) {
				v.add(fmt.Sprintf("%s.senders[%d]", key, j), `%q is neither an address (alice@example.com) nor a domain (@example.com)`, s)
			}
		}
		for j, u := range a.SMTPUsers {
			if !users[u] {
				v.add(fmt.Sprintf("%s.smtp_users[%d]", key, j), "%q is not the username of any [[smtp.users]]", u)
			}
		}
		checkUpstream(v, key, &a.Upstream)
	}
}

func checkAccountName(v *validator, key, name string) bool {
	if name == DefaultAccount {
		v.add(key, "%q is the name of [upstream]; choose another", name)
		return false
	}
	return checkWebhookName(v, key, name)
}

// checkAuth checks auth and the oauth_* keys of an upstream.
func checkAuth(v *validator, prefix string, up *Upstream) {
	switch up.OAuthProvider {
	case "", "google", "microsoft":
	default:
		v.add(prefix+".oauth_provider", `must be "google", "microsoft" or "" (custom: set oauth_auth_url and oauth_token_url), not %q`, up.OAuthProvider)
	}
	checkOAuthURL(v, prefix+".oauth_auth_url", up.OAuthAuthURL)
	checkOAuthURL(v, prefix+".oauth_token_url", up.OAuthTokenURL)
	switch up.Auth {
	case "password":
		return
	case "oauth":
	default:
		v.add(prefix+".auth", `must be "password" or "oauth", not %q`, up.Auth)
		return
	}
	if up.OAuthProvider == "" && (up.OAuthAuthURL == "" || up.OAuthTokenURL == "") {
		v.add(prefix+".oauth_provider", `auth = "oauth" needs oauth_provider ("google" or "microsoft") or both oauth_auth_url and oauth_token_url`)
	}
	if up.OAuthClientID == "" {
		v.add(prefix+".oauth_client_id", `must be set when auth = "oauth" (the OAuth client's id)`)
	}
	if up.URL != "outbox" && up.Username == "" {
		v.add(prefix+".username", `must be set when auth = "oauth" (the account's address)`)
	}
}

// checkOAuthURL accepts "" or an https:// URL (http:// on loopback, for tests).
func checkOAuthURL(v *validator, key, raw string) {
	if raw == "" {
		return
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Hostname() == "":
		v.add(key, "%q is not an absolute https:// URL", raw)
	case u.Scheme == "https":
	case u.Scheme == "http" && IsLoopback(u.Host):
	default:
		v.add(key, "%q must be an https:// URL (http:// only on loopback)", raw)
	}
}

// checkSentFolder checks sent_folder and imap_url of an upstream.
func checkSentFolder(v *validator, prefix string, up *Upstream) {
	switch up.SentFolder {
	case "auto", "off":
	case "on":
		if up.IMAP() == "" {
			v.add(prefix+".imap_url", `must be set when sent_folder = "on" and the provider is not known (Gmail, Microsoft 365 / Outlook.com, iCloud)`)
		}
	default:
		v.add(prefix+".sent_folder", `must be "auto", "on" or "off", not %q`, up.SentFolder)
	}
	if up.IMAPURL != "" {
		checkIMAPURL(v, prefix, up)
	}
}

// checkIMAPURL checks an imaps:// or imap:// URL with a host; imap:// with
// tls = "none" (no STARTTLS) only on loopback.
func checkIMAPURL(v *validator, prefix string, up *Upstream) {
	key := prefix + ".imap_url"
	u, err := url.Parse(up.IMAPURL)
	switch {
	case err != nil || (u.Scheme != "imap" && u.Scheme != "imaps"):
		v.add(key, `%q must be "imaps://host:993" or "imap://host:143"`, up.IMAPURL)
	case u.Opaque != "" || u.Hostname() == "":
		v.add(key, "%q has no host", up.IMAPURL)
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		v.add(key, "%q must not have credentials, a path, a query or a fragment", up.IMAPURL)
	case !validPort(u.Port()):
		v.add(key, "port %q is not between 1 and 65535", u.Port())
	case up.TLS == "none" && u.Scheme == "imap" && !IsLoopback(u.Host):
		v.add(key, `plain imap:// (tls = "none") is only allowed on loopback; %s would get the password in clear text`, u.Hostname())
	}
}

// validPort accepts "" (the scheme's port) or 1-65535.
func validPort(p string) bool {
	if p == "" {
		return true
	}
	n := 0
	for _, r := range p {
		if r < '0' || r > '9' || n > 65535 {
			return false
		}
		n = n*10 + int(r-'0')
	}
	return n >= 1 && n <= 65535
}
