// Package config holds pixelrelay's configuration: the TOML file described in
// CONTRACT.md, its defaults, validation and hot reload.
//
// Use Find to locate the file, LoadValid to load and validate it (every
// problem is reported at once, as Problems naming each key), and a Watcher
// to keep the current config up to date while serving: pass w.Current as a
// func() *Config to long-running components.
//
// Decisions that the contract leaves open:
//   - Sizes: KB, MB and GB are 1024-based ("35MB" = 36700160 bytes);
//     fractions are allowed ("1.5MB"); a TOML integer is a number of bytes.
//   - Durations: Go durations or days ("90d", "1.5d"); a TOML integer is an
//     error (seconds or nanoseconds would be ambiguous).
//   - Keys are case-sensitive; an unknown key is an error, with a
//     "did you mean" hint. Array entries are named with a 0-based index:
//     smtp.users[0].username.
//   - Relative paths in the file are relative to the file's directory; a
//     leading "~/" is the home directory. Loaded configs hold absolute paths.
//   - Credentials written in upstream.url (smtp://user:pass@host:587) are
//     moved to upstream.username/password; the URL never keeps them.
//   - $PIXELRELAY_UPSTREAM_PASSWORD, when set and not empty, wins over
//     upstream.password and upstream.password_file (which is then not read).
//   - tracking.exclude entries are lowercased; tracking.base_url loses any
//     trailing "/".
//   - See Validate for the rules (tls = "none" only towards a loopback
//     upstream; 0 disables ip_hourly_limit, dedup_window, prefetch_window).
package config

import "time"

// Config is one whole, validated configuration. It is never mutated after
// loading: a reload builds a new Config and swaps the pointer.
type Config struct {
	// Path is the file this config came from ("" for built-in defaults).
	Path string `toml:"-"`

	DataDir  string   `toml:"data_dir"`
	SMTP     SMTP     `toml:"smtp"`
	Upstream Upstream `toml:"upstream"`
	Queue    Queue    `toml:"queue"`
	Tracking Tracking `toml:"tracking"`
	HTTP     HTTP     `toml:"http"`
	Store    Store    `toml:"store"`
	Tracker  Tracker  `toml:"tracker"`
	// Webhooks are the endpoints that receive events (see webhooks.go).
	Webhooks []Webhook `toml:"webhooks"`
	// Named are the [[accounts]] blocks, in file order; Accounts() adds
	// [upstream] as the account named "default" (see accounts.go).
	Named []Account `toml:"accounts"`
}

// SMTP is the submission listener mail clients talk to.
type SMTP struct {
	Listen         string `toml:"listen"`
	Hostname       string `toml:"hostname"`
	MaxMessageSize Size   `toml:"max_message_size"`
	MaxRecipients  int    `toml:"max_recipients"`
	TLSCert        string `toml:"tls_cert"`
	TLSKey         string `toml:"tls_key"`
	Users          []User `toml:"users"`
}

// User is one SMTP AUTH account. PasswordHash is a bcrypt hash; when
// PasswordFile is set the hash is read from that file at load time.
type User struct {
	Username     string `toml:"username"`
	PasswordHash string `toml:"password_hash"`
	PasswordFile string `toml:"password_file"`
}

// Upstream is where copies are delivered.
type Upstream struct {
	// URL is "outbox", "smtp://host:port" (STARTTLS) or "smtps://host:port".
	// It never holds credentials once loaded (see UpstreamRedacted).
	URL      string `toml:"url"`
	Username string `toml:"username"`
	// Password is resolved at load: $PIXELRELAY_UPSTREAM_PASSWORD, else
	// the content of PasswordFile, else the password key.
	Password     string `toml:"password"`
	PasswordFile string `toml:"password_file"`
	TLS          string `toml:"tls"` // "required" | "none" (loopback only)
	CAFile       string `toml:"ca_file"`
	Connections  int    `toml:"connections"`

	// Auth is "password" (the default) or "oauth": XOAUTH2 with the token
	// `pixelrelay auth login` stored.
	Auth string `toml:"auth"`
	// OAuthProvider is "google", "microsoft" or "" (custom: both URLs set).
	OAuthProvider string `toml:"oauth_provider"`
	OAuthClientID string `toml:"oauth_client_id"`
	// OAuthClientSecret is read from OAuthClientSecretFile when that is set.
	OAuthClientSecret     string `toml:"oauth_client_secret"`
	OAuthClientSecretFile string `toml:"oauth_client_secret_file"`
	// OAuthAuthURL and OAuthTokenURL override the provider's endpoints;
	// see OAuthURLs.
	OAuthAuthURL  string `toml:"oauth_auth_url"`
	OAuthTokenURL string `toml:"oauth_token_url"`
	// SentFolder is "auto" (the default: on for the providers IMAP knows),
	// "on" or "off"; see SentFolderOn.
	SentFolder string `toml:"sent_folder"`
	// IMAPURL is "imaps://host:993" or "imap://host:143" (STARTTLS, or plain
	// with tls = "none" on loopback); "" = known from the SMTP host (IMAP).
	IMAPURL string `toml:"imap_url"`
}

// Queue holds the retry schedule.
type Queue struct {
	MaxAge   Duration `toml:"max_age"`
	MinRetry Duration `toml:"min_retry"`
	MaxRetry Duration `toml:"max_retry"`
}

// Tracking holds what is tracked and how opens are counted.
type Tracking struct {
	BaseURL string   `toml:"base_url"`
	Policy  string   `toml:"policy"` // "all" | "opt-in"
	Exclude []string `toml:"exclude"`
	// DedupWindow: repeated fetches (same id, IP, user agent) within it
	// count once. 0 disables de-duplication.
	DedupWindow Duration `toml:"dedup_window"`
	// IPHourlyLimit is the most opens recorded per IP in the last hour.
	// 0 means no limit.
	IPHourlyLimit int      `toml:"ip_hourly_limit"`
	Retention     Duration `toml:"retention"`
	// PrefetchWindow: opens this soon after delivery are counted as
	// prefetch. 0 disables it.
	PrefetchWindow Duration `toml:"prefetch_window"`
	// AppleRangesFile lists extra CIDRs (one per line) of Apple's MPP
	// egress; see ParseRanges for the format.
	AppleRangesFile string `toml:"apple_ranges_file"`
	// NetworksFile adds machine networks to the built-in table, one
	// "CIDR CLASS SOURCE" a line (see ParseNetworks); a line with the same
	// CIDR as a built-in one replaces it.
	NetworksFile string `toml:"networks_file"`
	// SelfWindow: when smtp.listen is not loopback, a pixel fetch from an
	// address that submitted mail through the relay within this window is
	// the sender's own view (bot_type "self"). 0 turns it off.
	SelfWindow Duration `toml:"self_window"`
	// Clicks: rewrite the http(s) links of tracked HTML parts to count
	// clicks (see relay/rewrite).
	Clicks bool `toml:"clicks"`
}

// HTTP is the tracker and admin API listener.
type HTTP struct {
	Listen         string   `toml:"listen"`
	TrustedProxies []string `toml:"trusted_proxies"`
}

// Duration is a time.Duration that also accepts a number of days ("90d").
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Size is a byte count that accepts "35MB", "512KB", "1GB" (1024-based),
// "1.5MB" or a plain number of bytes.
type Size int64
