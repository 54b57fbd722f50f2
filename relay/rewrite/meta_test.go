package rewrite

import (
	"io"
	"mime/quotedprintable"
	"strings"
	"testing"
)

func TestMetaCharsetUTF8(t *testing.T) {
	tests := []struct{ in, want string }{
		{`<meta charset="iso-8859-1">`, `<meta charset="utf-8">`},
		{`<META CHARSET=windows-1252>`, `<META CHARSET=utf-8>`},
		{`<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">`, `<meta http-equiv="Content-Type" content="text/html; charset=utf-8">`},
		{"<meta\n http-equiv='content-type'\n content='text/html;charset=ISO-2022-JP'>", "<meta\n http-equiv='content-type'\n content='text/html;charset=utf-8'>"},
		{`<p>charset=latin1 in text</p>`, `<p>charset=latin1 in text</p>`},
		{`<meta name="x" content="y"><meta charset='gb2312'/>`, `<meta name="x" content="y"><meta charset='utf-8'/>`},
	}
	for _, tt := range tests {
		if got := string(MetaCharsetUTF8([]byte(tt.in))); got != tt.want {
			t.Errorf("MetaCharsetUTF8(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestConvertedPartDeclaresUTF8: a Latin-1 part with a <meta> charset comes
// out as UTF-8 in its header and in its <meta>.
func TestConvertedPartDeclaresUTF8(t *testing.T) {
	in := "Content-Type: text/html; charset=iso-8859-1\r\n" +
		"Content-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"<html><head><meta http-equiv=3D\"Content-Type\" content=3D\"text/html; charset=3Diso-8859-1\"></head>\r\n" +
		"<body>caf=E9</body></html>\r\n"
	var out strings.Builder
	if err := Rewrite(&out, strings.NewReader(in), Options{PixelURL: "http://t.example/o/x.gif"}); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	head, body, _ := strings.Cut(got, "\r\n\r\n")
	html, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(head, "charset=utf-8") {
		t.Errorf("header does not say utf-8:\n%s", head)
	}
	for _, want := range []string{`content="text/html; charset=utf-8"`, "café"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("decoded HTML lacks %q:\n%s", want, html)
		}
	}
	if strings.Contains(strings.ToLower(got), "iso-8859-1") {
		t.Errorf("output still names iso-8859-1:\n%s", got)
	}
}
