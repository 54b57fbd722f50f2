package config

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
)

// IsLoopback reports whether hostport ("127.0.0.1:2525", "[::1]:25",
// "localhost:8025", or a bare host) names a loopback host. An empty host
// (all interfaces) and names other than "localhost" are not loopback: names
// are not resolved.
func IsLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	if i := strings.IndexByte(host, '%'); i >= 0 { // zone: fe80::1%lo
		host = host[:i]
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// UpstreamRedacted returns upstream.url without any credentials, safe to
// log and show in status output.
func (c *Config) UpstreamRedacted() string {
	u, err := url.Parse(c.Upstream.URL)
	if err != nil {
		if i := strings.LastIndex(c.Upstream.URL, "@"); i >= 0 {
			return "[redacted]@" + c.Upstream.URL[i+1:]
		}
		return c.Upstream.URL
	}
	u.User = nil
	return u.String()
}

// SecretsPath is the 0600 file holding the admin key and tracking keys.
func (c *Config) SecretsPath() string { return filepath.Join(c.DataDir, "secrets.json") }

// SpoolDir is where accepted messages are spooled before delivery.
func (c *Config) SpoolDir() string { return filepath.Join(c.DataDir, "spool") }

// OutboxDir is where the "outbox" upstream writes .eml copies.
func (c *Config) OutboxDir() string { return filepath.Join(c.DataDir, "outbox") }

// DBPath is the bbolt database of tracked copies and opens.
func (c *Config) DBPath() string { return filepath.Join(c.DataDir, "pixelrelay.db") }

// Excluded reports whether addr ("Alice@Example.com") matches
// tracking.exclude: an exact address or an "@domain" entry,
// case-insensitively. Subdomains are not matched by "@domain".
func (t *Tracking) Excluded(addr string) bool {
	addr = strings.ToLower(strings.TrimSpace(addr))
	at := strings.LastIndexByte(addr, '@')
	for _, e := range t.Exclude {
		e = strings.ToLower(e)
		if e == addr || (strings.HasPrefix(e, "@") && at >= 0 && addr[at:] == e) {
			return true
		}
	}
	return false
}

// TrustedPrefixes returns http.trusted_proxies as prefixes; single
// addresses become /32 or /128. Invalid entries (Validate reports them) are
// skipped.
func (h *HTTP) TrustedPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range h.TrustedProxies {
		if p, err := parsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// ParseRanges reads one IP address or CIDR per line; blank lines and text
// after '#' are ignored. It is the format of tracking.apple_ranges_file.
func ParseRanges(r io.Reader) ([]netip.Prefix, error) {
	var out []netip.Prefix
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		p, err := parsePrefix(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %q is not an IP address or CIDR", n, line)
		}
		out = append(out, p)
	}
	return out, sc.Err()
}

// Diff returns the keys whose values differ between prev and next, in file
// order: "tracking.policy", "smtp.users", "upstream.password". Values are
// never included, so the result is safe to log. Lists (smtp.users,
// tracking.exclude, http.trusted_proxies) are reported as one key.
func Diff(prev, next *Config) []string {
	if prev == nil || next == nil {
		if prev == next {
			return nil
		}
		prev, next = orDefault(prev), orDefault(next)
	}
	var keys []string
	diffStruct(reflect.ValueOf(prev).Elem(), reflect.ValueOf(next).Elem(), "", &keys)
	return keys
}

func orDefault(c *Config) *Config {
	if c == nil {
		return &Config{}
	}
	return c
}

func diffStruct(a, b reflect.Value, prefix string, keys *[]string) {
	for _, f := range tomlFields(a.Type()) {
		fa, fb := a.FieldByIndex(f.index), b.FieldByIndex(f.index)
		if fa.Kind() == reflect.Struct {
			diffStruct(fa, fb, prefix+f.name+".", keys)
			continue
		}
		if !sameValue(fa, fb) {
			*keys = append(*keys, prefix+f.name)
		}
	}
}

// sameValue is DeepEqual, except that a nil and an empty list are equal.
func sameValue(a, b reflect.Value) bool {
	if a.Kind() == reflect.Slice && a.Len() == 0 && b.Len() == 0 {
		return true
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}
