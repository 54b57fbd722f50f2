package rewrite

import (
	"bytes"
	"strings"
	"testing"
)

// TestSkeletonDiff: the check that a tracked copy differs from the
// untracked one only inside its HTML parts finds each HTML body where it
// stands, also when an earlier part holds the same bytes (Outlook's
// identical text and HTML alternatives, rt-outlook-rfc822.eml) or the body
// is one letter that a header line holds too (stalwart-thirdparty-013.eml),
// and still sees a change outside them.
func TestSkeletonDiff(t *testing.T) {
	same := "PGI+aGk8L2I+DQo=" // "<b>hi</b>\r\n", as text and as HTML
	twins := "Content-Type: multipart/alternative;\r\n\tboundary=\"alt\"\r\n\r\n--alt\r\n" +
		"Content-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + same + "\r\n\r\n" +
		"--alt\r\nContent-Type: text/html; charset=\"utf-8\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + same + "\r\n\r\n" +
		"--alt--\r\n"
	letter := "Content-Type: multipart/mixed; boundary=b.1\n\n--b.1\nContent-Type: text/plain\n\na\n" +
		"--b.1\nContent-Type: text/html\n\nb\n--b.1--\n"
	tests := []struct {
		name   string
		msg    string
		mutate func(tracked string) string // a change outside the HTML parts, or nil
	}{
		{"identical alternatives", twins, nil},
		{"identical alternatives, text part changed", twins, func(s string) string {
			return strings.Replace(s, same, "PGk+aGk8L2k+DQo=", 1)
		}},
		{"one-letter body", letter, nil},
		{"one-letter body, boundary line changed", letter, func(s string) string {
			return strings.Replace(s, "boundary=b.1\n", "boundary=\"b.1\"\n", 1)
		}},
		{"one-letter body, text header changed", letter, func(s string) string {
			return strings.Replace(s, "Content-Type: text/plain\n", "Content-Type: text/plain; charset=x\n", 1)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.msg)
			plain := rewrite(t, in, Options{})
			tracked := rewrite(t, in, Options{PixelURL: testPixelURL})
			if bytes.Equal(plain, tracked) {
				t.Fatal("no pixel written")
			}
			if tc.mutate != nil {
				tracked = []byte(tc.mutate(string(tracked)))
			}
			li, err := goLeaves(plain)
			if err != nil {
				t.Fatal(err)
			}
			lo, err := goLeaves(tracked)
			if err != nil {
				t.Fatal(err)
			}
			err = skeletonDiff(plain, tracked, li, lo)
			if tc.mutate == nil && err != nil {
				t.Fatalf("the rewriter's own copy reported: %v", err)
			}
			if tc.mutate != nil && err == nil {
				t.Fatal("a change outside the HTML parts went unseen")
			}
		})
	}
}
