package rewrite

import (
	"bytes"
	"encoding/base64"
	"io"
	"runtime"
	"strings"
	"testing"
)

func BenchmarkRewrite(b *testing.B) {
	in := fixture(b, "bench-50k.eml")
	r := bytes.NewReader(in)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(in)
		if err := Rewrite(io.Discard, r, Options{PixelURL: testPixelURL}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRewriteLinks: the tracked copy of a 50 KB newsletter with 30
// links, with and without its links rewritten, and Inspect finding them.
func BenchmarkRewriteLinks(b *testing.B) {
	in := fixture(b, "bench-links30.eml")
	if info := inspect(b, in); len(info.Links) != 30 {
		b.Fatalf("%d links in the fixture, want 30", len(info.Links))
	}
	r := bytes.NewReader(in)
	for _, bc := range []struct {
		name string
		opt  Options
	}{
		{"pixel", Options{PixelURL: testPixelURL}},
		{"clicks", clickOpt},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(in)
				if err := Rewrite(io.Discard, r, bc.opt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("inspect", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		for b.Loop() {
			r.Reset(in)
			if _, err := Inspect(r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkRewriteUntracked(b *testing.B) {
	in := fixture(b, "bench-50k.eml")
	r := bytes.NewReader(in)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(in)
		if err := Rewrite(io.Discard, r, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInspect(b *testing.B) {
	in := fixture(b, "bench-50k.eml")
	r := bytes.NewReader(in)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(in)
		if _, err := Inspect(r); err != nil {
			b.Fatal(err)
		}
	}
}

// bigMessage is a 25 MB message: an HTML body and a large base64
// attachment, made on the fly (a reader, never held whole).
func bigMessage(size int) io.Reader {
	head := "From: a@example.com\r\nTo: b@example.com\r\nSubject: big\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"big\"\r\n\r\n--big\r\n" +
		"Content-Type: text/html; charset=utf-8\r\n\r\n<html><body>big one</body></html>\r\n--big\r\n" +
		"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=a.bin\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n"
	line := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xA5, 0x5A, 0x11}, 19)) + "\r\n"
	n := (size - len(head)) / len(line)
	body := io.LimitReader(&repeater{s: line}, int64(n*len(line)))
	return io.MultiReader(strings.NewReader(head), body, strings.NewReader("--big--\r\n"))
}

type repeater struct {
	s string
	i int
}

func (r *repeater) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.s[r.i:])
		n += c
		r.i = (r.i + c) % len(r.s)
	}
	return n, nil
}

// TestStreaming: a 25 MB message through Inspect and ten tracked copies
// allocates a small fraction of its size: nothing is held whole.
func TestStreaming(t *testing.T) {
	const size = 25 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	info, err := Inspect(bigMessage(size))
	if err != nil || info.HTMLParts != 1 || info.Untouchable != "" {
		t.Fatalf("Inspect = %+v, %v", info, err)
	}
	for i := 0; i < 10; i++ {
		cw := &countWriter{}
		if err := Rewrite(cw, bigMessage(size), Options{PixelURL: testPixelURL, MessageID: testMsgID}); err != nil {
			t.Fatal(err)
		}
		if cw.n < size-100 || cw.n > size+1000 {
			t.Fatalf("copy of %d bytes", cw.n)
		}
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("11 passes over 25 MB allocated %d KB", alloc>>10)
	if alloc > 8<<20 {
		t.Fatalf("allocated %d MB for 11 passes over 25 MB", alloc>>20)
	}
}

type countWriter struct{ n int }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += len(p)
	return len(p), nil
}

// TestLargeHTML: an HTML part over MaxHTMLPart is left as it is and
// counted apart; the message stays trackable for its other parts.
func TestLargeHTML(t *testing.T) {
	big := strings.Repeat("<p>"+strings.Repeat("x", 70)+"</p>\n", MaxHTMLPart/75+10)
	msg := "From: a@example.com\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\n" +
		"Content-Type: text/html\n\n<html><body>small</body></html>\n--b\nContent-Type: text/html\n\n" +
		big + "\n--b--\n"
	info := inspect(t, []byte(msg))
	if info.HTMLParts != 1 || info.LargeHTML != 1 || info.Untouchable != "" {
		t.Fatalf("Inspect = %+v", info)
	}
	out := rewrite(t, []byte(msg), Options{PixelURL: testPixelURL})
	if !bytes.Contains(out, []byte(big)) || bytes.Count(out, []byte(PixelTag(testPixelURL))) != 1 {
		t.Fatal("large part changed or small part missed")
	}
}
