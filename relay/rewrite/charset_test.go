package rewrite

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
)

// TestCharsetMode: CONTRACT.md's list of charsets that keep ASCII as ASCII
// take the pixel in place; ISO-2022 by its state; the others are
// converted; a charset nobody knows is reported.
func TestCharsetMode(t *testing.T) {
	tests := []struct {
		cs      string
		mode    textMode
		unknown bool
	}{
		{"", inPlace, false}, {"utf-8", inPlace, false}, {"us-ascii", inPlace, false},
		{"iso-8859-1", inPlace, false}, {"iso-8859-15", inPlace, false}, {"latin1", inPlace, false},
		{"iso-8859-8-i", inPlace, false}, {"windows-1251", inPlace, false}, {"cp1252", inPlace, false},
		{"koi8-r", inPlace, false}, {"koi8-u", inPlace, false}, {"x-mac-cyrillic", inPlace, false},
		{"macintosh", inPlace, false}, {"ibm866", inPlace, false}, {"tis-620", inPlace, false},
		{"shift_jis", inPlace, false}, {"x-sjis", inPlace, false}, {"cp932", inPlace, false},
		{"windows-31j", inPlace, false}, {"euc-jp", inPlace, false}, {"euc-kr", inPlace, false},
		{"ks_c_5601-1987", inPlace, false}, {"cp949", inPlace, false}, {"gb2312", inPlace, false},
		{"gbk", inPlace, false}, {"gb18030", inPlace, false}, {"big5", inPlace, false},
		{"big5-hkscs", inPlace, false}, {"cp950", inPlace, false},
		{"iso-2022-jp", iso2022, false}, {"iso-2022-jp-2", iso2022, false}, {"iso-2022-kr", iso2022, false},
		{"iso-2022-cn", iso2022, false}, {"csiso2022jp", iso2022, false},
		{"utf-16", convert, false}, {"utf-16le", convert, false}, {"utf-16be", convert, false},
		{"hz-gb-2312", convert, false}, {"ibm037", convert, false}, {"utf-32", convert, false},
		{"utf-32le", convert, false},
		{"utf-7", convert, true}, {"bad-charset", convert, true}, {"charset=us-ascii", convert, true},
		{"us-askey", convert, true},
	}
	for _, tc := range tests {
		mode, unknown := charsetMode(tc.cs)
		if mode != tc.mode || unknown != tc.unknown {
			t.Errorf("charsetMode(%q) = %v, %v; want %v, %v", tc.cs, mode, unknown, tc.mode, tc.unknown)
		}
	}
}

// TestTrailBytes proves what inPlace rests on for each double-byte
// charset: every character over ASCII starts with a byte over 0x7F, and
// none of its other bytes is an ASCII byte HTML syntax is made of; and a
// lead byte followed by such a byte does not swallow it when decoded.
func TestTrailBytes(t *testing.T) {
	const syntax = "<>/=\"' \t\r\n\f"
	encs := map[string]encoding.Encoding{
		"Shift_JIS": japanese.ShiftJIS, "EUC-JP": japanese.EUCJP, "EUC-KR (UHC)": korean.EUCKR,
		"GBK": simplifiedchinese.GBK, "GB18030": simplifiedchinese.GB18030, "Big5": traditionalchinese.Big5,
	}
	for name, enc := range encs {
		t.Run(name, func(t *testing.T) {
			e := enc.NewEncoder()
			var buf [utf8.UTFMax]byte
			multi := 0
			for r := rune(0x80); r <= 0x10FFFF; r++ {
				if r >= 0xD800 && r <= 0xDFFF || (r > 0xFFFF && name != "GB18030") {
					continue
				}
				b, err := e.Bytes(buf[:utf8.EncodeRune(buf[:], r)])
				if err != nil {
					continue // not in the charset
				}
				if b[0] < 0x80 {
					t.Fatalf("U+%04X is %x: starts with an ASCII byte", r, b)
				}
				for _, c := range b[1:] {
					if strings.IndexByte(syntax, c) >= 0 {
						t.Fatalf("U+%04X is %x: holds %q", r, b, c)
					}
				}
				multi++
			}
			d := enc.NewDecoder()
			for lead := 0x80; lead <= 0xff; lead++ {
				for _, c := range []byte(syntax) {
					out, _ := d.Bytes([]byte{byte(lead), c})
					if len(out) == 0 || out[len(out)-1] != c {
						t.Fatalf("%x %x decodes to %q: the ASCII byte was swallowed", lead, c, out)
					}
				}
			}
			if multi < 5000 {
				t.Fatalf("only %d characters over ASCII", multi)
			}
		})
	}
}

// TestPixelPos2022: the pixel goes before the last </body> that is read in
// ASCII (or JIS Roman) state, else at the end; where the state is not
// ASCII it is switched to ASCII and back.
func TestPixelPos2022(t *testing.T) {
	tests := []struct {
		name, text string
		cn         bool
		before     string // the text after the pixel
		pre, post  string
	}{
		{"ascii", "<p>x</p></body></html>\r\n", false, "</body></html>\r\n", "", ""},
		{"kanji then ascii", "<p>\x1b$B$3$s\x1b(B</p></body>\n", false, "</body>\n", "", ""},
		{"bytes reading </body in JIS X 0208", "<p>x</p></body>\x1b$B</body\x1b(B</html>\n", false, "</body>\x1b$B</body\x1b(B</html>\n", "", ""},
		{"JIS Roman", "\x1b(J<p>x</p></body></html>\n", false, "</body></html>\n", "\x1b(B", "\x1b(J"},
		{"no </body>, ascii end", "<p>\x1b$B$3\x1b(B</p>\r\n", false, "\r\n", "", ""},
		{"no </body>, ends in JIS X 0208", "<p>\x1b$B$3$s\r\n", false, "\r\n", "\x1b(B", "\x1b$B"},
		{"JIS X 0212 (ESC $ ( D)", "</body>\x1b$(D</body\r\n", false, "</body>\x1b$(D</body\r\n", "", ""},
		{"ISO-2022-KR", "\x1b$)C<p>\x0e!!\x0f</p></body>\x0e</body\x0f\n", false, "</body>\x0e</body\x0f\n", "", ""},
		{"ISO-2022-KR shifted at the end", "\x1b$)C<p>\x0e!!", false, "", "\x0f", "\x0e"},
		{"single shift swallows <", "</body>x\x1bN</body>", false, "</body>x\x1bN</body>", "", ""},
		{"ends in a single shift", "<p>\x1bN", true, "\x1bN", "", ""},
		{"single shift of two bytes (CN)", "</body>\x1bN!</body>", true, "</body>\x1bN!</body>", "", ""},
		{"uppercase </BODY >", "<BODY>x</BODY ></HTML>", false, "</BODY ></HTML>", "", ""},
		{"</bodyx is no tag", "</bodyx>", false, "", "", ""},
		{"empty", "", false, "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			at, pre, post := pixelPos2022([]byte(tc.text), tc.cn)
			if tc.text[at:] != tc.before || pre != tc.pre || post != tc.post {
				t.Fatalf("at %d (%q), pre %q, post %q; want before %q, pre %q, post %q",
					at, tc.text[at:], pre, post, tc.before, tc.pre, tc.post)
			}
		})
	}
}

// FuzzPixelPos2022: wherever the pixel goes in ISO-2022 text, it is read in
// ASCII state, and the text after it is read in the state it was read in
// before.
func FuzzPixelPos2022(f *testing.F) {
	for _, s := range []string{"<p>\x1b$B$3$s\x1b(B</p></body>\n", "\x1b(J</body>", "\x1b$)C\x0e!!", "</body>\x1bN<", "\x1b$(D\x1b$B\x1b("} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, text []byte, cn bool) {
		at, pre, post := pixelPos2022(text, cn)
		if at < 0 || at > len(text) {
			t.Fatalf("at %d of %d", at, len(text))
		}
		const pixel = "<img>"
		out := append(append(append(append(append([]byte(nil), text[:at]...), pre...), pixel...), post...), text[at:]...)
		ssLen := 1
		if cn {
			ssLen = 2
		}
		sIn, sOut := iso2022State{ssLen: ssLen}, iso2022State{ssLen: ssLen}
		for i := 0; i < at; {
			i = sIn.step(text, i)
		}
		pixelAt := at + len(pre)
		for i := 0; i < pixelAt; {
			i = sOut.step(out, i)
		}
		if sOut.so || sOut.single > 0 || sOut.g0 != "" || sOut.cut {
			t.Fatalf("pixel read in state %+v: %q", sOut, out)
		}
		for i := pixelAt; i < pixelAt+len(pixel)+len(post); {
			i = sOut.step(out, i)
		}
		if sIn.g0 != sOut.g0 || sIn.so != sOut.so || sIn.single != sOut.single {
			t.Fatalf("after the pixel: state %+v, before it %+v: %q", sOut, sIn, out)
		}
		if !bytes.Equal(out[:at], text[:at]) || !bytes.Equal(out[pixelAt+len(pixel)+len(post):], text[at:]) {
			t.Fatal("text changed")
		}
	})
}
