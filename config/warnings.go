package config

import (
	"fmt"
	"net/url"
	"os"
)

// Warnings returns things that are allowed but probably not what the user
// wants, in the same key: reason form as Problems. They never stop pixelrelay;
// `config check` and `serve` may print them.
//
//   - tracking.base_url on a loopback host while copies go to a real
//     upstream: recipients' mail clients cannot load the pixel.
//   - secret files (and a config file holding upstream.password) readable
//     by group or others.
//   - SMTP AUTH on a non-loopback address without tls_cert/tls_key:
//     passwords would travel in clear text.
func (c *Config) Warnings() Problems {
	v := &validator{}
	if u, err := url.Parse(c.Tracking.BaseURL); err == nil && c.realUpstream() && IsLoopback(u.Host) {
		v.add("tracking.base_url", "%s is a loopback address: recipients' mail clients cannot reach it, so no open will be recorded", c.Tracking.BaseURL)
	}
	if os.Getenv(EnvUpstreamPassword) == "" {
		warnShared(v, "upstream.password_file", c.Upstream.PasswordFile)
		if c.Upstream.Password != "" && c.Upstream.PasswordFile == "" && c.Path != "" {
			warnShared(v, "upstream.password", c.Path)
		}
	}
	warnShared(v, "upstream.oauth_client_secret_file", c.Upstream.OAuthClientSecretFile)
	for i, a := range c.Named {
		key := fmt.Sprintf("accounts[%d]", i)
		warnShared(v, key+".password_file", a.PasswordFile)
		warnShared(v, key+".oauth_client_secret_file", a.OAuthClientSecretFile)
		if a.Password != "" && a.PasswordFile == "" && c.Path != "" {
			warnShared(v, key+".password", c.Path)
		}
	}
	for i, u := range c.SMTP.Users {
		warnShared(v, fmt.Sprintf("smtp.users[%d].password_file", i), u.PasswordFile)
	}
	if len(c.SMTP.Users) > 0 && c.SMTP.TLSCert == "" && validHostPort(c.SMTP.Listen) && !IsLoopback(c.SMTP.Listen) {
		v.add("smtp.tls_cert", "not set while smtp.listen (%s) is not loopback: SMTP AUTH passwords would travel in clear text", c.SMTP.Listen)
	}
	c.warnWebhooks(v)
	return v.ps
}

// warnShared warns when path (a file holding a secret) is readable by
// group or others.
func warnShared(v *validator, key, path string) {
	if path == "" {
		return
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm()&0o077 == 0 {
		return
	}
	v.add(key, "%s is readable by other users (mode %04o); chmod 600 it", path, st.Mode().Perm())
}

// realUpstream reports whether any account sends to a real upstream (not
// the outbox).
func (c *Config) realUpstream() bool {
	for _, a := range c.Accounts() {
		if a.URL != "outbox" {
			return true
		}
	}
	return false
}
