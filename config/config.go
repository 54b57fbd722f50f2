// Package config holds pixelrelay's configuration: the TOML file described in
// CONTRACT.md, its defaults, validation and hot reload.
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
	URL          string `toml:"url"`
	Username     string `toml:"username"`
	Password     string `toml:"password"`
	PasswordFile string `toml:"password_file"`
	TLS          string `toml:"tls"` // "required" | "none"
	CAFile       string `toml:"ca_file"`
	Connections  int    `toml:"connections"`
}

// Queue holds the retry schedule.
type Queue struct {
	MaxAge   Duration `toml:"max_age"`
	MinRetry Duration `toml:"min_retry"`
	MaxRetry Duration `toml:"max_retry"`
}

// Tracking holds what is tracked and how opens are counted.
type Tracking struct {
	BaseURL       string   `toml:"base_url"`
	Policy        string   `toml:"policy"` // "all" | "opt-in"
	Exclude       []string `toml:"exclude"`
	DedupWindow   Duration `toml:"dedup_window"`
	IPHourlyLimit int      `toml:"ip_hourly_limit"`
	Retention     Duration `toml:"retention"`
	// PrefetchWindow: opens this soon after delivery are counted as prefetch.
	PrefetchWindow Duration `toml:"prefetch_window"`
	// AppleRangesFile lists extra CIDRs (one per line) of Apple's MPP egress.
	AppleRangesFile string `toml:"apple_ranges_file"`
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

// Size is a byte count that accepts "35MB", "512KB", "1GB" or a plain number.
type Size int64
