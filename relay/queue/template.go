package queue

import (
	"bytes"
	"math/rand/v2"
	"strings"

	"pixelrelay/relay/rewrite"
)

// A template is a message's tracked copy made once, with a placeholder
// token, for all its tracked copies: each copy is the template with its own
// token written over the placeholder's bytes, instead of a rewrite of its
// own (decoding, changing and encoding the HTML parts again).
//
// This gives exactly the bytes rewrite.Rewrite would give for the token
// because the placeholder is as long as the token and, like every token,
// made of [a-z0-9] only: characters that HTML escaping leaves alone and
// that quoted-printable writes as they are anywhere in a line, so every
// decision of the rewrite (line lengths, soft line breaks, transfer
// encoding) comes out the same; the placeholder's characters may be split
// by soft line breaks, which stay where they are. A template is only used
// when the placeholder was found exactly once per part that got a pixel
// (a base64 part hides it: then every copy is rewritten on its own) and no
// line holding it starts with "--" (a token could not make it read as a
// boundary delimiter there).
type template struct {
	tokLen  int
	out     *bytes.Buffer
	pos     []int  // offsets of the placeholder's bytes in out, tokLen per pixel
	baseURL string // tracking.base_url it was made with
}

// tokenChar reports whether c may appear in a token or placeholder.
func tokenChar(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

func tokenOK(tok string) bool {
	for i := 0; i < len(tok); i++ {
		if !tokenChar(tok[i]) {
			return false
		}
	}
	return tok != ""
}

// newTemplate rewrites data with a random placeholder token as long as
// tok; nil when the template cannot stand for the copies (see template).
func newTemplate(data []byte, baseURL string, opt rewrite.Options, tok string, parts int) *template {
	if parts <= 0 || !tokenOK(tok) {
		return nil
	}
	ph := placeholder(len(tok))
	if bytes.Contains(data, ph[:min(len(ph), 16)]) {
		return nil // cannot tell the placeholder from the message's text
	}
	opt.PixelURL = pixelURL(baseURL, string(ph))
	out := getBuf(len(data) + len(data)/8 + 512)
	if err := safeRewrite(out, bytes.NewReader(data), opt); err != nil {
		putBuf(out)
		return nil
	}
	return templateFrom(out, ph, parts, baseURL)
}

// placeholder returns n random characters of a token's alphabet.
func placeholder(n int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	ph := make([]byte, n)
	for i := range ph {
		ph[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return ph
}

// templateFrom makes the template from out, a tracked copy whose token is
// ph, with parts pixels; nil (and out given back) when it cannot be used.
func templateFrom(out *bytes.Buffer, ph []byte, parts int, baseURL string) *template {
	pos, ok := findPlaceholder(out.Bytes(), ph)
	if parts <= 0 || !ok || len(pos) != parts*len(ph) {
		putBuf(out)
		return nil
	}
	return &template{tokLen: len(ph), out: out, pos: pos, baseURL: baseURL}
}

// findPlaceholder returns the offsets of every byte of every occurrence of
// ph in b, allowing quoted-printable soft line breaks between its bytes;
// false when a line holding one starts with "--".
func findPlaceholder(b, ph []byte) ([]int, bool) {
	var pos []int
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], ph[0])
		if j < 0 {
			break
		}
		i += j
		p, ok := matchAt(b, i, ph)
		if !ok {
			i++
			continue
		}
		start := bytes.LastIndexByte(b[:i], '\n') + 1
		if bytes.HasPrefix(b[start:], []byte("--")) {
			return nil, false
		}
		pos = append(pos, p...)
		i = p[len(p)-1] + 1
	}
	return pos, true
}

// matchAt matches ph at b[i:], skipping soft line breaks ("=\r\n", "=\n")
// between its bytes, and returns the offsets of ph's bytes.
func matchAt(b []byte, i int, ph []byte) ([]int, bool) {
	if !match(b, i, ph, nil) {
		return nil, false
	}
	p := make([]int, len(ph))
	match(b, i, ph, p)
	return p, true
}

// match reports whether ph is at b[i:], noting the offsets in pos (when
// not nil).
func match(b []byte, i int, ph []byte, pos []int) bool {
	for k := range ph {
		if k > 0 && i < len(b) && b[i] == '=' {
			switch {
			case bytes.HasPrefix(b[i:], []byte("=\r\n")):
				i += 3
			case bytes.HasPrefix(b[i:], []byte("=\n")):
				i += 2
			}
		}
		if i >= len(b) || b[i] != ph[k] {
			return false
		}
		if pos != nil {
			pos[k] = i
		}
		i++
	}
	return true
}

// write writes the copy for tok into dst; false when tok does not fit the
// template.
func (t *template) write(dst *bytes.Buffer, tok string) bool {
	if len(tok) != t.tokLen || !tokenOK(tok) {
		return false
	}
	dst.Write(t.out.Bytes())
	b := dst.Bytes()
	for i, p := range t.pos {
		b[p] = tok[i%t.tokLen]
	}
	return true
}

// pixelURL is the pixel's address for a token.
func pixelURL(baseURL, tok string) string {
	return strings.TrimRight(baseURL, "/") + "/o/" + tok + ".gif"
}
