package smtpd

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"testing"
)

// TestMboxFromLine: a leading mbox "From " line is dropped, as sendmail and
// Postfix do on submission, and the Received header goes in front of what
// follows; anything else that merely looks like it is kept.
func TestMboxFromLine(t *testing.T) {
	const hdr = "Subject: s\r\nFrom: a@example.com\r\n\r\nbody\r\n"
	long := "From " + strings.Repeat("x", 10000) + " Mon Jan  1 00:00:00 2024\r\n"
	tests := []struct {
		name, in string
		received bool   // our Received header in front
		want     string // what follows it
	}{
		{"mbox From line", "From alice@example.com Mon Jan  1 00:00:00 2024\r\n" + hdr, true, hdr},
		{"From line longer than a buffer", long + hdr, true, hdr},
		{"only a From line", "From alice@example.com Mon Jan  1 00:00:00 2024", true, ""},
		{"From line, then white space", "From x\r\n junk\r\n" + hdr, false, " junk\r\n" + hdr},
		{"escaped >From", ">From x\r\n" + hdr, true, ">From x\r\n" + hdr},
		{"a From: field", hdr, true, hdr},
		{"From in a later line", "Subject: s\r\nFrom x\r\n\r\nbody\r\n", true, "Subject: s\r\nFrom x\r\n\r\nbody\r\n"},
		{"short message", "From", true, "From\r\n"},
	}
	received := regexp.MustCompile(`^Received: from [^\r]*\r\n\tby [^\r]*\r\n\t[^\r]*\r\n`)
	e := start(t, baseConfig(), nil)
	c := e.dial(t)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := send(c, "a@example.com", []string{"b@example.com"}, tc.in); err != nil {
				t.Fatal(err)
			}
			msgs := e.sp.messages()
			if len(msgs) != i+1 {
				t.Fatalf("%d messages spooled", len(msgs))
			}
			body := msgs[i].body
			loc := received.FindStringIndex(body)
			if (loc != nil) != tc.received {
				t.Fatalf("Received header in front: %v, want %v:\n%q", loc != nil, tc.received, body)
			}
			if loc != nil {
				body = body[loc[1]:]
			}
			if body != tc.want {
				t.Fatalf("spooled\n%q\nwant\n%q", body, tc.want)
			}
		})
	}
}

// FuzzWithReceived: the spooled bytes are the message, or the message
// without a leading "From " line, with our header in front unless they
// start with white space; nothing else is added, lost or reordered.
func FuzzWithReceived(f *testing.F) {
	for _, s := range []string{"From x\r\nSubject: s\r\n\r\nb\r\n", "From x\n\tjunk\n", "From", "From ", ">From x\n", " x", ""} {
		f.Add([]byte(s))
	}
	const hdr = "Received: x\r\n"
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := io.ReadAll(withReceived(strings.NewReader(hdr), bytes.NewReader(in)))
		if err != nil {
			t.Fatal(err)
		}
		msg := in
		if bytes.HasPrefix(in, []byte("From ")) {
			msg = nil
			if i := bytes.IndexByte(in, '\n'); i >= 0 {
				msg = in[i+1:]
			}
		}
		want := append([]byte(hdr), msg...)
		if len(msg) > 0 && (msg[0] == ' ' || msg[0] == '\t') {
			want = msg
		}
		if !bytes.Equal(out, want) {
			t.Fatalf("%q became %q, want %q", in, out, want)
		}
	})
}
