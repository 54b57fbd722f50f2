package config

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Problem is one thing wrong with a configuration. Key is the full TOML key
// ("smtp.listen", "smtp.users[0].username"; array indexes count from 0); it
// is "" only for a TOML syntax error without a known key.
type Problem struct {
	Key    string
	Reason string
}

// String is "key: reason".
func (p Problem) String() string {
	if p.Key == "" {
		return p.Reason
	}
	return p.Key + ": " + p.Reason
}

// Problems is every problem found in one configuration. As an error it
// prints one "key: reason" per line.
type Problems []Problem

// Error implements error.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Limits of upstream.connections.
const (
	MinConnections = 1
	MaxConnections = 64
)

// Validate checks the whole configuration and returns every problem found
// (nil when it is fine). It reads the files the config names (TLS
// certificate and key, CA file, Apple ranges file) to check they are usable.
//
// Decisions worth knowing:
//   - smtp.listen on a non-loopback address requires [[smtp.users]]: without
//     them the relay would be an open relay.
//   - upstream.tls = "none" is allowed only for an smtp:// upstream on a
//     loopback host (an IP loopback address or "localhost"): anywhere else it
//     would send the upstream password and the mail in clear text.
//   - upstream.username and a password go together (for smtp/smtps URLs).
//   - tracking.ip_hourly_limit = 0 means no per-IP limit;
//     tracking.dedup_window = 0 disables de-duplication;
//     tracking.prefetch_window = 0 disables prefetch classification.
//   - Listen ports may be 0 (any free port; used by tests).
func (c *Config) Validate() Problems {
	return c.validate(nil)
}

// validate runs every check and drops problems whose key already has a
// decode problem in skip (the value there is the default, not the user's).
func (c *Config) validate(skip Problems) Problems {
	v := &validator{}
	c.checkDataDir(v)
	c.checkSMTP(v)
	c.checkUpstream(v)
	c.checkQueue(v)
	c.checkTracking(v)
	c.checkHTTP(v)
	c.checkWebhooks(v)
	c.checkAccounts(v)
	c.checkSplit(v)
	if len(skip) == 0 {
		return v.ps
	}
	seen := map[string]bool{}
	for _, p := range skip {
		seen[p.Key] = true
	}
	var out Problems
	for _, p := range v.ps {
		if !seen[p.Key] {
			out = append(out, p)
		}
	}
	return out
}

type validator struct{ ps Problems }

func (v *validator) add(key, format string, args ...any) {
	v.ps = append(v.ps, Problem{Key: key, Reason: fmt.Sprintf(format, args...)})
}

func (c *Config) checkDataDir(v *validator) {
	switch {
	case c.DataDir == "":
		v.add("data_dir", "is empty; set it (the default needs $XDG_STATE_HOME or $HOME)")
	case !filepath.IsAbs(c.DataDir):
		v.add("data_dir", "must be an absolute path, not %q", c.DataDir)
	default:
		if st, err := os.Stat(c.DataDir); err == nil && !st.IsDir() {
			v.add("data_dir", "%s is not a directory", c.DataDir)
		}
	}
}

func (c *Config) checkSMTP(v *validator) {
	s := &c.SMTP
	listenOK := checkListen(v, "smtp.listen", s.Listen)
	if s.Hostname == "" {
		v.add("smtp.hostname", "must not be empty")
	} else if strings.ContainsFunc(s.Hostname, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		v.add("smtp.hostname", "%q must not contain spaces or control characters", s.Hostname)
	}
	if s.MaxMessageSize <= 0 {
		v.add("smtp.max_message_size", "must be more than 0")
	}
	if s.MaxRecipients <= 0 {
		v.add("smtp.max_recipients", "must be more than 0")
	}
	c.checkSMTPTLS(v)
	c.checkUsers(v)
	if listenOK && len(s.Users) == 0 && !IsLoopback(s.Listen) {
		v.add("smtp.listen", "%s is not a loopback address; add [[smtp.users]] so it is not an open relay", s.Listen)
	}
}

func (c *Config) checkSMTPTLS(v *validator) {
	s := &c.SMTP
	switch {
	case s.TLSCert == "" && s.TLSKey == "":
		return
	case s.TLSKey == "":
		v.add("smtp.tls_key", "must be set when smtp.tls_cert is set")
		checkReadable(v, "smtp.tls_cert", s.TLSCert)
		return
	case s.TLSCert == "":
		v.add("smtp.tls_cert", "must be set when smtp.tls_key is set")
		checkReadable(v, "smtp.tls_key", s.TLSKey)
		return
	}
	okCert := checkReadable(v, "smtp.tls_cert", s.TLSCert)
	okKey := checkReadable(v, "smtp.tls_key", s.TLSKey)
	if okCert && okKey {
		if _, err := tls.LoadX509KeyPair(s.TLSCert, s.TLSKey); err != nil {
			v.add("smtp.tls_cert", "cannot be used with smtp.tls_key: %v", err)
		}
	}
}

func (c *Config) checkUsers(v *validator) {
	seen := map[string]int{}
	for i, u := range c.SMTP.Users {
		key := fmt.Sprintf("smtp.users[%d]", i)
		switch {
		case u.Username == "":
			v.add(key+".username", "must not be empty")
		case strings.ContainsFunc(u.Username, func(r rune) bool { return r < ' ' || r == 0x7f }):
			v.add(key+".username", "must not contain control characters")
		default:
			if j, dup := seen[u.Username]; dup {
				v.add(key+".username", "%q is already used by smtp.users[%d]", u.Username, j)
			} else {
				seen[u.Username] = i
			}
		}
		switch {
		case u.PasswordHash == "" && u.PasswordFile != "":
			// The file could not be read: reported while loading.
		case u.PasswordHash == "":
			v.add(key+".password_hash", "must be set (a bcrypt hash), or set password_file")
		default:
			if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
				from := "password_hash"
				if u.PasswordFile != "" {
					from = "password_file " + u.PasswordFile
				}
				v.add(key+".password_hash", "%s is not a bcrypt hash ($2a$, $2b$ or $2y$...)", from)
			}
		}
	}
}

func (c *Config) checkUpstream(v *validator) {
	checkUpstream(v, "upstream", &c.Upstream)
}

// checkUpstream checks [upstream] or an [[accounts]] block; prefix is its
// key ("upstream", "accounts[0]").
func checkUpstream(v *validator, prefix string, up *Upstream) {
	if up.TLS != "required" && up.TLS != "none" {
		v.add(prefix+".tls", `must be "required" or "none", not %q`, up.TLS)
	}
	if up.Connections < MinConnections || up.Connections > MaxConnections {
		v.add(prefix+".connections", "must be between %d and %d, not %d", MinConnections, MaxConnections, up.Connections)
	}
	if up.CAFile != "" && checkReadable(v, prefix+".ca_file", up.CAFile) {
		pem, _ := os.ReadFile(up.CAFile)
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			v.add(prefix+".ca_file", "%s holds no PEM certificate", up.CAFile)
		}
	}
	checkAuth(v, prefix, up)
	checkSentFolder(v, prefix, up)
	if up.URL == "outbox" {
		return
	}
	u, ok := checkUpstreamURL(v, prefix+".url", up.URL)
	if !ok {
		return
	}
	if up.TLS == "none" {
		switch {
		case u.Scheme == "smtps":
			v.add(prefix+".tls", `"none" cannot be used with smtps:// (implicit TLS); use smtp://`)
		case !IsLoopback(u.Host):
			v.add(prefix+".tls", `"none" is only allowed for a loopback upstream; %s would get the password and mail in clear text`, u.Hostname())
		}
	}
	if up.Auth == "oauth" {
		return
	}
	if up.Username != "" && up.Password == "" && up.PasswordFile == "" {
		env := ""
		if prefix == "upstream" {
			env = " or $" + EnvUpstreamPassword
		}
		v.add(prefix+".password", "%s.username is set but no password is (set password, password_file%s)", prefix, env)
	}
	if up.Username == "" && up.Password != "" {
		v.add(prefix+".username", "must be set when a password is set")
	}
}

// checkUpstreamURL checks an smtp:// or smtps:// URL with host and port.
func checkUpstreamURL(v *validator, key, raw string) (*url.URL, bool) {
	u, err := url.Parse(raw)
	if err != nil {
		v.add(key, `%q is not a URL; use "outbox", "smtp://host:587" or "smtps://host:465"`, raw)
		return nil, false
	}
	if u.Scheme != "smtp" && u.Scheme != "smtps" {
		v.add(key, "scheme must be smtp, smtps or outbox")
		return nil, false
	}
	if u.Opaque != "" || u.Hostname() == "" {
		v.add(key, "%q has no host; write %s://host:port", raw, u.Scheme)
		return nil, false
	}
	ok := true
	if u.Port() == "" {
		example := map[string]string{"smtp": "587", "smtps": "465"}[u.Scheme]
		v.add(key, "%q has no port; write %s://%s:%s", raw, u.Scheme, u.Hostname(), example)
		ok = false
	} else if n, err := strconv.Atoi(u.Port()); err != nil || n < 1 || n > 65535 {
		v.add(key, "port %q is not between 1 and 65535", u.Port())
		ok = false
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		v.add(key, "%q must not have a path, query or fragment", raw)
		ok = false
	}
	return u, ok
}

func (c *Config) checkQueue(v *validator) {
	q := &c.Queue
	for _, f := range []struct {
		key string
		d   Duration
	}{{"queue.max_age", q.MaxAge}, {"queue.min_retry", q.MinRetry}, {"queue.max_retry", q.MaxRetry}} {
		if f.d <= 0 {
			v.add(f.key, "must be more than 0")
		}
	}
	if q.MinRetry > 0 && q.MaxRetry > 0 && q.MinRetry > q.MaxRetry {
		v.add("queue.min_retry", "%s is longer than queue.max_retry (%s)", q.MinRetry, q.MaxRetry)
	}
}

func (c *Config) checkTracking(v *validator) {
	t := &c.Tracking
	checkBaseURL(v, t.BaseURL)
	if t.Policy != "all" && t.Policy != "opt-in" {
		v.add("tracking.policy", `must be "all" or "opt-in", not %q`, t.Policy)
	}
	for i, e := range t.Exclude {
		if !validExclude(e) {
			v.add(fmt.Sprintf("tracking.exclude[%d]", i), `%q is neither an address (alice@example.com) nor a domain (@example.com)`, e)
		}
	}
	if t.DedupWindow < 0 {
		v.add("tracking.dedup_window", "must not be negative")
	}
	if t.IPHourlyLimit < 0 {
		v.add("tracking.ip_hourly_limit", "must not be negative (0 means no limit)")
	}
	if t.Retention <= 0 {
		v.add("tracking.retention", "must be more than 0")
	}
	if t.PrefetchWindow < 0 {
		v.add("tracking.prefetch_window", "must not be negative")
	}
	if t.AppleRangesFile != "" && checkReadable(v, "tracking.apple_ranges_file", t.AppleRangesFile) {
		f, _ := os.Open(t.AppleRangesFile)
		defer f.Close()
		if _, err := ParseRanges(bufio.NewReader(f)); err != nil {
			v.add("tracking.apple_ranges_file", "%s: %v", t.AppleRangesFile, err)
		}
	}
	if t.NetworksFile != "" && checkReadable(v, "tracking.networks_file", t.NetworksFile) {
		f, _ := os.Open(t.NetworksFile)
		defer f.Close()
		if _, err := ParseNetworks(f); err != nil {
			v.add("tracking.networks_file", "%s: %v", t.NetworksFile, err)
		}
	}
	if t.SelfWindow < 0 {
		v.add("tracking.self_window", "must not be negative (0 turns it off)")
	}
}

func checkBaseURL(v *validator, raw string) {
	const key = "tracking.base_url"
	u, err := url.Parse(raw)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https"):
		v.add(key, "%q must be an absolute http:// or https:// URL", raw)
	case u.Host == "" || u.Hostname() == "":
		v.add(key, "%q has no host", raw)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(raw, "?"):
		v.add(key, "%q must not have credentials, a query or a fragment", raw)
	}
}

// validExclude accepts "local@domain" and "@domain".
func validExclude(e string) bool {
	local, domain, ok := strings.Cut(e, "@")
	if !ok || domain == "" || strings.Contains(domain, "@") {
		return false
	}
	if strings.ContainsFunc(e, func(r rune) bool { return r <= ' ' || r == 0x7f || r == ',' || r == '<' || r == '>' }) {
		return false
	}
	_ = local // may be empty: "@domain" excludes the whole domain
	return !strings.HasPrefix(domain, ".") && !strings.HasSuffix(domain, ".") && !strings.Contains(domain, "..")
}

func (c *Config) checkHTTP(v *validator) {
	checkListen(v, "http.listen", c.HTTP.Listen)
	if c.HTTP.Listen == c.SMTP.Listen && validHostPort(c.HTTP.Listen) && !strings.HasSuffix(c.HTTP.Listen, ":0") {
		v.add("http.listen", "%s is also smtp.listen", c.HTTP.Listen)
	}
	for i, p := range c.HTTP.TrustedProxies {
		if _, err := parsePrefix(p); err != nil {
			v.add(fmt.Sprintf("http.trusted_proxies[%d]", i), "%q is not an IP address or CIDR (10.0.0.0/8)", p)
		}
	}
}

// checkListen checks a host:port listen address. The host may be empty (all
// interfaces), an IP address or a name; the port a number 0-65535.
func checkListen(v *validator, key, addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.add(key, "%q is not host:port (e.g. 127.0.0.1:2525)", addr)
		return false
	}
	ok := true
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.add(key, "port %q is not a number between 0 and 65535", port)
		ok = false
	}
	if strings.ContainsFunc(host, func(r rune) bool { return r <= ' ' || r == '/' || r == 0x7f }) {
		v.add(key, "host %q is not an IP address or host name", host)
		ok = false
	}
	return ok
}

func validHostPort(addr string) bool {
	_, _, err := net.SplitHostPort(addr)
	return err == nil
}

// checkReadable reports a problem unless path is a readable regular file.
// It checks the type before opening, as opening a FIFO could block.
func checkReadable(v *validator, key, path string) bool {
	st, err := os.Stat(path)
	if err != nil {
		v.add(key, "cannot read: %v", unwrapPath(err))
		return false
	}
	if !st.Mode().IsRegular() {
		v.add(key, "%s is not a file", path)
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		v.add(key, "cannot read: %v", unwrapPath(err))
		return false
	}
	f.Close()
	return true
}

// parsePrefix parses "10.0.0.0/8" or a single address ("192.0.2.1",
// "2001:db8::1"), which becomes a /32 or /128.
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
