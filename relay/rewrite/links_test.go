package rewrite

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html"
	"regexp"
	"strconv"
	"strings"
	"testing"

	xhtml "golang.org/x/net/html"
)

const testClickBase = "https://t.example.net/c/"

// testClickURL is the click URL of link n in the tests: made of token
// characters only, as the real ones.
func testClickURL(n int) string { return fmt.Sprintf("%sk%06dq", testClickBase, n) }

// clickNumber returns n when s is testClickURL(n).
func clickNumber(s string) (int, bool) {
	rest, ok := strings.CutPrefix(s, testClickBase+"k")
	if !ok || len(rest) != 7 || rest[6] != 'q' {
		return 0, false
	}
	n, err := strconv.Atoi(rest[:6])
	return n, err == nil
}

var clickOpt = Options{PixelURL: testPixelURL, MessageID: testMsgID, ClickURL: testClickURL}

// htmlMessage is a one-part HTML message in charset cs and transfer
// encoding cte ("" for none), body already encoded.
func htmlMessage(cs, cte, body string) []byte {
	h := "From: a@example.com\r\nSubject: t\r\nMIME-Version: 1.0\r\nContent-Type: text/html"
	if cs != "" {
		h += "; charset=" + cs
	}
	h += "\r\n"
	if cte != "" {
		h += "Content-Transfer-Encoding: " + cte + "\r\n"
	}
	return []byte(h + "\r\n" + body)
}

// bodyOf is the body of a one-part message (after the blank line), with
// its transfer encoding undone.
func bodyOf(t *testing.T, msg []byte) []byte {
	t.Helper()
	leaves, err := goLeaves(msg)
	if err != nil || len(leaves) != 1 {
		t.Fatalf("copy does not parse as one part: %v", err)
	}
	return cteDecoded(t, leaves[0])
}

// pixelRun is what Rewrite puts at the pixel's place when it counts clicks.
var pixelRun = HoneypotTag(testClickURL(0)) + PixelTag(testPixelURL)

// TestLinks: what is rewritten, how, and what is left alone.
func TestLinks(t *testing.T) {
	c := testClickURL
	long := "http://example.com/" + strings.Repeat("a", MaxURL)
	cases := []struct {
		name, in, want string
		links          []string
	}{
		{"double quotes", `<a href="https://example.com/a?b=1">x</a>`, `<a href="` + c(1) + `">x</a>`, []string{"https://example.com/a?b=1"}},
		{"single quotes", `<a href='http://example.com/'>x</a>`, `<a href='` + c(1) + `'>x</a>`, []string{"http://example.com/"}},
		{"unquoted", `<a href=http://example.com/p>x</a>`, `<a href="` + c(1) + `">x</a>`, []string{"http://example.com/p"}},
		{"unquoted, self-closing slash kept in the value", `<a href=http://example.com/p/>x</a>`, `<a href="` + c(1) + `">x</a>`, []string{"http://example.com/p/"}},
		{"upper case", `<A HREF="HTTPS://EXAMPLE.COM/X">x</A>`, `<A HREF="` + c(1) + `">x</A>`, []string{"HTTPS://EXAMPLE.COM/X"}},
		{"entities decoded", `<a href="https://e.com/?a=1&amp;b=2&#38;c=&#x33;">x</a>`, `<a href="` + c(1) + `">x</a>`, []string{"https://e.com/?a=1&b=2&c=3"}},
		{"legacy entity in an attribute stays", `<a href="https://e.com/?a=1&copy=2">x</a>`, `<a href="` + c(1) + `">x</a>`, []string{"https://e.com/?a=1&copy=2"}},
		{"white space a browser drops", "<a href=\" \thttps://e.com/a\n/b \">x</a>", `<a href="` + c(1) + `">x</a>`, []string{"https://e.com/a/b"}},
		{"other attributes kept", `<a class=btn href = "http://e.com/" style="color:red" >x</a>`, `<a class=btn href = "` + c(1) + `" style="color:red" >x</a>`, []string{"http://e.com/"}},
		{"several, numbered in order", `<a href="http://e.com/1">1</a><p><a href="http://e.com/2">2</a>`, `<a href="` + c(1) + `">1</a><p><a href="` + c(2) + `">2</a>`, []string{"http://e.com/1", "http://e.com/2"}},
		{"the same URL twice is two links", `<a href="http://e.com/">1</a><a href="http://e.com/">2</a>`, `<a href="` + c(1) + `">1</a><a href="` + c(2) + `">2</a>`, []string{"http://e.com/", "http://e.com/"}},
		{"first of duplicate hrefs", `<a href="http://e.com/1" href="http://e.com/2">x</a>`, `<a href="` + c(1) + `" href="http://e.com/2">x</a>`, []string{"http://e.com/1"}},
		{"slash before the attribute", `<a/href="http://e.com/">x</a>`, `<a/href="` + c(1) + `">x</a>`, []string{"http://e.com/"}},
		{"mailto", `<a href="mailto:a@example.com">x</a>`, "", nil},
		{"tel", `<a href="tel:+15551234">x</a>`, "", nil},
		{"anchor", `<a href="#top">x</a>`, "", nil},
		{"javascript", `<a href="javascript:alert(1)">x</a>`, "", nil},
		{"ftp", `<a href="ftp://e.com/f">x</a>`, "", nil},
		{"relative", `<a href="/path">x</a>`, "", nil},
		{"scheme-relative", `<a href="//e.com/">x</a>`, "", nil},
		{"no slashes after the scheme", `<a href="http:e.com">x</a>`, "", nil},
		{"no host", `<a href="http:///path">x</a>`, "", nil},
		{"empty href", `<a href="">x</a><a href>y</a>`, "", nil},
		{"no href", `<a name="x">x</a>`, "", nil},
		{"notrack", `<a href="http://e.com/" data-pixelrelay-notrack>x</a>`, "", nil},
		{"notrack upper case, with a value", `<a DATA-PIXELRELAY-NOTRACK="1" href="http://e.com/">x</a>`, "", nil},
		{"area", `<map><area href="http://e.com/"></map>`, "", nil},
		{"abbr is not a", `<abbr href="http://e.com/">x</abbr>`, "", nil},
		{"in a comment", `<!-- <a href="http://e.com/">x</a> -->`, "", nil},
		{"in a conditional comment", `<!--[if mso]><a href="http://e.com/">x</a><![endif]-->`, "", nil},
		{"in script", `<script>var s='<a href="http://e.com/">';</script>`, "", nil},
		{"in style", `<style>a[href="<a href='http://e.com/'>"]{}</style>`, "", nil},
		{"in title", `<title><a href="http://e.com/">x</a></title>`, "", nil},
		{"in textarea", `<textarea><a href="http://e.com/">x</a></textarea>`, "", nil},
		{"in an attribute value", `<img alt='<a href="http://e.com/">'>`, "", nil},
		{"control character", "<a href=\"http://e.com/a\x01b\">x</a>", "", nil},
		{"too long", `<a href="` + long + `">x</a>`, "", nil},
		{"unterminated tag at the end", `<p>x</p><a href="http://e.com/`, "", nil},
		{"unterminated quote at the end", `<a href="http://e.com/>x</a>`, "", nil},
		{"broken markup before", `<p <b>x<a href="http://e.com/">y</a>`, `<p <b>x<a href="` + c(1) + `">y</a>`, []string{"http://e.com/"}},
		{"stray quote in the tag", `<a "x" href="http://e.com/">y</a>`, `<a "x" href="` + c(1) + `">y</a>`, []string{"http://e.com/"}},
		{"non-ASCII URL in UTF-8", `<a href="https://e.com/ä?q=ü">x</a>`, `<a href="` + c(1) + `">x</a>`, []string{"https://e.com/ä?q=ü"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := "<html><body>" + tc.in + "</body></html>\r\n"
			want := tc.want
			if want == "" {
				want = tc.in
			}
			msg := htmlMessage("utf-8", "8bit", in)
			info := inspect(t, msg)
			if fmt.Sprint(info.Links) != fmt.Sprint(tc.links) {
				t.Errorf("Inspect links %q, want %q", info.Links, tc.links)
			}
			out := bodyOf(t, rewrite(t, msg, clickOpt))
			wantOut := "<html><body>" + want + pixelRun + "</body></html>\r\n"
			if string(out) != wantOut {
				t.Errorf("copy:\n%s\nwant:\n%s", out, wantOut)
			}
			checkClicks(t, []byte(in), out, info.Links, 0)
		})
	}
}

// TestLinksEncodings: links in every transfer encoding and in charsets
// that keep ASCII, are converted, or shift (ISO-2022).
func TestLinksEncodings(t *testing.T) {
	c := testClickURL
	sjisLink := "\x95\x5c" // 表 in Shift_JIS: its trail byte is '\'
	jis := func(s string) string { return "\x1b$B" + s + "\x1b(B" }
	cases := []struct {
		name, cs, cte, body, want string
		links                     []string
	}{
		{"quoted-printable", "utf-8", "quoted-printable",
			"<a href=3D\"https://e.com/?a=3D1&amp;b=3D2\">x</a>=\r\n</body>\r\n",
			`<a href="` + c(1) + `">x</a>` + pixelRun + "</body>\r\n", []string{"https://e.com/?a=1&b=2"}},
		{"base64", "utf-8", "base64",
			"PGEgaHJlZj0iaHR0cDovL2UuY29tLyI+eDwvYT48L2JvZHk+\r\n",
			`<a href="` + c(1) + `">x</a>` + pixelRun + "</body>", []string{"http://e.com/"}},
		{"Shift_JIS, ASCII URL", "shift_jis", "8bit",
			"<p>" + sjisLink + "</p><a href=\"http://e.com/\">" + sjisLink + "</a></body>\r\n",
			"<p>" + sjisLink + "</p><a href=\"" + c(1) + "\">" + sjisLink + "</a>" + pixelRun + "</body>\r\n", []string{"http://e.com/"}},
		{"Shift_JIS, URL with a DBCS character", "shift_jis", "8bit",
			"<a href=\"http://e.com/" + sjisLink + "\">x</a></body>\r\n",
			"<a href=\"http://e.com/" + sjisLink + "\">x</a>" + pixelRun + "</body>\r\n", nil},
		{"windows-1252, 8-bit URL", "windows-1252", "8bit",
			"<a href=\"http://e.com/\xe9\">x</a><a href=\"http://e.com/e\">y</a></body>\r\n",
			"<a href=\"http://e.com/\xe9\">x</a><a href=\"" + c(1) + "\">y</a>" + pixelRun + "</body>\r\n", []string{"http://e.com/e"}},
		{"ISO-2022-JP, link in ASCII", "iso-2022-jp", "7bit",
			jis("\x46\x7c") + "<a href=\"http://e.com/\">" + jis("\x4b\x5c") + "</a></body>\r\n",
			jis("\x46\x7c") + "<a href=\"" + c(1) + "\">" + jis("\x4b\x5c") + "</a>" + pixelRun + "</body>\r\n", []string{"http://e.com/"}},
		{"ISO-2022-JP, markup bytes in a JIS run", "iso-2022-jp", "7bit",
			jis("<a href=\"http://e.com/\">") + "</body>\r\n",
			jis("<a href=\"http://e.com/\">") + pixelRun + "</body>\r\n", nil},
		{"UTF-16 converted", "utf-16le", "base64",
			"PABhACAAaAByAGUAZgA9ACIAaAB0AHQAcAA6AC8ALwBlAC4AYwBvAG0ALwAiAD4AeAA8AC8AYQA+AA==\r\n",
			`<a href="` + c(1) + `">x</a>` + pixelRun, []string{"http://e.com/"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msg := htmlMessage(tc.cs, tc.cte, tc.body)
			info := inspect(t, msg)
			if info.Untouchable != "" || info.HTMLParts != 1 {
				t.Fatalf("Inspect: %+v", info)
			}
			if fmt.Sprint(info.Links) != fmt.Sprint(tc.links) {
				t.Errorf("Inspect links %q, want %q", info.Links, tc.links)
			}
			out := bodyOf(t, rewrite(t, msg, clickOpt))
			if string(out) != tc.want {
				t.Errorf("copy:\n%q\nwant:\n%q", out, tc.want)
			}
		})
	}
}

// TestLinksCap: links past MaxLinks in a message (over several parts) are
// left as they are; the ones before are all rewritten.
func TestLinksCap(t *testing.T) {
	var part strings.Builder
	for i := range MaxLinks*3/4 + 1 {
		fmt.Fprintf(&part, "<a href=\"https://e.com/%d\">%d</a>\r\n", i, i)
	}
	msg := []byte("From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/html\r\n\r\n" + part.String() + "</body>\r\n" +
		"--b\r\nContent-Type: text/html\r\n\r\n" + part.String() + "</body>\r\n--b--\r\n")
	info := inspect(t, msg)
	if len(info.Links) != MaxLinks {
		t.Fatalf("%d links, want the cap %d", len(info.Links), MaxLinks)
	}
	out := rewrite(t, msg, clickOpt)
	if n := bytes.Count(out, []byte(testClickBase+"k")); n != MaxLinks+2 {
		t.Fatalf("%d click URLs written, want %d links and 2 honeypots", n, MaxLinks)
	}
	if !bytes.Contains(out, []byte(testClickURL(MaxLinks))) || bytes.Contains(out, []byte(testClickURL(MaxLinks+1))) {
		t.Fatal("the cap is not where it should be")
	}
	leaves, err := goLeaves(out)
	if err != nil || len(leaves) != 2 {
		t.Fatalf("copy: %v", err)
	}
	in := []byte(part.String() + "</body>") // the last line break is the delimiter's
	checkClicks(t, in, cteDecoded(t, leaves[0]), info.Links, 0)
	checkClicks(t, in, cteDecoded(t, leaves[1]), info.Links, MaxLinks*3/4+1)
}

// TestLinksSkipped: a ClickURL answering "" leaves that link (or the
// honeypot) alone; the pixel's place inside an href leaves that link.
func TestLinksSkipped(t *testing.T) {
	msg := htmlMessage("utf-8", "", `<a href="http://e.com/1">1</a><a href="http://e.com/2">2</a></body>`+"\r\n")
	opt := clickOpt
	opt.ClickURL = func(n int) string {
		if n == 1 || n == 0 {
			return ""
		}
		return testClickURL(n)
	}
	out := string(bodyOf(t, rewrite(t, msg, opt)))
	want := `<a href="http://e.com/1">1</a><a href="` + testClickURL(2) + `">2</a>` + PixelTag(testPixelURL) + "</body>\r\n"
	if out != want {
		t.Errorf("copy:\n%s\nwant\n%s", out, want)
	}
	msg = htmlMessage("utf-8", "", `<a href="http://e.com/</body>">1</a>`+"\r\n")
	out = string(bodyOf(t, rewrite(t, msg, clickOpt)))
	want = `<a href="http://e.com/` + pixelRun + `</body>">1</a>` + "\r\n"
	if out != want {
		t.Errorf("copy:\n%s\nwant\n%s", out, want)
	}
}

// TestLinksOff: without ClickURL (or without a pixel) no link changes and
// RewriteInfo reports none.
func TestLinksOff(t *testing.T) {
	msg := htmlMessage("utf-8", "", `<a href="http://e.com/1">1</a></body>`+"\r\n")
	var out bytes.Buffer
	info, err := RewriteInfo(&out, bytes.NewReader(msg), Options{PixelURL: testPixelURL})
	if err != nil || info.Links != nil {
		t.Fatalf("RewriteInfo without ClickURL: %v, links %q", err, info.Links)
	}
	if bytes.Contains(out.Bytes(), []byte("/c/")) || !bytes.Contains(out.Bytes(), []byte(`href="http://e.com/1"`)) {
		t.Fatalf("link changed without ClickURL:\n%s", out.Bytes())
	}
	plain := rewrite(t, msg, Options{ClickURL: testClickURL, MessageID: testMsgID})
	if !bytes.Equal(plain, expectedUntracked(msg, testMsgID)) {
		t.Fatal("untracked copy changed by ClickURL")
	}
}

// TestCorpusClicks: over every sample, a tracked copy with clicks keeps
// every byte but the hrefs it rewrites, its honeypots and its pixels
// (checkClicks on each HTML part, decoded), and its links are Inspect's.
func TestCorpusClicks(t *testing.T) {
	full := reportCorpus(t)
	withLinks, total := 0, 0
	for _, s := range samples(t) {
		t.Run(s.name, func(t *testing.T) {
			info := inspect(t, s.data)
			if info.Untouchable != "" || info.HTMLParts == 0 {
				return
			}
			var buf bytes.Buffer
			got, err := RewriteInfo(&buf, bytes.NewReader(s.data), clickOpt)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got.Links) != fmt.Sprint(info.Links) {
				t.Fatalf("RewriteInfo links differ from Inspect's")
			}
			if len(info.Links) > 0 {
				withLinks++
				total += len(info.Links)
			}
			checkClickCopy(t, s.data, buf.Bytes(), info.Links)
		})
	}
	t.Logf("%d samples with tracked links, %d links", withLinks, total)
	if full && withLinks < 20 {
		t.Errorf("only %d samples have tracked links", withLinks)
	}
}

// checkClickCopy checks a tracked copy with clicks (out) of msg: only its
// HTML parts differ from the pixel-only copy's, and each, decoded, passes
// checkClicks against the input's.
func checkClickCopy(t *testing.T, msg, out []byte, links []string) {
	t.Helper()
	pixelOnly := rewrite(t, msg, Options{PixelURL: testPixelURL, MessageID: testMsgID})
	checkOnlyHTMLChanged(t, pixelOnly, out)
	li, errIn := goLeaves(msg)
	lo, errOut := goLeaves(out)
	if errIn != nil {
		return
	}
	if errOut != nil || len(li) != len(lo) {
		t.Fatalf("copy does not parse as the input: %v", errOut)
	}
	first := 0
	for i := range li {
		if !li[i].html {
			continue
		}
		da, errA := decoded(li[i])
		db, errB := decoded(lo[i])
		if errA != nil || errB != nil {
			t.Fatalf("%s: decoding: %v %v", li[i].path, errA, errB)
		}
		first = checkClicks(t, da, db, links, first)
	}
	if first > len(links) {
		t.Fatalf("link %d written, Inspect found %d", first, len(links))
	}
}

// checkOnlyHTMLChanged: a copy with clicks differs from the pixel-only
// copy in its HTML parts alone: same MIME skeleton, same other leaves.
func checkOnlyHTMLChanged(t *testing.T, pixelOnly, clicks []byte) {
	t.Helper()
	la, errA := goLeaves(pixelOnly)
	lb, errB := goLeaves(clicks)
	if errA != nil {
		return
	}
	if errB != nil || len(la) != len(lb) {
		t.Fatalf("copy with clicks does not parse as the pixel-only copy: %v", errB)
	}
	for i := range la {
		if !la[i].html && !bytes.Equal(la[i].body, lb[i].body) {
			t.Fatalf("%s: a non-HTML part changed", la[i].path)
		}
		ha, hb := la[i].header.Copy(), lb[i].header.Copy()
		ha.Del("Content-Transfer-Encoding")
		hb.Del("Content-Transfer-Encoding")
		if la[i].path != "0" && rawHeader(ha) != rawHeader(hb) {
			t.Fatalf("%s: header changed beyond the transfer encoding", la[i].path)
		}
	}
}

// checkClicks checks an HTML part's text out (a tracked copy's, with
// clicks) against the input's text in, written apart from the package's
// link finder: out holds pixelRun exactly once, and without it reads as in
// token for token (x/net/html), byte for byte except in the hrefs of <a>
// tags, each of which either stays or becomes the click URL of a link
// number higher than the last one's, whose URL is that href. Every <a>
// whose href is plainly an http(s) URL (plainHref) is rewritten while
// numbers last, unless the pixel went into it. first is the number of the
// last link in earlier parts; it returns the last number in this part.
func checkClicks(t *testing.T, in, out []byte, links []string, first int) int {
	t.Helper()
	if n := bytes.Count(out, []byte(pixelRun)); n != 1 {
		t.Fatalf("%d honeypot+pixel runs in an HTML part, want 1", n)
	}
	pi := bytes.Index(out, []byte(pixelRun))
	out = bytes.Replace(out, []byte(pixelRun), nil, 1)
	zi, zo := xhtml.NewTokenizer(bytes.NewReader(in)), xhtml.NewTokenizer(bytes.NewReader(out))
	next, off := first+1, 0
	for {
		ti, to := zi.Next(), zo.Next()
		ri, ro := string(zi.Raw()), string(zo.Raw())
		holder := off < pi && pi < off+len(ro) // the pixel went inside this token
		off += len(ro)
		if ti != to {
			t.Fatalf("token %q became %q", ri, ro)
		}
		if ti == xhtml.ErrorToken {
			if ri != ro {
				t.Fatalf("the ends differ: %q, %q", ri, ro)
			}
			return next - 1
		}
		href, plain := "", false
		if ti == xhtml.StartTagToken || ti == xhtml.SelfClosingTagToken {
			href, plain = plainHref(zi, ri)
		}
		if ri == ro {
			if plain && next <= MaxLinks && !holder {
				t.Fatalf("link not rewritten: %.200q (href %.100q)", ri, href)
			}
			continue
		}
		n, was, ok := clickDiff(ri, ro)
		switch {
		case !ok || n < next:
			t.Fatalf("tag %.200q became %.200q: not its href replaced by click URL %d", ri, ro, next)
		case n > len(links):
			t.Fatalf("click URL %d, but only %d links", n, len(links))
		case trimURL(html.UnescapeString(was)) != links[n-1] && trimURL(href) != links[n-1]:
			t.Fatalf("link %d: href %.100q stored as %.100q", n, was, links[n-1])
		case !strings.EqualFold(ri[:2], "<a"):
			t.Fatalf("not an <a> tag changed: %.200q", ri)
		}
		next = n + 1
	}
}

// plainHref reads the href of the start tag z stands on (raw: its bytes)
// by the tokenizer and says whether it is plainly a link whose clicks are
// counted: an <a> with no notrack attribute whose href, trimmed, is a
// simple http(s) URL (plainURL).
func plainHref(z *xhtml.Tokenizer, raw string) (string, bool) {
	name, more := z.TagName()
	if string(name) != "a" {
		return "", false
	}
	href, found := "", false
	for more {
		var k, v []byte
		k, v, more = z.TagAttr()
		switch string(k) {
		case "href":
			href, found = string(v), true
		case NoTrackAttr:
			return "", false
		}
	}
	return href, found && len(trimURL(href)) <= MaxURL && plainURL.MatchString(trimURL(href))
}

var plainURL = regexp.MustCompile(`(?i)^https?://[a-z0-9][a-z0-9.-]*(:[0-9]{1,5})?(/[a-z0-9/._~?=&%+,;:@!*()-]*)?(#[a-z0-9._-]*)?$`)

func isAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

func trimURL(s string) string {
	s = strings.TrimFunc(s, func(r rune) bool { return r <= ' ' })
	return strings.NewReplacer("\t", "", "\r", "", "\n", "").Replace(s)
}

// clickDiff reports whether ro is ri with one stretch replaced by a click
// URL (in quotes that ri lacks there, or not), and returns its number and
// the stretch of ri it replaced.
func clickDiff(ri, ro string) (n int, was string, ok bool) {
	i := strings.Index(ro, testClickBase)
	if i < 0 || len(ro) < i+len(testClickURL(0)) {
		return 0, "", false
	}
	j := i + len(testClickURL(0))
	if n, ok = clickNumber(ro[i:j]); !ok {
		return 0, "", false
	}
	pre, post := ro[:i], ro[j:]
	if strings.HasPrefix(ri, pre) && strings.HasSuffix(ri[len(pre):], post) {
		return n, ri[len(pre) : len(ri)-len(post)], true
	}
	pre, post = strings.TrimSuffix(pre, `"`), strings.TrimPrefix(post, `"`)
	if len(pre) == i-1 && len(post) == len(ro)-j-1 && strings.HasPrefix(ri, pre) && strings.HasSuffix(ri[len(pre):], post) {
		return n, ri[len(pre) : len(ri)-len(post)], true
	}
	return 0, "", false
}

// FuzzLinks: for any HTML text in a one-part message, the copy with
// clicks keeps every byte but rewritten hrefs, honeypot and pixel
// (checkClicks), and Inspect finds the links the copy rewrote.
func FuzzLinks(f *testing.F) {
	f.Add("<a href=\"http://e.com/\">x</a></body>", "utf-8")
	f.Add("<A HREF=http://e.com/?a&amp;b>x</A><a href='https://x.y/'>", "iso-8859-1")
	f.Add("<!-- <a href=\"http://e.com/\"> --><script><a href=http://x.y/></script>", "")
	f.Add("\x1b$B<a\x1b(B<a href=\"http://e.com/\">", "iso-2022-jp")
	f.Add("<a/href=\"http://e.com/\" href=x data-pixelrelay-notrack>", "shift_jis")
	f.Fuzz(func(t *testing.T, body, cs string) {
		if strings.ContainsAny(cs, "\r\n;\"") || len(body) > 1<<16 {
			return
		}
		msg := htmlMessage(cs, "base64", b64(body))
		info, err := Inspect(bytes.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		out := rewrite(t, msg, clickOpt)
		if info.Untouchable != "" || info.HTMLParts != 1 {
			return
		}
		for _, u := range info.Links {
			if _, ok := trackable(u, true); !ok {
				t.Fatalf("stored URL %q is not one a link would have", u)
			}
		}
		got := bodyOf(t, out)
		if keepsASCII(cs) && !strings.HasPrefix(strings.ToLower(cs), "iso-2022") {
			checkClicks(t, []byte(body), got, info.Links, 0)
		} else if n := bytes.Count(got, []byte(testClickBase)); n < 1 || n > len(info.Links)+1 {
			t.Fatalf("%d click URLs for %d links", n, len(info.Links))
		}
	})
}

// b64 is s in base64, in lines of 76 characters.
func b64(s string) string {
	enc := base64.StdEncoding.EncodeToString([]byte(s))
	var b strings.Builder
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	return b.String() + enc + "\r\n"
}

// FuzzMaybeAnchor: the quick look at a start tag's bytes never turns away
// a tag the tokenizer names "a".
func FuzzMaybeAnchor(f *testing.F) {
	for _, s := range []string{"<a href=x>", "<A\thref=x>", "<a/>", "<a>", "<abbr title=x>", "<b>", "<a\x00 href=x>",
		"<img src=x>", "<a\fhref=x>", "<\u00e0 href=x>", "<aa>", "<p><a\nhref='x'>y</a>"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, html []byte) {
		z := xhtml.NewTokenizer(bytes.NewReader(html))
		for {
			tt := z.Next()
			if tt == xhtml.ErrorToken {
				return
			}
			if tt != xhtml.StartTagToken && tt != xhtml.SelfClosingTagToken {
				continue
			}
			raw := bytes.Clone(z.Raw())
			if name, _ := z.TagName(); string(name) == "a" && !maybeAnchor(raw) {
				t.Fatalf("maybeAnchor(%q) = false, but the tokenizer reads an <a>", raw)
			}
		}
	})
}
