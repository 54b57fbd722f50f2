package rewrite

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"

	"pixelrelay/internal/corpus"
)

const testPixelURL = "https://t.example.net/o/v1abcdefghijklmnopqrstuvwxyz0123456789.gif"

const testMsgID = "<added.1234@pixelrelay.test>"

// sample is one test message.
type sample struct {
	name string
	data []byte
}

// samples returns our own fixtures and, when it is there, the shared
// corpus (internal/corpus). Tests that need the corpus also call
// reportCorpus, which says when it did not run.
func samples(t testing.TB) []sample {
	t.Helper()
	files, err := filepath.Glob("../../testdata/messages/*.eml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 20 {
		t.Fatalf("only %d fixture messages found", len(files))
	}
	if corpus.Present() {
		files = append(corpus.Files(t), files...)
	}
	var out []sample
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sample{name: filepath.Base(f), data: b})
	}
	return out
}

// reportCorpus reports whether the shared corpus is there; when it is not,
// a subtest "shared corpus" is skipped saying so (or fails, where the
// corpus is required).
func reportCorpus(t *testing.T) bool {
	t.Helper()
	if corpus.Present() {
		return true
	}
	t.Run("shared corpus", func(t *testing.T) { corpus.Files(t) })
	return false
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../testdata/messages", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func inspect(t testing.TB, b []byte) Info {
	t.Helper()
	info, err := Inspect(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	return info
}

func rewrite(t testing.TB, b []byte, opt Options) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := Rewrite(&out, bytes.NewReader(b), opt); err != nil {
		t.Fatalf("Rewrite: %v", err)
	}
	return out.Bytes()
}

// leaf is one non-multipart entity as go-message's textproto reader sees
// it: header and raw (still encoded) body.
type leaf struct {
	path   string
	header textproto.Header
	body   []byte
	html   bool // a text/html body part
}

// goLeaves walks a message with go-message (textproto.ReadHeader and
// textproto.NewMultipartReader); message/rfc822 parts are leaves.
func goLeaves(raw []byte) ([]leaf, error) {
	if bytes.HasPrefix(raw, []byte("From ")) { // mbox separator line
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			raw = raw[i+1:]
		}
	}
	br := bufio.NewReader(bytes.NewReader(raw))
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return nil, err
	}
	var out []leaf
	err = goWalk(h, br, "0", false, &out)
	return out, err
}

func goWalk(h textproto.Header, body io.Reader, path string, digest bool, out *[]leaf) error {
	typ, params := "text/plain", map[string]string(nil)
	if digest {
		typ = "message/rfc822"
	}
	if v := h.Get("Content-Type"); v != "" {
		var err error
		if typ, params, err = mime.ParseMediaType(v); err != nil {
			return fmt.Errorf("%s: Content-Type: %v", path, err)
		}
	}
	if strings.HasPrefix(typ, "multipart/") {
		mr := textproto.NewMultipartReader(body, params["boundary"])
		for i := 0; ; i++ {
			p, err := mr.NextPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("%s: %v", path, err)
			}
			if err := goWalk(p.Header, p, fmt.Sprintf("%s.%d", path, i), typ == "multipart/digest", out); err != nil {
				return err
			}
		}
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return fmt.Errorf("%s: body: %v", path, err)
	}
	*out = append(*out, leaf{path: path, header: h, body: b, html: typ == "text/html" && !testAttachment(h, params)})
	return nil
}

func testAttachment(h textproto.Header, ctParams map[string]string) bool {
	if ctParams["name"] != "" {
		return true
	}
	v := h.Get("Content-Disposition")
	if v == "" {
		return false
	}
	d, p, err := mime.ParseMediaType(v)
	return err != nil || d == "attachment" || p["filename"] != ""
}

// decoded is a leaf's body with transfer encoding and charset undone (by
// go-message), as UTF-8.
func decoded(l leaf) ([]byte, error) {
	e, err := message.New(message.Header{Header: l.header}, bytes.NewReader(l.body))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(e.Body)
}

func rawHeader(h textproto.Header) string {
	var b strings.Builder
	textproto.WriteHeader(&b, h)
	return b.String()
}

var dropRE = regexp.MustCompile(`(?i)^(bcc|resent-bcc|x-pixelrelay-track)[ \t]*:`)

// expectedUntracked is what the untracked copy must be: the input with the
// top-level Bcc, Resent-Bcc and X-Pixelrelay-Track fields removed and
// Message-ID added if missing. It is written independently of the package
// code: header lines up to the first empty line.
func expectedUntracked(in []byte, msgID string) []byte {
	var fields [][]byte
	rest := in
	nl := lineEnding(firstLine(in))
	if nl == "" {
		nl = "\r\n"
	}
	for len(rest) > 0 {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line = rest[:i+1]
		}
		if bytes.Equal(line, []byte("\n")) || bytes.Equal(line, []byte("\r\n")) {
			break
		}
		rest = rest[len(line):]
		if len(fields) > 0 && (line[0] == ' ' || line[0] == '\t') {
			fields[len(fields)-1] = append(fields[len(fields)-1], line...)
			continue
		}
		fields = append(fields, append([]byte(nil), line...))
	}
	hasID := false
	for _, f := range fields {
		hasID = hasID || idRE.Match(f)
	}
	var out bytes.Buffer
	for _, f := range fields {
		if dropRE.Match(f) || (!hasID && emptyIDRE.Match(f)) {
			continue
		}
		out.Write(f)
	}
	if !hasID {
		out.WriteString("Message-ID: " + msgID + nl)
	}
	out.Write(rest)
	return out.Bytes()
}

// emptyIDRE is a Message-ID field without a value: replaced when adding.
var emptyIDRE = regexp.MustCompile(`(?i)^message-id[ \t]*:[ \t\r\n]*$`)

var idRE = regexp.MustCompile(`(?i)^message-id[ \t]*:[ \t\r\n]*[^ \t\r\n]`)

func sortedKeys(m map[string]string) []string {
	var k []string
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return k
}

// checkSkeleton: apart from the HTML body parts' bodies and their
// Content-Type charset / Content-Transfer-Encoding lines, the tracked copy
// is the untracked copy byte for byte (preamble, epilogue, delimiters...).
//
// Each leaf's body is located in order, every leaf and not only the HTML
// ones, where a body can stand (see bodyAt): a search for the HTML body
// alone finds it too early when an earlier part holds the same bytes
// (Outlook's text and HTML alternatives can be identical) or when it is as
// short as a letter of a header line.
func checkSkeleton(t *testing.T, plain, tracked []byte, li, lo []leaf) {
	t.Helper()
	if err := skeletonDiff(plain, tracked, li, lo); err != nil {
		t.Fatal(err)
	}
}

// skeletonDiff is checkSkeleton's test: nil when the copies agree.
func skeletonDiff(plain, tracked []byte, li, lo []leaf) error {
	for i := range li {
		if li[i].html && len(li[i].body) == 0 {
			return nil // an empty body cannot be located; the leaf checks cover it
		}
	}
	p, q := 0, 0   // compared up to here
	pe, qe := 0, 0 // searched up to here
	for i := range li {
		a := bodyAt(plain, pe, li[i].body)
		b := bodyAt(tracked, qe, lo[i].body)
		if a < 0 || b < 0 {
			return fmt.Errorf("%s: body not found in copies", li[i].path)
		}
		pe, qe = a+len(li[i].body), b+len(lo[i].body)
		if !li[i].html {
			continue
		}
		if err := compareStretch(plain[p:a], tracked[q:b]); err != nil {
			return err
		}
		p, q = pe, qe
	}
	return compareStretch(plain[p:], tracked[q:])
}

// bodyAt returns the first index from on where body stands in msg as a
// part body does: at the start of a line, and followed by the end of msg
// or by a line break and a delimiter line ("--"); -1 if there is none.
func bodyAt(msg []byte, from int, body []byte) int {
	for i := from; i <= len(msg); i++ {
		j := bytes.Index(msg[i:], body)
		if j < 0 {
			return -1
		}
		i += j
		rest := msg[i+len(body):]
		startsLine := i == 0 || msg[i-1] == '\n'
		ends := len(rest) == 0 || bytes.HasPrefix(rest, []byte("\n--")) || bytes.HasPrefix(rest, []byte("\r\n--"))
		if startsLine && ends {
			return i
		}
	}
	return -1
}

var headerChangeRE = regexp.MustCompile(`(?i)^(content-transfer-encoding:|content-type:.*charset|[ \t]+charset)`)

func compareStretch(a, b []byte) error {
	if bytes.Equal(a, b) {
		return nil
	}
	la := strings.SplitAfter(string(a), "\n")
	lb := strings.SplitAfter(string(b), "\n")
	i, j := 0, 0
	for i < len(la) || j < len(lb) {
		switch {
		case i < len(la) && j < len(lb) && la[i] == lb[j]:
			i++
			j++
		case i < len(la) && j < len(lb) && headerChangeRE.MatchString(la[i]) && headerChangeRE.MatchString(lb[j]):
			i++
			j++
		case j < len(lb) && strings.HasPrefix(strings.ToLower(lb[j]), "content-transfer-encoding: quoted-printable"):
			j++ // added
		default:
			return fmt.Errorf("copies differ outside HTML parts:\n plain   %q\n tracked %q", at(la, i), at(lb, j))
		}
	}
	return nil
}

func at(l []string, i int) string {
	if i < len(l) {
		return l[i]
	}
	return "<end>"
}

// metaRE matches the charset value of a <meta> tag, which the rewriter sets
// to utf-8 when it converts a part (checked by TestMetaCharsetUTF8).
var metaRE = regexp.MustCompile(`(?is)(<meta[^>]*charset\s*=\s*["']?)[^"'\s;>/]*`)

// maskMeta hides <meta> charset values, so decoded HTML can be compared
// apart from them.
func maskMeta(b []byte) []byte {
	return metaRE.ReplaceAll(b, []byte("${1}CHARSET"))
}

// keepsASCII: CONTRACT.md's charsets that keep ASCII bytes as ASCII, in
// which the pixel goes in without converting the text (written here apart
// from the package's charsetMode). "" is no charset given.
func keepsASCII(cs string) bool {
	return keepsASCIIRE.MatchString(strings.ToLower(strings.TrimSpace(cs)))
}

var keepsASCIIRE = regexp.MustCompile(`^(|utf-?8|us-ascii|ascii|iso[-_]?8859-.*|windows-.*|cp125\d|koi8-.*|` +
	`shift[-_]jis|x-sjis|sjis|cp932|euc-.*|gb2312|gbk|gb18030|big5.*|iso-2022-.*|ks_c_5601-.*|cp949|latin\d+)$`)

// checkInPlace: in a charset that keeps ASCII as ASCII the part's text,
// its transfer encoding undone, is the input's byte for byte with the
// pixel written in at one place; in ISO-2022 text it may come with a
// switch to ASCII before it and back after it.
func checkInPlace(t *testing.T, a, b leaf) {
	t.Helper()
	ra, rb := cteDecoded(t, a), cteDecoded(t, b)
	tag := []byte(PixelTag(testPixelURL))
	i := bytes.Index(rb, tag)
	if i < 0 {
		t.Fatalf("%s: no pixel in the raw text", a.path)
	}
	before, after := rb[:i], rb[i+len(tag):]
	if bytes.Equal(ra, append(before[:len(before):len(before)], after...)) {
		return
	}
	ct := strings.ToLower(a.header.Get("Content-Type"))
	if strings.Contains(ct, "iso-2022-") {
		before = bytes.TrimSuffix(before, []byte("\x1b(B"))
		before = bytes.TrimSuffix(before, []byte("\x0f"))
		after = bytes.TrimPrefix(after, []byte("\x0e"))
		if len(after) > 0 && after[0] == 0x1b {
			j := 1
			for j < len(after) && after[j] >= 0x20 && after[j] <= 0x2f {
				j++
			}
			after = after[min(j+1, len(after)):]
		}
		after = bytes.TrimPrefix(after, []byte("\x0e"))
		if bytes.Equal(ra, append(before[:len(before):len(before)], after...)) {
			return
		}
	}
	t.Fatalf("%s: text changed beyond the pixel (charset kept)\n%s", a.path, firstDiff(ra, append(before[:len(before):len(before)], after...)))
}

// cteDecoded is a leaf's body with only its transfer encoding undone.
func cteDecoded(t *testing.T, l leaf) []byte {
	t.Helper()
	var r io.Reader = bytes.NewReader(l.body)
	switch strings.ToLower(strings.TrimSpace(l.header.Get("Content-Transfer-Encoding"))) {
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, bytes.NewReader(bytes.Map(func(c rune) rune {
			if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
				return -1
			}
			return c
		}, l.body)))
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: transfer encoding: %v", l.path, err)
	}
	return b
}
