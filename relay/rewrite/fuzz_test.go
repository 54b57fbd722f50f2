package rewrite

import (
	"bytes"
	"testing"
)

func seed(f *testing.F) {
	for _, s := range samples(f) {
		if len(s.data) <= 64<<10 {
			f.Add(s.data)
		}
	}
	f.Add([]byte("Content-Type: text/html\n\n<body></body>"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: text/html\r\n\r\nx\r\n--a--"))
}

// FuzzInspect: Inspect never panics nor fails on an in-memory message.
func FuzzInspect(f *testing.F) {
	seed(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := Inspect(bytes.NewReader(data)); err != nil {
			t.Fatalf("Inspect: %v", err)
		}
	})
}

// FuzzRewrite: Rewrite never panics nor fails; when Inspect accepts a
// message the tracked copy is accepted too, with as many HTML parts, and
// parses with go-message whenever the input did; with clicks, only the
// hrefs of the links Inspect found, the honeypots and the pixels change.
func FuzzRewrite(f *testing.F) {
	seed(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := Inspect(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		var plain, out bytes.Buffer
		if err := Rewrite(&plain, bytes.NewReader(data), Options{MessageID: testMsgID}); err != nil {
			t.Fatalf("untracked Rewrite: %v", err)
		}
		if err := Rewrite(&out, bytes.NewReader(data), Options{MessageID: testMsgID, PixelURL: testPixelURL}); err != nil {
			t.Fatalf("tracked Rewrite: %v", err)
		}
		if info.Untouchable != "" || info.HTMLParts == 0 {
			return
		}
		if want := expectedUntracked(data, testMsgID); bytes.HasSuffix(data, []byte("\n")) && !bytes.Equal(plain.Bytes(), want) {
			t.Fatalf("untracked copy differs:\n%s", firstDiff(want, plain.Bytes()))
		}
		again, err := Inspect(bytes.NewReader(out.Bytes()))
		if err != nil || again.Untouchable != "" || again.HTMLParts != info.HTMLParts {
			t.Fatalf("tracked copy: %+v (%v); input %+v\n%q", again, err, info, out.Bytes())
		}
		li, errIn := goLeaves(data)
		lo, errOut := goLeaves(out.Bytes())
		if errIn == nil && (errOut != nil || len(li) != len(lo)) {
			t.Fatalf("input parses (%d leaves), output: %v (%d leaves)", len(li), errOut, len(lo))
		}
		if errIn == nil {
			checkTracked(t, data, out.Bytes(), info)
		}
		var clicks bytes.Buffer
		if err := Rewrite(&clicks, bytes.NewReader(data), clickOpt); err != nil {
			t.Fatalf("Rewrite with clicks: %v", err)
		}
		checkClickCopy(t, data, clicks.Bytes(), info.Links)
	})
}
