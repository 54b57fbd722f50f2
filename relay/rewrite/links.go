package rewrite

import (
	"bytes"
	"html"
	"io"
	"net/url"
	"strings"
	"unicode/utf8"

	xhtml "golang.org/x/net/html"
)

// MaxLinks is the most links of one message whose clicks are counted:
// links past it, in document order over the message's HTML body parts,
// are left as they are. Newsletters carry tens of links; a message with
// thousands is left mostly alone rather than storing thousands of URLs for
// each of its copies.
const MaxLinks = 1000

// MaxURL is the longest URL (in bytes, entities decoded) of a link whose
// clicks are counted; a longer one is left as it is.
const MaxURL = 8 << 10

// NoTrackAttr marks a link that is never rewritten: <a href="..."
// data-pixelrelay-notrack>.
const NoTrackAttr = "data-pixelrelay-notrack"

// link is one link of a part's text whose href is rewritten.
type link struct {
	n          int // its number in the message (Info.Links[n-1])
	start, end int // the href value's bytes in the text, quotes excluded
	quoted     bool
}

// findLinks finds the links of one HTML part's text whose clicks are
// counted, numbers them after those of earlier parts (up to MaxLinks) and
// notes their URLs in w.links. mode and cs are the text's charset, which
// decides what a byte means: in ISO-2022 only bytes in ASCII state count
// as markup, and outside UTF-8 a URL must be ASCII.
//
// The markup is read with golang.org/x/net/html's tokenizer, as a browser
// reads it: comments, <script>, <style>, <title>, <textarea> and the like
// hold no links, entities are decoded, duplicate attributes after the
// first are ignored. The tokenizer gives no byte offsets of attribute
// values, so each <a> tag's raw bytes are read again by tagAttrs, which
// follows the tokenizer's own attribute rules; a tag where the two do not
// agree on the attribute names is left alone.
func (w *walker) findLinks(text []byte, mode textMode, cs string) []link {
	if len(w.links) >= MaxLinks || !hasAnchor(text) {
		return nil
	}
	scan := text
	if mode == iso2022 {
		w.buf.mask = mask2022(text, strings.HasPrefix(cs, "iso-2022-cn"), w.buf.mask[:0])
		scan = w.buf.mask
	}
	utf8OK := mode == convert || cs == "" || isUTF8(cs)
	var found []link
	var urls []string
	z := xhtml.NewTokenizer(bytes.NewReader(scan))
	off := 0
	for {
		tt := z.Next()
		raw := z.Raw()
		if tt == xhtml.ErrorToken {
			if z.Err() != io.EOF {
				return nil
			}
			off += len(raw)
			break
		}
		if tt == xhtml.StartTagToken || tt == xhtml.SelfClosingTagToken {
			if l, u, ok := anchor(z, raw, utf8OK); ok {
				l.start += off
				l.end += off
				found = append(found, l)
				urls = append(urls, u)
			}
		}
		off += len(raw)
	}
	if off != len(scan) {
		return nil // the offsets are not the text's: change nothing
	}
	for i := range found {
		if len(w.links) >= MaxLinks {
			return found[:i]
		}
		w.links = append(w.links, urls[i])
		found[i].n = len(w.links)
	}
	return found
}

// hasAnchor reports whether text may hold an <a> tag: "<a" or "<A"
// followed by white space, '/' or '>'.
func hasAnchor(text []byte) bool {
	for i := 0; ; {
		j := bytes.IndexByte(text[i:], '<')
		if j < 0 || i+j+2 >= len(text) {
			return false
		}
		i += j + 1
		if (text[i] == 'a' || text[i] == 'A') && strings.IndexByte(" \t\r\n\f/>", text[i+1]) >= 0 {
			return true
		}
	}
}

// anchor looks at the start tag the tokenizer z stands on (raw: its
// bytes) and returns its href span within raw and the URL to store, when
// it is an <a> whose clicks are counted.
func anchor(z *xhtml.Tokenizer, raw []byte, utf8OK bool) (link, string, bool) {
	if !maybeAnchor(raw) {
		return link{}, "", false // TagName would copy the name of every other tag
	}
	name, hasAttr := z.TagName()
	if len(name) != 1 || name[0] != 'a' || !hasAttr {
		return link{}, "", false
	}
	spans := tagAttrs(raw)
	href, hrefAt := "", -1
	for i := 0; ; i++ {
		k, v, more := z.TagAttr()
		if i >= len(spans) || !asciiEqualFold(k, spans[i].name(raw)) {
			return link{}, "", false // the two readings differ
		}
		switch string(k) {
		case "href":
			href, hrefAt = string(v), i
		case NoTrackAttr:
			return link{}, "", false
		}
		if !more {
			if i+1 != len(spans) || hrefAt < 0 {
				return link{}, "", false
			}
			break
		}
	}
	u, ok := trackable(href, utf8OK)
	if !ok {
		return link{}, "", false
	}
	s := spans[hrefAt]
	return link{start: s.start, end: s.end, quoted: s.quoted}, u, true
}

// maybeAnchor reports whether the raw start tag may be an <a>: false
// only when its name, as the tokenizer reads it (from the byte after '<'
// to white space, '/' or '>'), is not a single 'a' or 'A'.
func maybeAnchor(raw []byte) bool {
	if len(raw) < 3 {
		return true // the tokenizer decides
	}
	c := raw[2]
	return raw[1]|0x20 == 'a' && (isTagSpace(c) || c == '/' || c == '>')
}

// trackable returns the URL a link's href (entities decoded) leads to,
// and whether its clicks are counted: an absolute http or https URL with
// a host, at most MaxURL bytes, of printable characters (ASCII outside
// UTF-8 text). What a browser ignores in an href (leading and trailing
// white space and control characters, tabs and line breaks anywhere) is
// removed, as the URL Standard's parser does.
func trackable(href string, utf8OK bool) (string, bool) {
	href = strings.TrimFunc(href, func(r rune) bool { return r <= ' ' })
	if strings.ContainsAny(href, "\t\r\n") {
		href = strings.NewReplacer("\t", "", "\r", "", "\n", "").Replace(href)
	}
	if len(href) > MaxURL || len(href) < len("http://x") {
		return "", false
	}
	scheme, rest, _ := strings.Cut(href, ":")
	if !strings.EqualFold(scheme, "http") && !strings.EqualFold(scheme, "https") || !strings.HasPrefix(rest, "//") {
		return "", false
	}
	for i := 0; i < len(href); i++ {
		c := href[i]
		if c < ' ' || c == 0x7f || (c >= 0x80 && !utf8OK) {
			return "", false
		}
	}
	if !utf8.ValidString(href) {
		return "", false
	}
	u, err := url.Parse(href)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return "", false
	}
	return href, true
}

// attrSpan is one attribute of a raw start tag as the tokenizer reads
// it: where its name and its value are.
type attrSpan struct {
	ns, ne     int // the name's bytes
	start, end int // the value's bytes, quotes excluded
	quoted     bool
}

func (a attrSpan) name(raw []byte) []byte { return raw[a.ns:a.ne] }

func isTagSpace(c byte) bool {
	return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\f'
}

func skipTagSpace(b []byte, i int) int {
	for i < len(b) && isTagSpace(b[i]) {
		i++
	}
	return i
}

// tagAttrs reads the attributes of a raw start tag ("<a ...>") by the
// rules of x/net/html's tokenizer (WHATWG 13.2.5.32-38): names end at
// white space, '/', '>' or a '=' that is not their first character;
// values are quoted (to the same quote) or end at white space or '>'.
// Attributes with an empty name and repeats of a name are dropped, as the
// tokenizer drops them.
func tagAttrs(raw []byte) []attrSpan {
	out := make([]attrSpan, 0, 4)
	i := 2 // "<" and the first character of the tag name
	for i < len(raw) && !isTagSpace(raw[i]) && raw[i] != '/' && raw[i] != '>' {
		i++
	}
	i = skipTagSpace(raw, i)
	for i < len(raw) && raw[i] != '>' {
		ks := i
		for i < len(raw) {
			c := raw[i]
			if c == '=' && i == ks {
				i++
				continue
			}
			if c == '=' || isTagSpace(c) || c == '/' || c == '>' {
				break
			}
			i++
		}
		a := attrSpan{ns: ks, ne: i, start: i, end: i}
		i = attrValue(raw, i, &a)
		if a.ne > a.ns && !hasAttr(raw, out, a.name(raw)) {
			out = append(out, a)
		}
		i = skipTagSpace(raw, i)
	}
	return out
}

// attrValue reads what follows an attribute name at raw[i:] ("=value",
// or nothing) into a, and returns where reading goes on.
func attrValue(raw []byte, i int, a *attrSpan) int {
	i = skipTagSpace(raw, i)
	if i >= len(raw) {
		return i
	}
	switch raw[i] {
	case '/':
		return i + 1
	case '=':
	default:
		return i
	}
	i = skipTagSpace(raw, i+1)
	if i >= len(raw) || raw[i] == '>' {
		return i
	}
	if q := raw[i]; q == '"' || q == '\'' {
		a.start, a.quoted = i+1, true
		j := bytes.IndexByte(raw[i+1:], q)
		if j < 0 {
			a.end = len(raw)
			return len(raw)
		}
		a.end = i + 1 + j
		return a.end + 1
	}
	a.start = i
	for i < len(raw) && !isTagSpace(raw[i]) && raw[i] != '>' {
		i++
	}
	a.end = i
	if i < len(raw) && raw[i] != '>' {
		i++
	}
	return i
}

// asciiEqualFold reports whether a and b are equal with ASCII letters
// folded, as the tokenizer compares attribute names (other bytes exact,
// valid UTF-8 or not).
func asciiEqualFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func hasAttr(raw []byte, as []attrSpan, name []byte) bool {
	for _, a := range as {
		if asciiEqualFold(a.name(raw), name) {
			return true
		}
	}
	return false
}

// mask2022 returns ISO-2022 text with every byte that is not an ASCII
// character (escape sequences, shifts, bytes of other sets) replaced by
// 0x80, which the tokenizer reads as text: markup is found only where a
// browser decoding the text would find it. Lengths stay, so offsets are
// the text's. JIS X 0201 Roman counts as not ASCII here (its 0x5C and
// 0x7E differ): a link written in it is left alone.
func mask2022(text []byte, cn bool, dst []byte) []byte {
	dst = append(dst, text...)
	s := iso2022State{ssLen: 1}
	if cn {
		s.ssLen = 2
	}
	for i := 0; i < len(text); {
		plain := !s.so && s.single == 0 && s.g0 == ""
		c := text[i]
		j := s.step(text, i)
		if !plain || c == esc || c == so || c == si {
			for k := i; k < j && k < len(dst); k++ {
				dst[k] = 0x80
			}
		}
		i = max(j, i+1)
	}
	return dst
}

// HoneypotTag returns the hidden link Rewrite puts beside the pixel of
// each part when clicks are counted: a link no reader can see or reach.
// It holds no text (nothing to see or click even where styles are
// stripped), is out of the tab order (tabindex -1) and of the
// accessibility tree (aria-hidden), and hidden by display:none, with
// max-height and overflow for clients that drop display and mso-hide:all
// for Outlook's Word engine, the set email developers use for hidden
// preheader text. Security scanners that follow every link of a message
// follow it too: a fetch of it says the clicks around it are a machine's.
func HoneypotTag(url string) string {
	return `<a href="` + html.EscapeString(dropControls(url)) + `" tabindex="-1" aria-hidden="true" ` +
		`style="display:none;max-height:0;overflow:hidden;mso-hide:all"></a>`
}

// dropControls removes control characters from a URL the rewriter writes.
func dropControls(url string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, url)
}
