package rewrite

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"
	"sync"
)

// MaxHTMLPart is the largest text/html body part (encoded size) that gets
// a pixel. Only a part being changed is held in memory; a larger one is
// passed through untouched and counted in Info.LargeHTML, not HTMLParts.
const MaxHTMLPart = 4 << 20

// buffers are the scratch space of one walk, pooled.
type buffers struct {
	raw, dec, conv, ins bytes.Buffer
	mask                []byte // ISO-2022 text as the link finder reads it

	src bytes.Reader  // what a decoder reads
	br  *bufio.Reader // buffered src, for the QP decoder
}

// reset empties b and reports whether it is small enough to keep.
func (b *buffers) reset() bool {
	for _, x := range []*bytes.Buffer{&b.raw, &b.dec, &b.conv, &b.ins} {
		if x.Cap() > 1<<20 {
			return false
		}
		x.Reset()
	}
	if cap(b.mask) > 1<<20 {
		return false
	}
	b.mask = b.mask[:0]
	return true
}

// html handles a text/html body part: buffered (up to MaxHTMLPart),
// decoded, given the pixel and encoded back. Whatever cannot be done
// safely leaves the part exactly as it was.
func (w *walker) html(h *header, params map[string]string, s scope) error {
	top := s.depth == 0
	if h.end == "" || (!w.dry && (w.pixel == "" || s.frozen || w.frozen)) {
		// No pixel wanted or allowed, or no blank line after the header
		// (no body to put a pixel in).
		return w.opaque(h, s)
	}
	raw := &w.buf.raw
	raw.Reset()
	for {
		chunk, start, err := w.lr.next()
		if err == io.EOF {
			w.t.eof = true
			break
		}
		if err != nil {
			return err
		}
		if start && len(s.bs) > 0 {
			if level, closing, ok := s.bs.match(chunk); ok {
				w.t.set(level, closing, chunk, w.lr.before)
				break
			}
		}
		if raw.Len()+len(chunk) > MaxHTMLPart {
			w.bigHTML++
			if err := w.writeHeader(h, top, nil, nil); err != nil {
				return err
			}
			w.out.Write(raw.Bytes())
			w.out.Write(chunk)
			return w.passthrough(s.bs)
		}
		raw.Write(chunk)
	}
	return w.change(h, params, raw.Bytes(), s)
}

// edit is how one HTML part changes.
type edit struct {
	ct, cte []byte // replacement header fields, nil: unchanged
	text    []byte // the new HTML, UTF-8 (or as it was when no charset)
	enc     string // transfer encoding to write text in
	nl      string // the part's line ending
	tail    string // final line break, kept after the body
	softEnd bool   // write a soft line break before tail
}

// change writes the HTML part whose raw body is raw, with the pixel when
// that can be done safely, else unchanged.
func (w *walker) change(h *header, params map[string]string, raw []byte, s scope) error {
	top := s.depth == 0
	e, reason := w.transform(h, params, raw, s.bs)
	if reason != "" {
		w.setDefect(reason)
		if err := w.writeHeader(h, top, nil, nil); err != nil {
			return err
		}
		_, err := w.out.Write(raw)
		return err
	}
	w.htmlParts++
	if w.dry {
		return nil
	}
	if err := w.writeHeader(h, top, e.ct, e.cte); err != nil {
		return err
	}
	w.encode(e)
	if e.softEnd {
		w.out.WriteString("=" + e.nl) // keep a final line break, decoding to nothing
	}
	_, err := w.out.WriteString(e.tail)
	return err
}

// transform decodes one HTML part and puts the pixel in. It returns the
// edit to write, or the reason the part cannot be changed.
func (w *walker) transform(h *header, params map[string]string, raw []byte, bs boundaries) (e edit, reason string) {
	e.nl = lineEnding(firstLine(raw))
	if e.nl == "" {
		e.nl = h.end // the line before the body
	}
	if e.nl == "" {
		e.nl = h.nl
	}
	if e.nl == "" {
		e.nl = "\r\n"
	}
	e.enc = strings.ToLower(h.get("Content-Transfer-Encoding"))
	content, tail := splitTail(raw)
	switch {
	case !w.t.eof:
		// The line break before the delimiter belongs to the delimiter.
		if tail == "" {
			tail = e.nl
		}
	case e.enc != "base64":
		// The body runs to the end of the message: its final line break
		// is content (and may end a soft line break or a charset state).
		content, tail = raw, ""
	}
	e.tail = tail
	text, reason := w.decode(e.enc, content)
	if reason != "" {
		return e, reason
	}
	cs, given := params["charset"]
	cs = strings.ToLower(strings.TrimSpace(cs))
	if given && cs == "" {
		return e, "empty charset of an HTML part"
	}
	mode, unknown := charsetMode(cs)
	if unknown {
		return e, fmt.Sprintf("unknown charset %q of an HTML part", cs)
	}
	if mode == convert {
		if text, reason = w.toUTF8(cs, text); reason != "" {
			return e, reason
		}
		text = MetaCharsetUTF8(text)
		if e.ct = charsetField(h, e.nl); e.ct == nil {
			return e, "cannot rewrite the charset of an HTML part"
		}
	}
	if bytes.Contains(text, []byte("-----BEGIN PGP ")) {
		if w.crypto == "" {
			w.crypto = "inline-pgp"
		}
		if !w.dry {
			return e, "inline PGP in an HTML part" // leave it alone
		}
	}
	var links []link
	if w.collect {
		links = w.findLinks(text, mode, cs)
	}
	if w.dry {
		return e, "" // Inspect: the rest cannot fail
	}
	at, pre, post := pixelPos(text), "", ""
	if mode == iso2022 {
		at, pre, post = pixelPos2022(text, strings.HasPrefix(cs, "iso-2022-cn"))
	}
	w.assemble(text, at, pre+w.honeypot()+w.pixel+post, links)
	e.text = w.buf.ins.Bytes()
	if needQP(e.enc, e.text, bs) {
		e.enc = "quoted-printable"
		e.cte = cteField(h, e.nl)
	}
	if e.enc == "quoted-printable" && w.t.eof && len(lineEnding(raw)) > 0 {
		// The message ended with a line break: keep one.
		e.softEnd = len(lineEnding(e.text)) == 0
	}
	return e, ""
}

// assemble writes text into w.buf.ins with ins at byte at and the href
// of each link replaced by its click URL. A link whose click URL is "",
// or whose href holds the insertion point (a "</body" inside an attribute
// value), is left as it is. An unquoted href value is written quoted.
func (w *walker) assemble(text []byte, at int, ins string, links []link) {
	out := &w.buf.ins
	out.Reset()
	p, placed := 0, false
	for _, l := range links {
		if !placed && at <= l.start {
			out.Write(text[p:at])
			out.WriteString(ins)
			p, placed = at, true
		}
		u := ""
		if w.click != nil && (at < l.start || at > l.end) {
			u = w.click(l.n)
		}
		if u == "" {
			continue
		}
		out.Write(text[p:l.start])
		if !l.quoted {
			out.WriteByte('"')
		}
		out.WriteString(html.EscapeString(dropControls(u)))
		if !l.quoted {
			out.WriteByte('"')
		}
		p = l.end
	}
	if !placed {
		out.Write(text[p:at])
		out.WriteString(ins)
		p = at
	}
	out.Write(text[p:])
}

// honeypot is the hidden link that goes beside the pixel, "" when clicks
// are not counted.
func (w *walker) honeypot() string {
	if w.click == nil {
		return ""
	}
	if u := w.click(0); u != "" {
		return HoneypotTag(u)
	}
	return ""
}

// needQP reports whether text cannot be written in enc: 7bit, 8bit and
// binary switch to quoted-printable when a line would be over 998 octets,
// 7bit text is not ASCII, or a line would look like a delimiter of bs.
func needQP(enc string, text []byte, bs boundaries) bool {
	switch enc {
	case "base64", "quoted-printable":
		return false
	case "binary":
		return hasDelimiter(text, bs)
	}
	return longLine(text) || (enc != "8bit" && !ascii(text)) || hasDelimiter(text, bs)
}

// encode writes the edit's text in its transfer encoding.
func (w *walker) encode(e edit) {
	switch e.enc {
	case "base64":
		base64Lines(w.out, e.text, e.nl)
	case "quoted-printable":
		qpEncode(w.out, e.text, e.nl)
	default:
		w.out.Write(e.text)
	}
}

// decode undoes the transfer encoding.
func (w *walker) decode(enc string, content []byte) ([]byte, string) {
	var r io.Reader
	switch enc {
	case "", "7bit", "8bit", "binary":
		return content, ""
	case "quoted-printable":
		w.buf.src.Reset(content)
		if w.buf.br == nil {
			w.buf.br = bufio.NewReaderSize(&w.buf.src, 4096)
		}
		w.buf.br.Reset(&w.buf.src)
		r = quotedprintable.NewReader(w.buf.br) // reuses br: no new buffer
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, spaceDropper{bytes.NewReader(content)})
	default:
		return nil, fmt.Sprintf("unknown Content-Transfer-Encoding %q of an HTML part", enc)
	}
	dec := &w.buf.dec
	dec.Reset()
	if _, err := dec.ReadFrom(r); err != nil {
		return nil, fmt.Sprintf("undecodable %s HTML part", enc)
	}
	return dec.Bytes(), ""
}

// toUTF8 converts text from charset cs.
func (w *walker) toUTF8(cs string, text []byte) ([]byte, string) {
	enc := lookupCharset(cs)
	if enc == nil {
		return nil, fmt.Sprintf("unknown charset %q of an HTML part", cs)
	}
	conv := &w.buf.conv
	conv.Reset()
	if _, err := conv.ReadFrom(enc.NewDecoder().Reader(bytes.NewReader(text))); err != nil {
		return nil, fmt.Sprintf("text not in charset %q in an HTML part", cs)
	}
	if bytes.Contains(conv.Bytes(), []byte("\uFFFD")) {
		return nil, fmt.Sprintf("text not in charset %q in an HTML part", cs)
	}
	return conv.Bytes(), ""
}

func isUTF8(cs string) bool {
	switch cs {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return true
	}
	return false
}

// spaceDropper turns spaces and tabs into line breaks, which the base64
// decoder ignores (as go-message does for indented base64).
type spaceDropper struct{ r io.Reader }

func (s spaceDropper) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	for i := range p[:n] {
		if p[i] == ' ' || p[i] == '\t' {
			p[i] = '\n'
		}
	}
	return n, err
}

func firstLine(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i+1]
	}
	return nil
}

// splitTail splits the final line ending off a body: before a delimiter it
// belongs to the delimiter, at the end of the message it stays last.
func splitTail(raw []byte) ([]byte, string) {
	nl := lineEnding(raw)
	return raw[:len(raw)-len(nl)], nl
}

// pixelPos is where the pixel goes: before the last </body> (any case,
// optional space before '>'), else at the end before a final line break.
//
// It works on the bytes of any charset that keeps ASCII as ASCII (see
// inPlace): '<' and '/' are never part of another character there.
func pixelPos(text []byte) int {
	end := len(text)
	for end > 0 {
		i := bytes.LastIndex(text[:end], []byte("</"))
		if i < 0 {
			break
		}
		if bodyClose(text[i:]) {
			return i
		}
		end = i
	}
	c, _ := splitTail(text)
	return len(c)
}

func longLine(b []byte) bool {
	for len(b) > 998 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return true
		}
		line := b[:i]
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		if len(line) > 998 {
			return true
		}
		b = b[i+1:]
	}
	return false
}

func ascii(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// base64Lines writes b in base64, lines of 76 characters ending in nl (the
// last one without: the part's own final line break follows).
func base64Lines(out *bufio.Writer, b []byte, nl string) {
	var line [76]byte
	for len(b) > 0 {
		n := min(57, len(b))
		m := base64.StdEncoding.EncodedLen(n)
		base64.StdEncoding.Encode(line[:m], b[:n])
		out.Write(line[:m])
		b = b[n:]
		if len(b) > 0 {
			out.WriteString(nl)
		}
	}
}

const hexDigits = "0123456789ABCDEF"

var qpScratch = sync.Pool{New: func() any { return new([4096]byte) }}

// qpSafe marks the bytes written as they are anywhere but at the start or
// end of a line.
var qpSafe = func() (t [256]bool) {
	for c := ' '; c <= '~'; c++ {
		t[c] = c != '='
	}
	t['\t'] = true
	return t
}()

// qpEncode writes b quoted-printable (RFC 2045 6.7) with lines of at most
// 76 characters ending in nl. Only nl itself is a hard line break; any
// other CR or LF is escaped, so decoding gives back exactly b. A '-' or
// '.' starting a line is escaped too: no line can look like a boundary
// delimiter or an SMTP end of data.
func qpEncode(out *bufio.Writer, b []byte, nl string) {
	scratch := qpScratch.Get().(*[4096]byte)
	defer qpScratch.Put(scratch)
	dst := scratch[:0]
	col := 0
	for len(b) > 0 {
		seg, hard := b, false
		if i := bytes.Index(b, []byte(nl)); i >= 0 {
			seg, b, hard = b[:i], b[i+len(nl):], true
		} else {
			b = nil
		}
		last := len(seg) - 1
		for i := 0; i < len(seg); i++ {
			if len(dst) > len(scratch)-128 {
				out.Write(dst)
				dst = dst[:0]
			}
			c := seg[i]
			if col > 0 && col < 75 && i < last && qpSafe[c] {
				// A run of plain characters, short of the last one and
				// of the soft line break.
				j, end := i+1, min(last, i+75-col)
				for j < end && qpSafe[seg[j]] {
					j++
				}
				dst = append(dst, seg[i:j]...)
				col += j - i
				i = j - 1
				continue
			}
			n := 1
			if qpEscape(c, i == last, col) {
				n = 3
			}
			if col+n > 75 && !(i == last && col+n <= 76) {
				dst = append(dst, '=')
				dst = append(dst, nl...)
				col = 0
				if c == '-' || c == '.' {
					n = 3
				}
			}
			if n == 3 {
				dst = append(dst, '=', hexDigits[c>>4], hexDigits[c&15])
			} else {
				dst = append(dst, c)
			}
			col += n
		}
		if hard {
			dst = append(dst, nl...)
			col = 0
		}
	}
	out.Write(dst)
}

// qpEscape reports whether c must be written as =XX.
func qpEscape(c byte, last bool, col int) bool {
	switch {
	case c == '=' || c > '~':
		return true
	case c == ' ' || c == '\t':
		return last
	case c < ' ':
		return true
	case c == '-' || c == '.':
		return col == 0
	}
	return false
}

// charsetField returns the Content-Type field with its charset parameter
// set to utf-8, every other byte kept; or, when the parameter cannot be
// found in the raw field, the field formatted anew. nil if impossible.
func charsetField(h *header, nl string) []byte {
	i := h.index("Content-Type")
	if i < 0 {
		return nil
	}
	raw := h.raw(h.fields[i])
	typ, params, err := mime.ParseMediaType(fieldValue(raw))
	if err != nil {
		return nil
	}
	if s, e, ok := charsetValue(raw); ok {
		out := make([]byte, 0, len(raw))
		out = append(out, raw[:s]...)
		out = append(out, "utf-8"...)
		out = append(out, raw[e:]...)
		t2, p2, err := mime.ParseMediaType(fieldValue(out))
		if err == nil && t2 == typ && sameExceptCharset(params, p2) {
			return out
		}
	}
	params["charset"] = "utf-8"
	v := mime.FormatMediaType(typ, params)
	if v == "" {
		return nil
	}
	return []byte("Content-Type: " + v + nl)
}

func sameExceptCharset(a, b map[string]string) bool {
	if len(a) != len(b) || b["charset"] != "utf-8" {
		return false
	}
	for k, v := range a {
		if k != "charset" && b[k] != v {
			return false
		}
	}
	return true
}

// charsetValue finds the value of the charset parameter in a raw
// Content-Type field: raw[start:end], quotes excluded.
func charsetValue(raw []byte) (start, end int, ok bool) {
	p := bytes.IndexByte(raw, ';')
	for p >= 0 && p < len(raw) {
		p = skipSpace(raw, p+1)
		a := p
		for p < len(raw) && raw[p] != '=' && raw[p] != ';' && !isSpace(raw[p]) {
			p++
		}
		attr := raw[a:p]
		p = skipSpace(raw, p)
		if p >= len(raw) || raw[p] != '=' {
			return 0, 0, false
		}
		p = skipSpace(raw, p+1)
		if p < len(raw) && raw[p] == '"' {
			start = p + 1
			for p++; p < len(raw) && raw[p] != '"'; p++ {
				if raw[p] == '\\' {
					p++
				}
			}
			if p >= len(raw) {
				return 0, 0, false
			}
			end = p
			p++
		} else {
			start = p
			for p < len(raw) && raw[p] != ';' && !isSpace(raw[p]) {
				p++
			}
			end = p
		}
		if bytes.EqualFold(attr, []byte("charset")) {
			return start, end, true
		}
		p = skipSpace(raw, p)
		if p >= len(raw) || raw[p] != ';' {
			return 0, 0, false
		}
	}
	return 0, 0, false
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func skipSpace(b []byte, p int) int {
	for p < len(b) && isSpace(b[p]) {
		p++
	}
	return p
}

// cteField returns the Content-Transfer-Encoding field saying
// quoted-printable: the existing field with its value replaced, or a new
// one.
func cteField(h *header, nl string) []byte {
	i := h.index("Content-Transfer-Encoding")
	if i < 0 {
		return []byte("Content-Transfer-Encoding: quoted-printable" + nl)
	}
	raw := h.raw(h.fields[i])
	c := bytes.IndexByte(raw, ':')
	v := skipSpace(raw, c+1)
	if v > c+1 && raw[v-1] != ' ' && raw[v-1] != '\t' {
		v = c + 1 // value on a continuation line: keep it simple
	}
	out := append([]byte(nil), raw[:v]...)
	if v == c+1 {
		out = append(out, ' ')
	}
	out = append(out, "quoted-printable"...)
	return append(out, lineEnding(raw)...)
}
