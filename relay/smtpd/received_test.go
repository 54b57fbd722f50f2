package smtpd

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestReceivedHeader(t *testing.T) {
	when := time.Date(2026, 11, 22, 23, 0, 0, 0, time.UTC)
	tests := []struct {
		helo      string
		remote    net.Addr
		tls, auth bool
		want      string
	}{
		{"laptop.example", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, false, false,
			"Received: from laptop.example (laptop.example [127.0.0.1])\r\n\tby relay.test (pixelrelay) with ESMTP;\r\n\tSun, 22 Nov 2026 23:00:00 +0000\r\n"},
		{"[::1]", &net.TCPAddr{IP: net.IPv6loopback}, true, true,
			"Received: from [::1] ([::1] [IPv6:::1])\r\n\tby relay.test (pixelrelay) with ESMTPSA;\r\n\tSun, 22 Nov 2026 23:00:00 +0000\r\n"},
		{"evil\r\nBcc:(x);", &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1)}, false, true,
			"Received: from evil__Bcc:_x__ (evil__Bcc:_x__ [10.0.0.1])\r\n\tby relay.test (pixelrelay) with ESMTPA;\r\n\tSun, 22 Nov 2026 23:00:00 +0000\r\n"},
	}
	for _, tt := range tests {
		b, _ := io.ReadAll(receivedHeader(tt.helo, tt.remote, "relay.test", tt.tls, tt.auth, when))
		if string(b) != tt.want {
			t.Errorf("got\n%q\nwant\n%q", b, tt.want)
		}
	}
}

func TestCheckAddress(t *testing.T) {
	tests := []struct {
		addr string
		utf8 bool
		ok   bool
	}{
		{"a@example.com", false, true},
		{"first.last+tag@sub.example.co.uk", false, true},
		{"a@[192.0.2.1]", false, true},
		{"a@[IPv6:2001:db8::1]", false, true},
		{"a@[2001:db8::1]", false, true},
		{"a@[nope]", false, false},
		{"@example.com", false, false},
		{"a@", false, false},
		{"a@-x.com", false, false},
		{"a@x-.com", false, false},
		{"a@.com", false, false},
		{"a b@example.com", false, false},
		{"a<b@example.com", false, false},
		{"ü@example.com", false, false},
		{"ü@exämple.com", true, true},
		{"a@exa\x00mple.com", true, false},
		{"a@" + strings.Repeat("x", 64) + ".com", false, false},
		{strings.Repeat("a", 250) + "@x.com", false, false},
	}
	for _, tt := range tests {
		err := checkAddress(tt.addr, tt.utf8)
		if (err == nil) != tt.ok {
			t.Errorf("checkAddress(%q, %v) = %v, want ok=%v", tt.addr, tt.utf8, err, tt.ok)
		}
	}
}

// FuzzCheckAddress: an accepted address is safe to put in an upstream
// command and a header.
func FuzzCheckAddress(f *testing.F) {
	for _, s := range []string{"a@example.com", "a@[1.2.3.4]", "ü@exämple.com", "a b@c", "a@b..c"} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, addr string, utf8 bool) {
		if checkAddress(addr, utf8) != nil {
			return
		}
		if strings.ContainsAny(addr, " \t\r\n<>\x00") {
			t.Fatalf("accepted %q", addr)
		}
		if !strings.Contains(addr, "@") {
			t.Fatalf("accepted %q without @", addr)
		}
	})
}

// FuzzReceivedHeader: whatever the client says in HELO, the result is one
// header field: no blank line, continuation lines start with a tab.
func FuzzReceivedHeader(f *testing.F) {
	f.Add("client.example")
	f.Add("a\r\n\r\nb")
	f.Fuzz(func(t *testing.T, helo string) {
		b, _ := io.ReadAll(receivedHeader(helo, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, "h", false, false, time.Now()))
		s := string(b)
		if !strings.HasPrefix(s, "Received: ") || !strings.HasSuffix(s, "\r\n") {
			t.Fatalf("%q", s)
		}
		lines := strings.Split(strings.TrimSuffix(s, "\r\n"), "\r\n")
		for _, l := range lines[1:] {
			if !strings.HasPrefix(l, "\t") {
				t.Fatalf("line %q is not a continuation", l)
			}
		}
		if strings.Count(s, "\n") != len(lines) || strings.Contains(strings.ReplaceAll(s, "\r\n", ""), "\r") {
			t.Fatalf("stray line break in %q", s)
		}
	})
}
