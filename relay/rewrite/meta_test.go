package rewrite

import (
	"encoding/base64"
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

// TestConvertedPartDeclaresUTF8: a part in a charset that does not keep
// ASCII as ASCII (UTF-16, UTF-32) is converted, and comes out as UTF-8 in
// its header and in its <meta>.
func TestConvertedPartDeclaresUTF8(t *testing.T) {
	for _, cs := range []string{"UTF-16LE", "UTF-32LE"} {
		t.Run(cs, func(t *testing.T) {
			html := `<html><head><meta http-equiv="Content-Type" content="text/html; charset=` + strings.ToLower(cs) + `"></head>` +
				"\r\n<body>café</body></html>\r\n"
			var enc []byte
			for _, r := range html { // BMP only, little-endian
				enc = append(enc, byte(r), byte(r>>8))
				if cs == "UTF-32LE" {
					enc = append(enc, 0, 0)
				}
			}
			in := "Content-Type: text/html; charset=" + cs + "\r\n" +
				"Content-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString(enc) + "\r\n"
			var out strings.Builder
			if err := Rewrite(&out, strings.NewReader(in), Options{PixelURL: "http://t.example/o/x.gif"}); err != nil {
				t.Fatal(err)
			}
			got := out.String()
			head, body, _ := strings.Cut(got, "\r\n\r\n")
			dec, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(body, "\r\n", ""))
			if err != nil {
				t.Fatal(err)
			}
			if head != "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64" {
				t.Errorf("header does not say utf-8:\n%s", head)
			}
			for _, want := range []string{`content="text/html; charset=utf-8"`, "<body>café<img src=\"http://t.example/o/x.gif\""} {
				if !strings.Contains(string(dec), want) {
					t.Errorf("decoded HTML lacks %q:\n%s", want, dec)
				}
			}
			if strings.Contains(strings.ToLower(got+string(dec)), strings.ToLower(cs)) {
				t.Errorf("output still names %s:\n%s\n%s", cs, got, dec)
			}
		})
	}
}
