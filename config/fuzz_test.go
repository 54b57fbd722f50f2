package config

import (
	"net"
	"strings"
	"testing"
	"time"
)

// The value parsers below are reached through FuzzParse as well, but only
// behind TOML's quoting; these targets feed them raw strings and check that
// what they accept survives a round trip through its own text form.

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"90d", "1.5d", "-2d", "36h", "1h30m", "0", "", " 5m ", "1e9d", "106751.99d", "106751.991167300636d",
		"9223372036854775807ns", "d", ".d", "1..5d", "+3d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			if !strings.Contains(err.Error(), "duration") {
				t.Errorf("ParseDuration(%q) error %q does not say what is wrong", s, err)
			}
			return
		}
		if strings.HasSuffix(strings.TrimSpace(s), "d") && !strings.HasPrefix(strings.TrimSpace(s), "-") && d < 0 {
			t.Fatalf("ParseDuration(%q) = %v: a positive number of days overflowed", s, d)
		}
		text := Duration(d).String()
		back, err := ParseDuration(text)
		if err != nil || back != d {
			t.Fatalf("ParseDuration(%q) = %v, whose text %q parses to %v, %v", s, d, text, back, err)
		}
	})
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"35MB", "512kb", "1.5 GB", "36700160", "0", "", "1e3", "-1MB", "9223372036854775807",
		"9223372036854775807b", "8589934592GB", "0.0000001KB", "MB", ".5m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		z, err := ParseSize(s)
		if err != nil {
			if !strings.Contains(err.Error(), "size") {
				t.Errorf("ParseSize(%q) error %q does not say what is wrong", s, err)
			}
			return
		}
		if z < 0 {
			t.Fatalf("ParseSize(%q) = %d: negative", s, z)
		}
		text := z.String()
		back, err := ParseSize(text)
		if err != nil || back != z {
			t.Fatalf("ParseSize(%q) = %d, whose text %q parses to %d, %v", s, z, text, back, err)
		}
	})
}

func FuzzParseWhen(f *testing.F) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for _, s := range []string{"2026-11-20T10:00:00Z", "2026-11-20T10:00:00.5+02:00", "2026-11-20", "24h", "7d",
		"-1d", "", "0", "2026-13-40", "99999d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		when, err := ParseWhen(s, now)
		if err != nil {
			if !strings.Contains(err.Error(), "RFC 3339") && !strings.Contains(err.Error(), "negative") {
				t.Errorf("ParseWhen(%q) error %q does not say what is accepted", s, err)
			}
			return
		}
		if d, derr := ParseDuration(strings.TrimSpace(s)); derr == nil && when.After(now) {
			t.Errorf("ParseWhen(%q) = %v: a duration back from now (%v) lies in the future", s, when, d)
		}
	})
}

func FuzzParseRanges(f *testing.F) {
	for _, s := range []string{"17.0.0.0/8\n", "# Apple\n2a01:b740::/32 # comment\n\n1.2.3.4\n", "10.0.0.0/33\n",
		"::ffff:1.2.3.4/128", "1.2.3.4/8", "garbage", "\x00\n", strings.Repeat("1", 70000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseRanges(strings.NewReader(s))
		if err != nil {
			return
		}
		if lines := strings.Count(s, "\n") + 1; len(got) > lines {
			t.Fatalf("%d ranges from %d lines", len(got), lines)
		}
		for _, p := range got {
			if !p.IsValid() || p != p.Masked() {
				t.Fatalf("ParseRanges(%q) returned an unusable prefix %v", s, p)
			}
		}
	})
}

func FuzzIsLoopback(f *testing.F) {
	for _, s := range []string{"127.0.0.1:2525", "[::1]:25", "localhost:25", "0.0.0.0:25", ":25", "127.1:25",
		"[::ffff:127.0.0.1]:25", "example.com:25", "", "127.0.0.1", "[fe80::1%lo]:25"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !IsLoopback(s) {
			return
		}
		host, _, err := net.SplitHostPort(s)
		if err != nil {
			host = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
		}
		if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
			return
		}
		host, _, _ = strings.Cut(host, "%")
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			t.Fatalf("IsLoopback(%q) = true, but %q is not a loopback address", s, host)
		}
	})
}
