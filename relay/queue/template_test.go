package queue

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pixelrelay/internal/corpus"
	"pixelrelay/relay/rewrite"
)

const tokenAlphabet = "abcdefghijklmnopqrstuvwxyz234567" // lowercase base32, as tracker/token

func randomToken(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = tokenAlphabet[r.IntN(len(tokenAlphabet))]
	}
	return string(b)
}

// templateCase checks that every copy made from msg's template is byte
// for byte what rewrite.Rewrite makes for its tokens, with clicks counted
// when the message has links and clicks is true; it reports whether a
// template was made.
func templateCase(t testing.TB, msg []byte, seed uint64, clicks bool) bool {
	info, err := rewrite.Inspect(bytes.NewReader(msg))
	if err != nil || info.Untouchable != "" {
		return false
	}
	r := rand.New(rand.NewPCG(seed, 1))
	const base = "http://127.0.0.1:8025/"
	linkLen := 0
	if clicks && len(info.Links) > 0 {
		linkLen = 56
	}
	opt := rewrite.Options{MessageID: "<gen.1@relay.test>"}
	tpl := newTemplate(msg, base, opt, randomToken(r, 48), linkLen, info.HTMLParts)
	if tpl == nil {
		return false
	}
	if tpl.links != len(info.Links) && linkLen > 0 {
		t.Fatalf("template rewrote %d links, Inspect found %d", tpl.links, len(info.Links))
	}
	for range 3 {
		tok := randomToken(r, 48)
		var links []string
		if linkLen > 0 {
			for range len(info.Links) + 1 {
				links = append(links, randomToken(r, linkLen))
			}
		}
		var got bytes.Buffer
		if !tpl.write(&got, tok, links) {
			t.Fatalf("template refused tokens %q, %d link tokens", tok, len(links))
		}
		var want bytes.Buffer
		o := opt
		o.PixelURL = pixelURL(base, tok)
		o.ClickURL = clickURLs(base, links)
		if err := rewrite.Rewrite(&want, bytes.NewReader(msg), o); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("copy from the template differs from the rewrite (%d vs %d bytes)", got.Len(), want.Len())
		}
	}
	if tpl.write(&bytes.Buffer{}, randomToken(r, 48), nil) == (linkLen > 0) {
		t.Fatal("template took a copy without link tokens when it has links, or the reverse")
	}
	return true
}

func qpHTML(body string) string {
	return "From: a@example.com\r\nSubject: t\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + body
}

// TestTemplateMatchesRewrite: made-up cases where a template must or must
// not be used, then every fixture and corpus message.
func TestTemplateMatchesRewrite(t *testing.T) {
	long := strings.Repeat("x", 70)
	cases := []struct {
		name, msg string
		want      bool // a template is made
	}{
		{"qp", qpHTML("<html><body><p>Hello =3D world</p></body></html>\r\n"), true},
		{"qp token across soft breaks", qpHTML(long + "=\r\n" + long + "<body>" + long + "=\r\n</body>\r\n"), true},
		{"7bit", "Content-Type: text/html\r\n\r\n<p>hi</p></body>\r\n", true},
		{"7bit long line", "Content-Type: text/html\r\n\r\n" + strings.Repeat("abc ", 300) + "</body>\r\n", true},
		{"base64", "Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\nPGh0bWw+PGJvZHk+aGk8L2JvZHk+PC9odG1sPg==\r\n", false},
		{"no html", "Content-Type: text/plain\r\n\r\nhello\r\n", false},
		{"pixel line starts with --", "Content-Type: text/html\r\n\r\n--</body>\r\n", false},
		{"links", "Content-Type: text/html\r\n\r\n<a href=\"http://e.com/1\">1</a><a href=http://e.com/2>2</a></body>\r\n", true},
		{"links, qp", qpHTML(long + "<a href=3D\"https://e.com/?a=3D1&amp;b=3D2\">x</a>=\r\n" + long + "<a href=3D'http://e.com/'>y</a></body>\r\n"), true},
		{"link holding the pixel's place", "Content-Type: text/html\r\n\r\n<a href=\"http://e.com/1\">1</a><a href=\"http://e.com/</body>\">2</a><a href=\"http://e.com/3\">3</a>\r\n", true},
		{"link line starts with --", "Content-Type: text/html\r\n\r\n<a href=\"http://e.com/1\">1</a>\r\n--<a href=\"http://e.com/2\">\r\n</body>\r\n", false},
		{"links, base64", "Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\nPGEgaHJlZj0iaHR0cDovL2UuY29tLyI+eDwvYT48L2JvZHk+\r\n", false},
		{"two parts with links", "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<a href=\"http://e.com/1\">1</a>\r\n--b\r\nContent-Type: text/html\r\n\r\n<a href=\"http://e.com/2\">1</a></body>\r\n--b--\r\n", true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, clicks := range []bool{false, true} {
				if got := templateCase(t, []byte(tc.msg), uint64(i), clicks); got != tc.want && (clicks || !strings.HasPrefix(tc.name, "link line")) {
					t.Errorf("clicks %v: template made: %v, want %v", clicks, got, tc.want)
				}
			}
		})
	}
	files, _ := filepath.Glob("../../testdata/messages/*.eml")
	if corpus.Present() {
		files = append(files, corpus.Files(t)...)
	} else {
		t.Run("shared corpus", func(t *testing.T) { corpus.Files(t) })
	}
	if len(files) < 20 {
		t.Fatalf("only %d fixture messages found", len(files))
	}
	made, withClicks := 0, 0
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			if templateCase(t, b, uint64(i), false) {
				made++
			}
			if templateCase(t, b, uint64(i), true) && bytes.Contains(b, []byte("href")) {
				withClicks++
			}
		})
	}
	t.Logf("templates for %d of %d messages; with clicks for %d that have an href", made, len(files), withClicks)
	if made < 5 || withClicks < 3 {
		t.Errorf("templates for only %d of %d messages, %d with links", made, len(files), withClicks)
	}
}

// FuzzTemplate: for any message, a copy made from the template is exactly
// the rewrite's, with clicks (even seeds) or without.
func FuzzTemplate(f *testing.F) {
	f.Add([]byte(qpHTML("<html><body><p>Hello =3D world</p></body></html>\r\n")), uint64(1))
	f.Add([]byte("Content-Type: text/html\r\n\r\n<p>hi</p></body>\r\n"), uint64(2))
	f.Add([]byte("Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\nx</body>\r\n--b--\r\n"), uint64(3))
	f.Add([]byte(qpHTML("<a href=3D\"http://e.com/\">x</a><a href=http://f.com/>y</a></body>\r\n")), uint64(4))
	f.Fuzz(func(t *testing.T, msg []byte, seed uint64) {
		templateCase(t, msg, seed, seed%2 == 0)
	})
}

// BenchmarkTemplateCopy: the tracked copies of the bench's 50 KB
// newsletter, from a template (made once per 3 copies) and by a rewrite of
// their own; and of a 50 KB newsletter with 30 links whose clicks are
// counted.
func BenchmarkTemplateCopy(b *testing.B) {
	for _, bc := range []struct {
		name, file string
		linkLen    int
	}{
		{"", "bench-50k.eml", 0},
		{"links30/", "bench-links30.eml", 56},
	} {
		msg, err := os.ReadFile("../../testdata/messages/" + bc.file)
		if err != nil {
			b.Fatal(err)
		}
		info, err := rewrite.Inspect(bytes.NewReader(msg))
		if err != nil || info.HTMLParts == 0 {
			b.Fatalf("bench message: %+v, %v", info, err)
		}
		r := rand.New(rand.NewPCG(1, 2))
		const base = "http://127.0.0.1:8025/"
		opt := rewrite.Options{MessageID: "<gen.1@relay.test>"}
		linkTokens := func() []string {
			if bc.linkLen == 0 {
				return nil
			}
			links := make([]string, len(info.Links)+1)
			for i := range links {
				links[i] = randomToken(r, bc.linkLen)
			}
			return links
		}
		var out bytes.Buffer
		b.Run(bc.name+"template", func(b *testing.B) {
			for b.Loop() {
				tpl := newTemplate(msg, base, opt, randomToken(r, 48), bc.linkLen, info.HTMLParts)
				if tpl == nil {
					b.Fatal("no template")
				}
				for range 3 {
					out.Reset()
					if !tpl.write(&out, randomToken(r, 48), linkTokens()) {
						b.Fatal("template refused the tokens")
					}
				}
				putBuf(tpl.out)
			}
		})
		b.Run(bc.name+"rewrite", func(b *testing.B) {
			for b.Loop() {
				for range 3 {
					out.Reset()
					o := opt
					o.PixelURL = pixelURL(base, randomToken(r, 48))
					o.ClickURL = clickURLs(base, linkTokens())
					if err := rewrite.Rewrite(&out, bytes.NewReader(msg), o); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// TestPlanMakesTemplate: once a token's length is known, planning a small
// message rewrites it once with a placeholder (that is its Inspect), and
// its tracked copies come from that template, byte for byte what
// rewrite.Rewrite gives for each token.
func TestPlanMakesTemplate(t *testing.T) {
	msg, err := os.ReadFile("../../testdata/messages/bench-50k.eml")
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, testConfig())
	q := h.open(false)
	rcpts := []string{"a@ex.test", "b@ex.test", "c@ex.test"}
	first := h.spool("s@x.test", []string{"first@ex.test"}, string(msg)) // teaches the token length
	waitFor(t, "first plan", func() bool { return len(q.Entries()) == 1 && q.Entries()[0].TrackingID != "" })
	id := h.spool("s@x.test", rcpts, string(msg))
	waitFor(t, "second plan", func() bool { return len(q.Entries()) == 4 })
	q.mu.Lock()
	m := q.msgs[id]
	made := m.tmpl != nil
	q.mu.Unlock()
	if !made {
		t.Fatal("no template made while planning")
	}
	q.Start()
	waitFor(t, "delivery", func() bool { return q.Len() == 0 })
	waitFor(t, "cached bytes freed", func() bool { return q.cacheUsed.Load() == 0 })
	h.rec.mu.Lock()
	tokens := map[string]string{} // rcpt -> token
	msgID := map[string]string{}
	for tid, c := range h.rec.copies {
		tokens[c.Recipient] = strings.Replace(tid, "tid", "tok", 1) + "x"
		msgID[c.QueueID] = c.MessageID
	}
	h.rec.mu.Unlock()
	got := h.up.deliveries()
	if len(got) != 4 {
		t.Fatalf("%d deliveries, want 4", len(got))
	}
	for _, d := range got {
		var want bytes.Buffer
		qid := id
		if d.to[0] == "first@ex.test" {
			qid = first
		}
		err := rewrite.Rewrite(&want, bytes.NewReader(msg), rewrite.Options{
			PixelURL: "http://127.0.0.1:8025/o/" + tokens[d.to[0]] + ".gif", MessageID: msgID[qid]})
		if err != nil {
			t.Fatal(err)
		}
		ok := d.body == want.String()
		if !ok {
			t.Errorf("copy to %v differs from the rewrite for its token", d.to)
		}
	}
}
