package cli

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"pixelrelay/config"
)

func FuzzParseWhen(f *testing.F) {
	for _, s := range []string{"2026-11-20T10:00:00Z", "2026-11-20", "24h", "7d", "-1d", "1.5d", "", "9999999999d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseWhen(s, testNow)
		if err != nil {
			if !strings.Contains(err.Error(), "RFC 3339") {
				t.Errorf("error %q does not say what is accepted", err)
			}
			return
		}
		if got.Location() != time.UTC {
			t.Errorf("parseWhen(%q) not in UTC", s)
		}
		if d, derr := parseDuration(s); derr == nil && !got.Equal(testNow.Add(-d)) {
			t.Errorf("parseWhen(%q) = %v, want now-%v", s, got, d)
		}
	})
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"90d", "36h", "1h30m", "-5h", "0", "1e9d", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseDuration(s)
		if err == nil && d < 0 {
			t.Errorf("parseDuration(%q) = %v: negative accepted", s, d)
		}
	})
}

// FuzzCleanCut checks the invariants of what reaches the terminal: no
// control characters, and cut never exceeds its width.
func FuzzCleanCut(f *testing.F) {
	for _, s := range []string{"plain", "日本語の件名", "\x1b[2Jevil\r\n", "e\u0301\u202e", "\xff\xfe", "😀😀😀"} {
		f.Add(s, 5)
	}
	f.Fuzz(func(t *testing.T, s string, w int) {
		if w < 0 || w > 200 {
			return
		}
		c := clean(s)
		for _, r := range c {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || isBidiControl(r) {
				t.Fatalf("clean(%q) = %q keeps %U", s, c, r)
			}
		}
		got := cut(c, w)
		if textWidth(got) > w {
			t.Fatalf("cut(%q, %d) = %q is %d wide", c, w, got, textWidth(got))
		}
		if !utf8.ValidString(got) && utf8.ValidString(c) {
			t.Fatalf("cut(%q, %d) = %q broke UTF-8", c, w, got)
		}
		if textWidth(c) <= w && got != c {
			t.Fatalf("cut(%q, %d) = %q changed text that fits", c, w, got)
		}
	})
}

func FuzzTrackingID(f *testing.F) {
	for _, s := range []string{"k7q2m4xwah3bdf5a", "K7Q2M4XWAH3BDF5A", "/o/x.gif", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := trackingID(s)
		if err == nil && (len(id) != 16 || strings.ToLower(id) != id) {
			t.Errorf("trackingID(%q) = %q", s, id)
		}
	})
}

func BenchmarkTableRender(b *testing.B) {
	tb := &table{header: []string{"OPENED", "KIND", "RECIPIENT", "SUBJECT", "ID"}, flex: map[int]int{2: 16, 3: 12}}
	for i := 0; i < 500; i++ {
		tb.add(stamp(testNow.Add(-time.Duration(i)*time.Minute), testNow), "human", "someone@example.com",
			"A subject line that is long enough to need cutting on a normal terminal, 日本語も", "k7q2m4xwah3bdf5a")
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tb.render(120)
	}
}

// FuzzParseArgs checks that any argument list either parses or fails as
// bad usage / help, and that positional arguments keep their order.
func FuzzParseArgs(f *testing.F) {
	for _, s := range []string{"ID --json", "--json ID", "--to a@b ID --limit 5", "-- --json", "--limit", "--since=7d x y", "--help"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args := strings.Fields(s)
		fs, _ := newFlags("x")
		fs.Bool("json", false, "")
		fs.String("to", "", "")
		fs.Var(&limitFlag{n: defaultLimit}, "limit", "")
		fs.Var(&whenFlag{name: "since", now: func() time.Time { return testNow }}, "since", "")
		pos, err := parseArgs(fs, args)
		if err != nil {
			var ue *usageError
			if !errors.Is(err, errHelp) && !errors.As(err, &ue) {
				t.Fatalf("parseArgs(%q) = %v: neither help nor usage", args, err)
			}
			return
		}
		// Every positional is one of the arguments, in order.
		i := 0
		for _, p := range pos {
			for i < len(args) && args[i] != p {
				i++
			}
			if i == len(args) {
				t.Fatalf("parseArgs(%q) = %q: %q out of order or invented", args, pos, p)
			}
			i++
		}
	})
}

// FuzzInitConfig: whatever init is given, the file it writes is TOML
// that reads back the same values.
func FuzzInitConfig(f *testing.F) {
	f.Add("you@gmail.com", "https://track.example.com", "client-1", "gmail")
	f.Add(`a"b\c@x`, "http://h/\x01", "\u2028id", "smtp")
	f.Add("", "", "", "outbox")
	f.Fuzz(func(t *testing.T, addr, base, clientID, provider string) {
		if !utf8.ValidString(addr) || !utf8.ValidString(base) || !utf8.ValidString(clientID) {
			return // from a terminal or flags: text
		}
		p, ok := presetOf(provider)
		if !ok {
			return
		}
		a := answers{provider: p.name, address: addr, upstream: "smtp://mail.example.org:587", imapURL: p.imap,
			baseURL: base, oauth: clientID != "" && p.oauth != "", clientID: clientID}
		if p.smtp != "" {
			a.upstream = p.smtp
		}
		text := renderConfig(&a, setupFiles{}, time.Unix(0, 0))
		c, err := config.Parse([]byte(text), "/x/c.toml")
		if err != nil {
			t.Fatalf("%v\n%s", err, text)
		}
		if want := strings.TrimRight(strings.TrimSpace(base), "/"); c.Tracking.BaseURL != want { // as config tidies it
			t.Errorf("base_url %q, want %q", c.Tracking.BaseURL, want)
		}
		if p.name != "outbox" && (c.Upstream.Username != addr || (a.oauth && c.Upstream.OAuthClientID != clientID)) {
			t.Errorf("username %q client %q, want %q %q", c.Upstream.Username, c.Upstream.OAuthClientID, addr, clientID)
		}
	})
}
