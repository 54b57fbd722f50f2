package rewrite

import (
	"bytes"
	"regexp"
)

// metaCharset finds the charset declared inside an HTML <meta> tag:
// <meta charset="iso-8859-1"> and
// <meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">.
// Group 1 is the charset value.
var metaCharset = regexp.MustCompile(`(?is)<meta\b[^>]*?\bcharset\s*=\s*["']?\s*([a-z0-9_.:+-]+)`)

// MetaCharsetUTF8 returns text with the charset of every <meta> tag set to
// utf-8. A part converted to UTF-8 must not keep a <meta> that names its
// old charset: mail clients that honour the tag would show mojibake. Only
// called for parts whose charset changes; text is already UTF-8.
func MetaCharsetUTF8(text []byte) []byte {
	locs := metaCharset.FindAllSubmatchIndex(text, -1)
	if locs == nil {
		return text
	}
	var out bytes.Buffer
	out.Grow(len(text))
	last := 0
	for _, loc := range locs {
		start, end := loc[2], loc[3]
		out.Write(text[last:start])
		out.WriteString("utf-8")
		last = end
	}
	out.Write(text[last:])
	return out.Bytes()
}
