package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"mime/quotedprintable"
	"net/textproto"
	"os"
	"strings"
)

// cmdGenmsg writes a newsletter-like test message: multipart/alternative
// (text/plain + text/html, both quoted-printable) of about -size bytes, and
// with -attach N wrapped in multipart/mixed with an N-byte base64 attachment.
// Each item of the HTML has a "Read more" link; with -links N only the
// first N items have one.
// Lines end in LF (smtp-source -F and pxbench load add the CR).
func cmdGenmsg(args []string) error {
	fs := newFlags("genmsg")
	size := fs.Int("size", 45000, "approximate size of the text+html body in bytes")
	attach := fs.Int("attach", 0, "size of a binary attachment in bytes (0: none)")
	links := fs.Int("links", -1, "links in the HTML (-1: one per item)")
	out := fs.String("o", "-", "output file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var buf bytes.Buffer
	writeMessage(&buf, *size, *attach, *links)
	data := bytes.ReplaceAll(buf.Bytes(), []byte("\r\n"), []byte("\n"))
	if *out == "-" {
		_, err := os.Stdout.Write(data)
		return err
	}
	return os.WriteFile(*out, data, 0o644)
}

func writeMessage(w *bytes.Buffer, size, attach, links int) {
	w.WriteString("From: Bench Sender <sender@bench.example>\r\n")
	w.WriteString("To: Bench List <list@example.com>\r\n")
	w.WriteString("Subject: pixelrelay benchmark newsletter\r\n")
	w.WriteString("Date: Mon, 02 Nov 2026 10:00:00 +0000\r\n")
	w.WriteString("MIME-Version: 1.0\r\n")
	if attach <= 0 {
		alt := multipart.NewWriter(w)
		fmt.Fprintf(w, "Content-Type: multipart/alternative; boundary=%q\r\n\r\n", alt.Boundary())
		writeAlternative(alt, size, links)
		return
	}
	mixed := multipart.NewWriter(w)
	fmt.Fprintf(w, "Content-Type: multipart/mixed; boundary=%q\r\n\r\n", mixed.Boundary())
	var inner bytes.Buffer
	alt := multipart.NewWriter(&inner)
	writeAlternative(alt, size, links)
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", fmt.Sprintf("multipart/alternative; boundary=%q", alt.Boundary()))
	p, _ := mixed.CreatePart(h)
	p.Write(inner.Bytes())
	h = textproto.MIMEHeader{}
	h.Set("Content-Type", "application/octet-stream; name=\"data.bin\"")
	h.Set("Content-Disposition", "attachment; filename=\"data.bin\"")
	h.Set("Content-Transfer-Encoding", "base64")
	p, _ = mixed.CreatePart(h)
	writeBase64(p, attach)
	mixed.Close()
}

func writeAlternative(alt *multipart.Writer, size, links int) {
	textSize, htmlSize := size*3/10, size*7/10
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Transfer-Encoding", "quoted-printable")
	p, _ := alt.CreatePart(h)
	qp := quotedprintable.NewWriter(p)
	qp.Write([]byte(textBody(textSize)))
	qp.Close()

	h = textproto.MIMEHeader{}
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Transfer-Encoding", "quoted-printable")
	p, _ = alt.CreatePart(h)
	qp = quotedprintable.NewWriter(p)
	qp.Write([]byte(htmlBody(htmlSize, links)))
	qp.Close()
	alt.Close()
}

var words = strings.Fields(`the quarterly update brings new features faster delivery
better reports for every team in the company we thank our customers for their
feedback and look forward to another great season together — café naïve déjà vu`)

func sentence(r *rand.Rand, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[r.IntN(len(words))])
	}
	return b.String()
}

func textBody(size int) string {
	r := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	b.WriteString("Hello,\r\n\r\n")
	for b.Len() < size {
		b.WriteString(sentence(r, 12))
		b.WriteString(".\r\n")
	}
	return b.String()
}

func htmlBody(size, links int) string {
	r := rand.New(rand.NewPCG(3, 4))
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\r\n<html><head><meta charset=\"utf-8\"><title>Newsletter</title>\r\n")
	b.WriteString("<style>td{font-family:Arial,sans-serif;font-size:14px;color:#333}</style></head>\r\n")
	b.WriteString("<body style=\"margin:0;padding:0\"><table width=\"100%\" cellpadding=\"0\" cellspacing=\"0\">\r\n")
	for i := 0; b.Len() < size-200; i++ {
		fmt.Fprintf(&b, "<tr><td style=\"padding:8px 16px\"><h2>Item %d</h2><p>%s.</p>", i, sentence(r, 30))
		if links < 0 || i < links {
			fmt.Fprintf(&b, "<a href=\"https://example.com/item/%d?utm_source=newsletter&amp;utm_medium=email\">Read more</a>", i)
		}
		b.WriteString("</td></tr>\r\n")
	}
	b.WriteString("</table></body></html>\r\n")
	return b.String()
}

func writeBase64(w io.Writer, n int) {
	r := rand.New(rand.NewPCG(5, 6))
	bw := bufio.NewWriter(w)
	line := make([]byte, 57) // 57 raw bytes = one 76-char base64 line
	enc := make([]byte, base64.StdEncoding.EncodedLen(len(line)))
	for n > 0 {
		k := min(n, len(line))
		for i := 0; i < k; i++ {
			line[i] = byte(r.Uint32())
		}
		base64.StdEncoding.Encode(enc, line[:k])
		bw.Write(enc[:base64.StdEncoding.EncodedLen(k)])
		bw.WriteString("\r\n")
		n -= k
	}
	bw.Flush()
}
