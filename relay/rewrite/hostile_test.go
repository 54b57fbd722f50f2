package rewrite

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// hostileMessage builds the hostile shapes of issue 7.
func hostileMessages() []struct {
	name      string
	msg       []byte
	htmlParts int  // pixels a tracked copy gets
	malformed bool // forwarded unmodified (untracked)
} {
	var parts bytes.Buffer // 10,000 parts, every 10th HTML
	parts.WriteString("Subject: many\r\nContent-Type: multipart/mixed; boundary=\"p\"\r\n\r\n")
	for i := range 10000 {
		if i%10 == 0 {
			fmt.Fprintf(&parts, "--p\r\nContent-Type: text/html\r\n\r\n<p>part %d</p>\r\n", i)
		} else {
			fmt.Fprintf(&parts, "--p\r\nContent-Type: text/plain\r\n\r\npart %d\r\n", i)
		}
	}
	parts.WriteString("--p--\r\n")

	nested := func(depth int) []byte {
		var b bytes.Buffer
		b.WriteString("Subject: deep\r\n")
		for i := range depth {
			fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"d%d\"\r\n\r\n--d%d\r\n", i, i)
		}
		b.WriteString("Content-Type: text/html\r\n\r\n<body>deep</body>\r\n")
		for i := depth - 1; i >= 0; i-- {
			fmt.Fprintf(&b, "--d%d--\r\n", i)
		}
		return b.Bytes()
	}
	bigHeader := "Subject: big header\r\n" + strings.Repeat("X-Filler: "+strings.Repeat("f", 990)+"\r\n", 1100) +
		"Content-Type: text/html\r\n\r\n<body>x</body>\r\n"
	return []struct {
		name      string
		msg       []byte
		htmlParts int
		malformed bool
	}{
		{"10,000 parts", parts.Bytes(), 1000, false},
		{"nesting 49 (allowed)", nested(49), 1, false},
		{"nesting 51 (too deep)", nested(51), 0, true},
		{"nesting 10,000", nested(10000), 0, true},
		{"header over 1 MB", []byte(bigHeader), 0, true},
		{"NUL bytes", []byte("Subject: nul\x00\r\nContent-Type: text/html\r\n\r\n<body>a\x00b</body>\r\n"), 1, false},
		{"8-bit header without SMTPUTF8", []byte("Subject: caf\xe9 \xc3\r\nFrom: J\xfcrgen <j@example.com>\r\nContent-Type: text/html\r\n\r\n<body>x</body>\r\n"), 1, false},
		{"bare CR and LF", []byte("Subject: x\r\nContent-Type: text/html\n\n<body>a\rb\nc</body>\r\n"), 1, false},
		{"line of 1 MB", []byte("Subject: x\r\nContent-Type: text/plain\r\n\r\n" + strings.Repeat("l", 1<<20) + "\r\n"), 0, false},
		{"boundary never closed", []byte("Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<body>x</body>\r\n"), 0, true},
	}
}

// TestHostileMessages: each hostile shape is either tracked correctly
// (one pixel per HTML body part, everything else byte for byte) or, when
// malformed, forwarded unmodified; quickly, and Inspect agrees.
func TestHostileMessages(t *testing.T) {
	for _, tc := range hostileMessages() {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			info := inspect(t, tc.msg)
			if info.HTMLParts != tc.htmlParts && !tc.malformed || (info.Untouchable != "") != tc.malformed {
				t.Fatalf("Inspect = %+v", info)
			}
			if tc.malformed && !strings.HasPrefix(info.Untouchable, "malformed: ") {
				t.Fatalf("Untouchable = %q", info.Untouchable)
			}
			plain := rewrite(t, tc.msg, Options{})
			if !bytes.Equal(plain, tc.msg) {
				t.Fatal("untracked copy changed")
			}
			if ok, _ := Track(info, "a@example.com", Policy{}); ok != (!tc.malformed && tc.htmlParts > 0) {
				t.Fatalf("Track = %v for %+v", ok, info)
			}
			if !tc.malformed && tc.htmlParts > 0 {
				out := rewrite(t, tc.msg, Options{PixelURL: testPixelURL})
				if n := bytes.Count(out, []byte(testPixelURL)); n != tc.htmlParts {
					t.Fatalf("%d pixels, want %d", n, tc.htmlParts)
				}
				checkTracked(t, tc.msg, out, info)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}
