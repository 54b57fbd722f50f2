package dsn

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
)

// TestBuildHostileFields: CR, LF, NUL and 8-bit bytes in the envelope
// addresses, the diagnostic, the subject and the queue id never become
// header fields or report fields of their own in the bounce.
func TestBuildHostileFields(t *testing.T) {
	const inject = "\r\nBcc: evil@example.net\nX-Injected: yes\r\x00\xff"
	r := Report{
		Hostname:  "relay.example" + inject,
		To:        "alice@example.com" + inject,
		QueueID:   "q1" + inject,
		MessageID: "<b1@relay.example>",
		Date:      time.Unix(1e9, 0),
		Subject:   "hello" + inject,
		Header:    []byte("Subject: hello\r\n"),
		Recipients: []Recipient{{
			Address: "bob@example.org" + inject, Status: "5.1.1" + inject,
			Diagnostic: "550 no" + inject, At: time.Unix(1e9, 0),
		}},
	}
	b, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("\nBcc:")) || bytes.Contains(b, []byte("\nX-Injected:")) || bytes.IndexByte(b, 0) >= 0 {
		t.Fatalf("injected line in the bounce:\n%s", b)
	}
	e, err := message.Read(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for f := e.Header.Fields(); f.Next(); {
		keys = append(keys, f.Key())
	}
	slices.Sort(keys)
	if got := strings.Join(keys, ","); got != "Auto-Submitted,Content-Type,Date,From,Message-Id,Mime-Version,Subject,To" {
		t.Fatalf("bounce header fields: %s", got)
	}
	mr := e.MultipartReader()
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(p.Body)
		for _, line := range strings.Split(string(body), "\r\n") {
			if strings.HasPrefix(line, "Bcc:") || strings.HasPrefix(line, "X-Injected:") || strings.ContainsAny(line, "\r\n") {
				t.Fatalf("injected line %q in part:\n%s", line, body)
			}
		}
	}
}
