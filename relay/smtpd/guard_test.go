package smtpd

import (
	"strings"
	"testing"
)

// refScan is dotScanner's rule applied to the whole text at once: the
// first "." alone between line ends where a line end next to it is a bare
// CR or LF (errSmuggling), or, in DATA, where the line start follows an
// even run of CRs before LF (errMissedEnd).
func refScan(p []byte, bdat bool) error {
	for i, c := range p {
		if c != '.' {
			continue
		}
		start := -1 // kind of line start
		switch {
		case i == 0:
			start = cleanStart
		case p[i-1] == '\r':
			start = bareStart
		case p[i-1] == '\n':
			run := 0
			for j := i - 2; j >= 0 && p[j] == '\r'; j-- {
				run++
			}
			switch {
			case run == 0:
				start = bareStart
			case run%2 == 0 && !bdat:
				start = missedStart
			default:
				start = cleanStart
			}
		}
		if start < 0 || i+1 >= len(p) {
			continue
		}
		switch {
		case p[i+1] == '\n':
			return errSmuggling
		case p[i+1] != '\r' || i+2 >= len(p):
			continue
		case p[i+2] != '\n' || start == bareStart:
			return errSmuggling
		case start == missedStart:
			return errMissedEnd
		}
	}
	return nil
}

// FuzzDotScanner: the scanner gives the whole-text answer whatever the
// pieces the text comes in.
func FuzzDotScanner(f *testing.F) {
	for _, s := range []string{"hello\n.\r\nMAIL", "a\r.\r\n", "x\r\r\n.\r\n", "x\r\r\r\n.\r\n", ".\n", "\r\n.\r\n", "a\r\n..\r\n", "\r\n.\rX"} {
		f.Add([]byte(s), uint8(3), false)
	}
	f.Fuzz(func(t *testing.T, p []byte, chunk uint8, bdat bool) {
		want := refScan(p, bdat)
		s := dotScanner{bdat: bdat}
		var got error
		size := int(chunk%16) + 1
		for off := 0; off < len(p) && got == nil; off += size {
			got = s.scan(p[off:min(off+size, len(p))])
		}
		if got != want {
			t.Fatalf("%q in pieces of %d (bdat %v): %v, want %v", p, size, bdat, got, want)
		}
	})
}

// BenchmarkDotScanner is the smuggling scan of a plain 50 KB message, which
// runs over every byte of DATA.
func BenchmarkDotScanner(b *testing.B) {
	line := "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!?\r\n"
	body := []byte("Subject: bench\r\n\r\n" + strings.Repeat(line, 50*1024/len(line)) + "..dot-stuffed\r\n")
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		s := dotScanner{}
		for off := 0; off < len(body); off += 4096 {
			if err := s.scan(body[off:min(off+4096, len(body))]); err != nil {
				b.Fatal(err)
			}
		}
	}
}
