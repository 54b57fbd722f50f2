package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pixelrelay/relay/smtptest"
)

// TestSignedMailUntouchedEndToEnd (CONTRACT.md item 6, issue 17): signed,
// encrypted and DKIM-signed messages that hold an HTML part go through the
// real binary to a real SMTP upstream exactly as submitted, apart from the
// relay's own Received header in front (and Bcc, which never leaves). The
// expectation is the fixtures' own bytes, not what the rewriter says about
// them. An ordinary HTML message sent alongside gets its pixel: this setup
// would show one.
func TestSignedMailUntouchedEndToEnd(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Script{})
	in := newInstance(t, upstreamConfig(srv, "", ""))
	in.start()
	tests := []struct {
		file  string
		drop  string // a line the relay removes (Bcc)
		pixel bool
	}{
		{"smime-signed-html.eml", "", false},                    // multipart/signed over text + HTML
		{"pgp-encrypted-html.eml", "", false},                   // HTML beside a multipart/encrypted part
		{"pkcs7-mime-html.eml", "", false},                      // HTML beside an application/pkcs7-mime part
		{"dkim-html.eml", "Bcc: hidden@example.com\r\n", false}, // DKIM-Signature on an HTML message
		{"two-body.eml", "", true},                              // control: tracked
	}
	want := map[string]string{} // recipient: the copy it must get
	file := map[string]int{}    // recipient: its test
	for i, tc := range tests {
		b, err := os.ReadFile(filepath.Join("testdata", "messages", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		msg := strings.ReplaceAll(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n", "\r\n")
		rcpt := fmt.Sprintf("r%d@example.org", i)
		h := smtptest.Dial(t, in.smtpAddr)
		h.Cmd(250, "EHLO e2e.test")
		if code, reply := h.Send("me@example.com", rcpt, strings.ReplaceAll("\r\n"+msg, "\r\n.", "\r\n..")[2:]+".\r\n"); code != 250 {
			t.Fatalf("%s: %d %s", tc.file, code, reply)
		}
		h.Cmd(221, "QUIT")
		if tc.drop != "" && !strings.Contains(msg, tc.drop) {
			t.Fatalf("%s lacks %q", tc.file, tc.drop)
		}
		want[rcpt] = strings.Replace(msg, tc.drop, "", 1)
		file[rcpt] = i
	}
	for _, m := range waitMessages(t, srv, len(tests), 30*time.Second) {
		i, ok := file[strings.Join(m.To, ",")]
		if !ok {
			t.Fatalf("delivery to %v", m.To)
		}
		tc := tests[i]
		lines := strings.SplitAfter(string(m.Data), "\r\n")
		if len(lines) < 4 || !strings.HasPrefix(lines[0], "Received: from ") ||
			!strings.HasPrefix(lines[1], "\tby ") || !strings.HasPrefix(lines[2], "\t") {
			t.Fatalf("%s: the copy does not start with the relay's Received header:\n%.300q", tc.file, m.Data)
		}
		got := strings.Join(lines[3:], "")
		if tc.pixel {
			if n := len(pixelURLs(got)); n != 1 {
				t.Fatalf("%s (control): %d pixels, want 1", tc.file, n)
			}
			continue
		}
		if got != want[m.To[0]] {
			t.Errorf("%s: not delivered as submitted (%d bytes, want %d)\n%s", tc.file, len(got), len(want[m.To[0]]),
				firstLineDiff(want[m.To[0]], got))
		}
	}
}

// firstLineDiff shows the first line where got differs from want.
func firstLineDiff(want, got string) string {
	wl, gl := strings.SplitAfter(want, "\n"), strings.SplitAfter(got, "\n")
	for i := range min(len(wl), len(gl)) {
		if wl[i] != gl[i] {
			return fmt.Sprintf("line %d:\n want %q\n  got %q", i+1, wl[i], gl[i])
		}
	}
	return fmt.Sprintf("%d lines, want %d", len(gl), len(wl))
}
