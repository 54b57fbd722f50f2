package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"127.0.0.1:2525", true},
		{"127.1.2.3:25", true},
		{"[::1]:25", true},
		{"localhost:8025", true},
		{"LOCALHOST:8025", true},
		{"localhost.:25", true},
		{"[::ffff:127.0.0.1]:25", true},
		{"127.0.0.1", true},
		{"::1", true},
		{"[::1]", true},
		{"localhost", true},
		{"0.0.0.0:25", false},
		{":25", false},
		{"[::]:25", false},
		{"192.168.1.10:25", false},
		{"example.com:25", false},
		{"localhost.example.com:25", false},
		{"", false},
		{"garbage", false},
	}
	for _, tt := range tests {
		if got := IsLoopback(tt.in); got != tt.want {
			t.Errorf("IsLoopback(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestUpstreamRedacted(t *testing.T) {
	tests := []struct{ url, want string }{
		{"outbox", "outbox"},
		{"smtp://smtp.gmail.com:587", "smtp://smtp.gmail.com:587"},
		{"smtps://me%40gmail.com:app-pass@smtp.gmail.com:465", "smtps://smtp.gmail.com:465"},
		{"smtp://user@h:25", "smtp://h:25"},
		{"smtp://us er:p w@[::1", "[redacted]@[::1"},
	}
	for _, tt := range tests {
		c := &Config{Upstream: Upstream{URL: tt.url}}
		got := c.UpstreamRedacted()
		if got != tt.want {
			t.Errorf("UpstreamRedacted(%q) = %q, want %q", tt.url, got, tt.want)
		}
		if strings.Contains(got, "pass") || strings.Contains(got, "p w") {
			t.Errorf("UpstreamRedacted(%q) = %q leaks the password", tt.url, got)
		}
	}
}

func TestDataPaths(t *testing.T) {
	c := &Config{DataDir: "/var/lib/pixelrelay"}
	tests := []struct{ got, want string }{
		{c.SecretsPath(), "/var/lib/pixelrelay/secrets.json"},
		{c.SpoolDir(), "/var/lib/pixelrelay/spool"},
		{c.OutboxDir(), "/var/lib/pixelrelay/outbox"},
		{c.DBPath(), "/var/lib/pixelrelay/pixelrelay.db"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestDiff(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config)
		want   []string
	}{
		{"nothing", func(c *Config) {}, nil},
		{"policy", func(c *Config) { c.Tracking.Policy = "opt-in" }, []string{"tracking.policy"}},
		{"password", func(c *Config) { c.Upstream.Password = "new-secret" }, []string{"upstream.password"}},
		{"users", func(c *Config) { c.SMTP.Users = []User{{Username: "a", PasswordHash: hashAlice}} }, []string{"smtp.users"}},
		{"user hash", func(c *Config) { c.SMTP.Users[0].PasswordHash = "$2a$10$other" }, []string{"smtp.users"}},
		{"several in order", func(c *Config) {
			c.HTTP.Listen = "127.0.0.1:9000"
			c.DataDir = "/elsewhere"
			c.SMTP.Listen = "127.0.0.1:2526"
			c.Queue.MaxRetry = Duration(2 * time.Hour)
		}, []string{"data_dir", "smtp.listen", "queue.max_retry", "http.listen"}},
		{"empty list equals none", func(c *Config) { c.Tracking.Exclude = []string{} }, nil},
		{"exclude", func(c *Config) { c.Tracking.Exclude = []string{"@x.example"} }, []string{"tracking.exclude"}},
		{"path is not a key", func(c *Config) { c.Path = "/other.toml" }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev := Default()
			prev.SMTP.Users = []User{{Username: "alice", PasswordHash: hashAlice}}
			next := Default()
			next.SMTP.Users = []User{{Username: "alice", PasswordHash: hashAlice}}
			tt.change(next)
			got := Diff(prev, next)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Diff = %q, want %q", got, tt.want)
			}
			for _, k := range got {
				if strings.Contains(k, "secret") || strings.Contains(k, "$2a$") {
					t.Errorf("Diff leaks a value: %q", k)
				}
			}
		})
	}
	if got := Diff(nil, nil); got != nil {
		t.Errorf("Diff(nil, nil) = %q", got)
	}
	if got := Diff(nil, Default()); len(got) == 0 {
		t.Error("Diff(nil, Default()) is empty")
	}
}

func TestExcluded(t *testing.T) {
	tr := &Tracking{Exclude: []string{"boss@example.com", "@example.org", "Mixed@Case.example"}}
	tests := []struct {
		addr string
		want bool
	}{
		{"boss@example.com", true},
		{"BOSS@Example.COM", true},
		{" boss@example.com ", true},
		{"anyone@example.org", true},
		{"anyone@sub.example.org", false},
		{"mixed@case.example", true},
		{"other@example.com", false},
		{"example.org", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := tr.Excluded(tt.addr); got != tt.want {
			t.Errorf("Excluded(%q) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}

func TestTrustedPrefixes(t *testing.T) {
	h := &HTTP{TrustedProxies: []string{"10.1.2.3/8", "192.0.2.1", "::1", "::ffff:192.0.2.9", "bogus"}}
	want := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.0.2.1/32"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("192.0.2.9/32"),
	}
	if got := h.TrustedPrefixes(); !reflect.DeepEqual(got, want) {
		t.Errorf("TrustedPrefixes = %v, want %v", got, want)
	}
}

func TestParseRanges(t *testing.T) {
	got, err := ParseRanges(strings.NewReader("# Apple MPP\n17.0.0.0/8\n\n  2620:149::/32  # v6\n104.28.0.1\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("17.0.0.0/8"),
		netip.MustParsePrefix("2620:149::/32"),
		netip.MustParsePrefix("104.28.0.1/32"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseRanges = %v, want %v", got, want)
	}
	if _, err := ParseRanges(strings.NewReader("17.0.0.0/8\n17.0.0.0/99\n")); err == nil || err.Error() != `line 2: "17.0.0.0/99" is not an IP address or CIDR` {
		t.Errorf("ParseRanges(bad) error = %v", err)
	}
}
