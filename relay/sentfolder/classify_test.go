package sentfolder

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	pixel := `<img src="https://t.example/o/abc.gif">`
	b64 := base64.StdEncoding.EncodeToString([]byte("<p>hi</p>" + pixel))
	tests := []struct {
		name string
		raw  string
		want copyKind
	}{
		{"clean", "Subject: x\r\n\r\n<p>hi</p>\r\n", clean},
		{"trace only", trace + "Subject: x\r\n\r\nhi\r\n", relayed},
		{"pixel in plain html", "Subject: x\r\nContent-Type: text/html\r\n\r\n" + pixel + "\r\n", tracked},
		{"pixel split by a soft line break", "Subject: x\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<img src=3D\"https://t.exa=\r\nmple/o/abc.gif\">\r\n", tracked},
		{"pixel in base64", "Subject: x\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64 + "\r\n", tracked},
		{"pixel in a nested part", "Subject: x\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64 + "\r\n--b--\r\n", tracked},
		{"click link only", "Subject: x\r\n\r\n<a href=\"https://t.example/c/xyz\">x</a>\r\n", tracked},
		{"another tracker's pixel", "Subject: x\r\n\r\n<img src=\"https://other.example/o/abc.gif\">\r\n", clean},
		{"a later Received names pixelrelay: not ours at the top", "Subject: x\r\nX-Note: (pixelrelay) with\r\n\r\nhi\r\n", clean},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify([]byte(tt.raw), Marks("https://t.example/")); got != tt.want {
				t.Errorf("classify = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestSubmitted(t *testing.T) {
	msg := "From: a@x\r\nBcc: b@x\r\nDate: Fri, 04 Dec 2026 09:30:00 +0000\r\n\r\nhi\r\n"
	tests := []struct {
		name, raw, id, want string
	}{
		{"trace dropped, Message-ID added", trace + msg, "<q@relay>", "Message-ID: <q@relay>\r\n" + msg},
		{"own Message-ID kept", trace + "Message-ID: <m@c>\r\n" + msg, "<m@c>", "Message-ID: <m@c>\r\n" + msg},
		{"another first Received stays", "Received: from a by b;\r\n\tFri, 04 Dec 2026\r\nMessage-ID: <m@c>\r\n" + msg, "<m@c>",
			"Received: from a by b;\r\n\tFri, 04 Dec 2026\r\nMessage-ID: <m@c>\r\n" + msg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(Submitted([]byte(tt.raw), tt.id)); got != tt.want {
				t.Errorf("Submitted =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
	fallback := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if d := DateOf([]byte(msg), fallback); !d.Equal(time.Date(2026, 12, 4, 9, 30, 0, 0, time.UTC)) {
		t.Errorf("DateOf = %v", d)
	}
	if d := DateOf([]byte("Subject: x\r\n\r\n"), fallback); !d.Equal(fallback) {
		t.Errorf("DateOf without Date = %v", d)
	}
}

// FuzzClassify: any bytes classify and convert without a panic, and what
// Submitted returns never starts with pixelrelay's trace.
func FuzzClassify(f *testing.F) {
	f.Add([]byte(trace + "Subject: x\r\n\r\nhi\r\n"))
	f.Add(relayedCopy(1))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n--b--"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		classify(raw, Marks("https://t.example"))
		out := Submitted(raw, "<id@x>")
		if bytes.HasPrefix(raw, []byte(trace)) && strings.HasPrefix(string(out), trace) {
			t.Errorf("trace kept")
		}
		DateOf(raw, time.Time{})
	})
}
