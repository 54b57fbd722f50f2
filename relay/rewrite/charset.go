package rewrite

import (
	"bytes"
	"strings"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/encoding/unicode/utf32"
)

// textMode is how the pixel goes into an HTML part's text.
type textMode int

const (
	// inPlace: the text is left as it is and the pixel (ASCII) written
	// into it. For charsets in which an ASCII byte that HTML syntax is made
	// of (< / > = " ' and white space) is always that ASCII character:
	// every byte is a character of its own in ASCII-compatible single-byte
	// charsets and UTF-8, and in the double-byte charsets (Shift_JIS, EUC-*,
	// GBK/GB18030, Big5, UHC) only lead bytes are over 0x7F and trail bytes
	// are 0x40 and up (GB18030's four-byte form: digits), never one of
	// those (TestTrailBytes checks every character of each). So "</body",
	// found as bytes, is that tag, and the place before its '<' is between
	// two characters. Text that would not decode (carrier emoji, vendor
	// extensions, a stray byte) does not matter: it is not decoded.
	inPlace textMode = iota
	// iso2022: stateful 7-bit text (ISO-2022-JP, -KR, -CN, ...): in place
	// too, but a byte is ASCII only where the shift state says so (see
	// iso2022State).
	iso2022
	// convert: the text is converted to UTF-8 (UTF-16, UTF-32, HZ, EBCDIC
	// and any other charset that does not keep ASCII as ASCII).
	convert
)

// charsetMode says how a part in charset cs (lowercased, trimmed) takes
// the pixel; unknown is true for a charset neither recognised by name nor
// known to golang.org/x/text (it cannot be converted either).
func charsetMode(cs string) (mode textMode, unknown bool) {
	switch {
	case cs == "" || isUTF8(cs):
		return inPlace, false
	case strings.HasPrefix(cs, "iso-2022-") || strings.HasPrefix(cs, "csiso2022"):
		return iso2022, false
	case asciiName(cs):
		return inPlace, false
	}
	enc := lookupCharset(cs)
	switch {
	case enc == nil:
		return convert, true
	case asciiEncoding(enc):
		return inPlace, false
	}
	return convert, false
}

// asciiPrefixes name charset families that keep ASCII as ASCII (see
// inPlace), as CONTRACT.md lists them, with the usual spellings and the
// vendor variants (cp932 is Shift_JIS with Microsoft's extensions, cp949
// and ks_c_5601-1987 EUC-KR with UHC's).
var asciiPrefixes = []string{
	"iso-8859-", "iso8859-", "iso_8859-", "windows-", "cp125", "koi8", "euc-", "x-euc",
	"shift_jis", "shift-jis", "sjis", "x-sjis", "cp932", "ms932", "ms_kanji",
	"gb2312", "gbk", "x-gbk", "gb18030", "cp936", "ms936",
	"big5", "x-big5", "cp950", "ms950",
	"ks_c_5601", "cp949", "ms949", "uhc",
	"latin", "us-ascii", "ascii", "ansi_x3.4",
}

func asciiName(cs string) bool {
	for _, p := range asciiPrefixes {
		if strings.HasPrefix(cs, p) {
			return true
		}
	}
	return false
}

// lookupCharset finds cs as go-message/charset does: IANA names, then
// with "cs", then the WHATWG labels; and UTF-32, which those indexes do not
// give. nil if unknown or unsupported.
func lookupCharset(cs string) encoding.Encoding {
	switch cs {
	case "utf-32", "csutf32":
		return utf32.UTF32(utf32.BigEndian, utf32.UseBOM)
	case "utf-32be", "csutf32be":
		return utf32.UTF32(utf32.BigEndian, utf32.IgnoreBOM)
	case "utf-32le", "csutf32le":
		return utf32.UTF32(utf32.LittleEndian, utf32.IgnoreBOM)
	}
	if e, err := ianaindex.MIME.Encoding(cs); err == nil && e != nil {
		return e
	}
	if e, err := ianaindex.MIME.Encoding("cs" + cs); err == nil && e != nil {
		return e
	}
	if e, err := htmlindex.Get(cs); err == nil && e != nil {
		return e
	}
	return nil
}

// asciiEncodings are the multi-byte encodings that keep ASCII as ASCII.
var asciiEncodings = []encoding.Encoding{
	unicode.UTF8, japanese.ShiftJIS, japanese.EUCJP, korean.EUCKR,
	simplifiedchinese.GBK, simplifiedchinese.GB18030, traditionalchinese.Big5,
	charmap.ISO8859_6E, charmap.ISO8859_6I, charmap.ISO8859_8E, charmap.ISO8859_8I,
}

// asciiEncoding reports whether enc keeps ASCII as ASCII: one of
// asciiEncodings, or a single-byte charmap whose bytes 0x00-0x7F are
// ASCII (not EBCDIC).
func asciiEncoding(enc encoding.Encoding) bool {
	for _, e := range asciiEncodings {
		if e == enc {
			return true
		}
	}
	cm, ok := enc.(*charmap.Charmap)
	if !ok {
		return false
	}
	for b := range 0x80 {
		if cm.DecodeByte(byte(b)) != rune(b) {
			return false
		}
	}
	return true
}

// iso2022State follows the shift state of ISO-2022 text (RFC 1468 and
// 1554 for Japanese, 1557 Korean, 1922 Chinese): which set G0 holds (its
// designating escape sequence; none: ASCII), whether SO has shifted to G1,
// and how many bytes a single shift (ESC N, ESC O) still takes.
type iso2022State struct {
	g0     string // the escape sequence that designated G0; "" or ESC ( B: ASCII
	so     bool   // shifted out to G1
	single int    // bytes left in a single-shifted character
	ssLen  int    // bytes a single-shifted character takes: 2 in ISO-2022-CN, else 1
	cut    bool   // the last byte taken left an escape sequence unfinished
}

const (
	esc = 0x1b
	so  = 0x0e
	si  = 0x0f
)

// step takes the byte at text[i] (a whole escape sequence if one starts
// there) and returns the index after it.
func (s *iso2022State) step(text []byte, i int) int {
	s.cut = false
	if s.single > 0 {
		s.single--
		return i + 1
	}
	switch text[i] {
	case so:
		s.so = true
	case si:
		s.so = false
	case esc:
		return s.escape(text, i)
	}
	return i + 1
}

// escape takes the escape sequence at text[i]: ESC, intermediate bytes
// 0x20-0x2F, a final byte 0x30-0x7E.
func (s *iso2022State) escape(text []byte, i int) int {
	j := i + 1
	for j < len(text) && text[j] >= 0x20 && text[j] <= 0x2f {
		j++
	}
	if j >= len(text) || text[j] < 0x30 || text[j] > 0x7e {
		s.cut = true // unfinished: a '<' written next would finish it
		return j
	}
	seq, inter := text[i:j+1], string(text[i+1:j])
	switch {
	case inter == "" && (text[j] == 'N' || text[j] == 'O'):
		s.single = s.ssLen
	case inter == "(" || inter == "$" || inter == "$(":
		// A set for G0: 94 characters (ESC ( F) or multi-byte (ESC $ F,
		// ESC $ ( F). G1-G3 designations leave G0 alone.
		s.g0 = string(seq)
		if s.g0 == "\x1b(B" {
			s.g0 = ""
		}
	}
	return j + 1
}

// roman reports whether the next byte is read as ASCII, or as JIS X 0201
// Roman (ESC ( J), which has the same letters and HTML syntax characters.
func (s *iso2022State) roman() bool {
	return !s.so && s.single == 0 && !s.cut && (s.g0 == "" || s.g0 == "\x1b(J")
}

// wrap returns what goes before and after the pixel at a point in this
// state: nothing in ASCII, else a switch to ASCII and back.
func (s *iso2022State) wrap() (pre, post string) {
	if s.so {
		pre, post = "\x0f", "\x0e"
	}
	if s.g0 != "" {
		pre, post = pre+"\x1b(B", s.g0+post
	}
	return pre, post
}

// pixelPos2022 is pixelPos for ISO-2022 text: before the last </body> read
// in ASCII (or JIS Roman) state, else at the end before a final line
// break, with the switches to ASCII and back that the state there needs.
// Where the text ends inside a single-shifted character or an unfinished
// escape sequence, the pixel goes before it. cn: the Chinese variant,
// whose single shifts take two bytes.
func pixelPos2022(text []byte, cn bool) (at int, pre, post string) {
	end, _ := splitTail(text)
	s := iso2022State{ssLen: 1}
	if cn {
		s.ssLen = 2
	}
	last, lastState := -1, s
	safe, safeState := 0, s // the last point between two characters
	for i := 0; ; {
		if s.single == 0 && !s.cut {
			safe, safeState = i, s
		}
		if i >= len(end) {
			break
		}
		if end[i] == '<' && s.roman() && bodyClose(text[i:]) {
			last, lastState = i, s
		}
		i = s.step(end, i)
	}
	at, s = safe, safeState
	if last >= 0 {
		at, s = last, lastState
	}
	pre, post = s.wrap()
	return at, pre, post
}

// bodyClose reports whether b starts with a </body> tag: "</body" in any
// case followed by white space, '/' or '>' (or the end).
func bodyClose(b []byte) bool {
	if len(b) < 6 || b[0] != '<' || b[1] != '/' || !bytes.EqualFold(b[2:6], []byte("body")) {
		return false
	}
	return len(b) == 6 || strings.IndexByte(" \t\r\n\f/>", b[6]) >= 0
}
