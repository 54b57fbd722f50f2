package queue

import (
	"bytes"
	"math/rand/v2"
	"strings"

	"pixelrelay/relay/rewrite"
)

// A template is a message's tracked copy made once, with placeholder
// tokens, for all its tracked copies: each copy is the template with its
// own tokens written over the placeholders' bytes, instead of a rewrite of
// its own (decoding, changing and encoding the HTML parts again).
//
// Placeholders: the pixel's is a random string P as long as a pixel
// token; link n's (clicks counted) is a random string of linkLen-4
// characters (linkLen: a link token's length), the same for every link,
// followed by n in four base-36 digits. P and the links' start differ in
// their second character, so neither reads as the other.
//
// This gives exactly the bytes rewrite.Rewrite would give for the tokens
// because each placeholder is as long as its token and, like every token,
// made of [a-z0-9] only: characters that HTML escaping leaves alone and
// that quoted-printable writes as they are anywhere in a line, so every
// decision of the rewrite (line lengths, soft line breaks, transfer
// encoding, which link the pixel's place leaves alone) comes out the same;
// a placeholder's characters may be split by soft line breaks, which stay
// where they are. A template is only used when each part that got a pixel
// shows its pixel placeholder and, with clicks, its honeypot's (a base64
// part hides them: then every copy is rewritten on its own), no link
// number shows twice or past the links, and no line holding a placeholder
// starts with "--" (a token could not make it read as a boundary
// delimiter there).
type template struct {
	tokLen  int
	linkLen int // 0: links not rewritten
	links   int // the links it rewrote (rewrite.Info.Links), 0 without clicks
	out     *bytes.Buffer
	slots   []int32 // per placeholder in out, in order: -1 for the pixel, else its link number
	pos     []int32 // offsets in out of every placeholder's bytes, in order
	baseURL string  // tracking.base_url it was made with
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

// linkDigits is how many base-36 digits end a link placeholder.
const linkDigits = 4

// placeholders are the random strings a template is made with.
type placeholders struct {
	pixel   []byte // as long as a pixel token
	head    []byte // what link placeholders start with; nil without clicks
	linkLen int    // a link token's length; 0: no clicks
}

// newPlaceholders makes placeholders for tokens of length tokLen and link
// tokens of length linkLen (0: links stay); ok false when the lengths do
// not allow them or data holds the start of one. The pixel's and the
// links' start with the same character (find looks for it) and differ in
// the second, so neither reads as the other.
func newPlaceholders(data []byte, tokLen, linkLen int) (placeholders, bool) {
	p := placeholders{pixel: placeholder(tokLen), linkLen: linkLen}
	if tokLen > 0 {
		// A digit first: find looks for it, and digits are rarer than
		// letters in HTML.
		p.pixel[0] = digits36[rand.IntN(10)]
	}
	if tokLen < 2 || bytes.Contains(data, p.pixel[:min(tokLen, 16)]) {
		return p, false
	}
	if linkLen == 0 {
		return p, true
	}
	if linkLen < 2+linkDigits {
		return p, false
	}
	p.head = placeholder(linkLen - linkDigits)
	p.head[0] = p.pixel[0]
	if p.head[1] == p.pixel[1] {
		p.head[1] = digits36[(strings.IndexByte(digits36, p.head[1])+1)%36]
	}
	return p, !bytes.Contains(data, p.head[:min(len(p.head), 16)])
}

// link returns link n's placeholder.
func (p placeholders) link(n int) string {
	d := [linkDigits]byte{}
	for i := linkDigits - 1; i >= 0; i-- {
		d[i] = digits36[n%36]
		n /= 36
	}
	return string(p.head) + string(d[:])
}

const digits36 = "0123456789abcdefghijklmnopqrstuvwxyz"

// options sets opt's pixel and click URLs to the placeholders'.
func (p placeholders) options(baseURL string, opt rewrite.Options) rewrite.Options {
	opt.PixelURL = pixelURL(baseURL, string(p.pixel))
	opt.ClickURL = nil
	if p.linkLen > 0 {
		opt.ClickURL = func(n int) string { return clickURL(baseURL, p.link(n)) }
	}
	return opt
}

// newTemplate rewrites data with placeholder tokens as long as tok and
// the link tokens (linkLen; 0 when links stay); nil when the template
// cannot stand for the copies (see template). parts is the message's HTML
// parts that get a pixel.
func newTemplate(data []byte, baseURL string, opt rewrite.Options, tok string, linkLen, parts int) *template {
	if parts <= 0 || !tokenOK(tok) {
		return nil
	}
	ph, ok := newPlaceholders(data, len(tok), linkLen)
	if !ok {
		return nil
	}
	out := getBuf(len(data) + len(data)/8 + 512)
	info, err := safeRewriteInfo(out, data, ph.options(baseURL, opt))
	if err != nil || info.Untouchable != "" {
		putBuf(out)
		return nil
	}
	return templateFrom(out, ph, parts, len(info.Links), baseURL)
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

// templateFrom makes the template from out, a tracked copy made with the
// placeholders ph, with parts pixels and links links (0 without clicks);
// nil (and out given back) when it cannot be used.
func templateFrom(out *bytes.Buffer, ph placeholders, parts, links int, baseURL string) *template {
	t := &template{tokLen: len(ph.pixel), linkLen: ph.linkLen, links: links, out: out, baseURL: baseURL}
	if ph.linkLen == 0 {
		t.links = 0
	}
	if parts <= 0 || !t.find(ph) || !t.complete(parts) {
		putBuf(out)
		return nil
	}
	return t
}

// find notes every placeholder in t.out, allowing quoted-printable soft
// line breaks between its bytes; false when a line holding one starts
// with "--".
func (t *template) find(ph placeholders) bool {
	b := t.out.Bytes()
	first := ph.pixel[0]
	scratch := make([]int32, max(t.tokLen, t.linkLen))
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], first)
		if j < 0 {
			break
		}
		i += j
		slot, p, ok := t.matchAt(b, i, ph, scratch)
		if !ok {
			i++
			continue
		}
		start := bytes.LastIndexByte(b[:i], '\n') + 1
		if bytes.HasPrefix(b[start:], []byte("--")) {
			return false
		}
		t.slots = append(t.slots, int32(slot))
		t.pos = append(t.pos, p...)
		i = int(p[len(p)-1]) + 1
	}
	return true
}

// matchAt matches a placeholder at b[i:]: a link's (its number) or the
// pixel's (-1), and returns the offsets of its bytes (in scratch).
func (t *template) matchAt(b []byte, i int, ph placeholders, scratch []int32) (slot int, pos []int32, ok bool) {
	if t.linkLen > 0 {
		pos = scratch[:t.linkLen]
		if match(b, i, ph.head, pos) {
			if n, ok := linkNumber(b, pos, t.linkLen); ok {
				return n, pos, true
			}
		}
	}
	pos = scratch[:t.tokLen]
	if match(b, i, ph.pixel, pos) {
		return -1, pos, true
	}
	return 0, nil, false
}

// linkNumber reads the base-36 digits that end a link placeholder whose
// first bytes matched (their offsets in pos), filling in theirs.
func linkNumber(b []byte, pos []int32, linkLen int) (int, bool) {
	head := linkLen - linkDigits
	i := int(pos[head-1]) + 1
	n := 0
	for k := head; k < linkLen; k++ {
		i = skipSoftBreak(b, i)
		if i >= len(b) {
			return 0, false
		}
		d := strings.IndexByte(digits36, b[i])
		if d < 0 {
			return 0, false
		}
		n = n*36 + d
		pos[k] = int32(i)
		i++
	}
	return n, true
}

// complete reports whether the placeholders found stand for every token
// of a copy: a pixel per part, with clicks a honeypot per part, and each
// link number at most once and within t.links.
func (t *template) complete(parts int) bool {
	pixels, honeypots := 0, 0
	seen := map[int32]bool{}
	for _, s := range t.slots {
		switch {
		case s == -1:
			pixels++
		case s == 0:
			honeypots++
		case s > int32(t.links) || seen[s]:
			return false
		default:
			seen[s] = true
		}
	}
	return pixels == parts && (t.linkLen == 0 && honeypots == 0 || t.linkLen > 0 && honeypots == parts)
}

// skipSoftBreak skips a quoted-printable soft line break ("=\r\n", "=\n")
// at b[i:].
func skipSoftBreak(b []byte, i int) int {
	switch {
	case bytes.HasPrefix(b[i:], []byte("=\r\n")):
		return i + 3
	case bytes.HasPrefix(b[i:], []byte("=\n")):
		return i + 2
	}
	return i
}

// match reports whether ph is at b[i:], noting the offsets in pos.
func match(b []byte, i int, ph []byte, pos []int32) bool {
	for k := range ph {
		if k > 0 && i < len(b) && b[i] == '=' {
			i = skipSoftBreak(b, i)
		}
		if i >= len(b) || b[i] != ph[k] {
			return false
		}
		pos[k] = int32(i)
		i++
	}
	return true
}

// write writes the copy for the pixel token tok and the link tokens
// links (links[n] for link n; nil without clicks) into dst; false when
// they do not fit the template.
func (t *template) write(dst *bytes.Buffer, tok string, links []string) bool {
	if len(tok) != t.tokLen || !tokenOK(tok) {
		return false
	}
	if t.linkLen > 0 && len(links) != t.links+1 || t.linkLen == 0 && links != nil {
		return false
	}
	for _, l := range links {
		if len(l) != t.linkLen || !tokenOK(l) {
			return false
		}
	}
	dst.Write(t.out.Bytes())
	b := dst.Bytes()
	p := t.pos
	for _, s := range t.slots {
		v := tok
		if s >= 0 {
			v = links[s]
		}
		for i := range len(v) {
			b[p[i]] = v[i]
		}
		p = p[len(v):]
	}
	return true
}

// pixelURL is the pixel's address for a token.
func pixelURL(baseURL, tok string) string {
	return strings.TrimRight(baseURL, "/") + "/o/" + tok + ".gif"
}

// clickURL is the address a link with this link token leads to.
func clickURL(baseURL, tok string) string {
	return strings.TrimRight(baseURL, "/") + "/c/" + tok
}

// clickURLs is rewrite.Options.ClickURL for a copy's link tokens (links[n]
// for link n): links past them stay as they are.
func clickURLs(baseURL string, links []string) func(int) string {
	if len(links) == 0 {
		return nil
	}
	return func(n int) string {
		if n < 0 || n >= len(links) {
			return ""
		}
		return clickURL(baseURL, links[n])
	}
}
