package dsn

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

func TestBuildParsesBack(t *testing.T) {
	arrival := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	orig := "From: Alice <alice@example.com>\nTo: bob@example.org\nSubject: Hello\nMessage-ID: <m1@example.com>\n\n"
	r := Report{
		Hostname:    "relay.example",
		To:          "alice@example.com",
		QueueID:     "q123",
		MessageID:   "<bounce1@relay.example>",
		Date:        arrival.Add(time.Hour),
		ArrivalDate: arrival,
		Subject:     "Hello",
		Header:      []byte(orig),
		Recipients: []Recipient{
			{Address: "bob@example.org", Status: "5.1.1", Diagnostic: "550 5.1.1 no such user", At: arrival},
			{Address: "carol@example.net", Status: "4.4.7", Diagnostic: "expired: 421 try later\r\nX-Evil: yes", At: arrival},
			{Address: "dave@example.net", Diagnostic: "550 rejected"},
		},
	}
	b, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	e, err := message.Read(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, _ := e.Header.ContentType()
	if mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("content type %q %v", mt, params)
	}
	if got := e.Header.Get("From"); !strings.Contains(got, "MAILER-DAEMON@relay.example") {
		t.Errorf("From = %q", got)
	}
	if got := e.Header.Get("To"); got != "<alice@example.com>" {
		t.Errorf("To = %q", got)
	}
	mr := e.MultipartReader()
	var types []string
	var bodies [][]byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := p.Header.ContentType()
		types = append(types, ct)
		body, _ := io.ReadAll(p.Body)
		bodies = append(bodies, body)
	}
	want := []string{"text/plain", "message/delivery-status", "text/rfc822-headers"}
	if strings.Join(types, ",") != strings.Join(want, ",") {
		t.Fatalf("parts %v, want %v", types, want)
	}
	if !bytes.Contains(bodies[0], []byte("<bob@example.org>: 550 5.1.1 no such user")) {
		t.Errorf("human part lacks the reason:\n%s", bodies[0])
	}

	// message/delivery-status: a per-message block, then one per recipient.
	br := bufio.NewReader(bytes.NewReader(bodies[1]))
	perMsg, err := textproto.ReadHeader(br)
	if err != nil {
		t.Fatal(err)
	}
	if got := perMsg.Get("Reporting-MTA"); got != "dns; relay.example" {
		t.Errorf("Reporting-MTA = %q", got)
	}
	if got := perMsg.Get("Arrival-Date"); got != arrival.Format(time.RFC1123Z) {
		t.Errorf("Arrival-Date = %q", got)
	}
	wantRcpt := []struct{ rcpt, status, diag string }{
		{"rfc822; bob@example.org", "5.1.1", "smtp; 550 5.1.1 no such user"},
		{"rfc822; carol@example.net", "4.4.7", "smtp; expired: 421 try later  X-Evil: yes"},
		{"rfc822; dave@example.net", "5.0.0", "smtp; 550 rejected"},
	}
	for i, w := range wantRcpt {
		h, err := textproto.ReadHeader(br)
		if err != nil {
			t.Fatalf("recipient block %d: %v", i, err)
		}
		if h.Get("Final-Recipient") != w.rcpt || h.Get("Action") != "failed" ||
			h.Get("Status") != w.status || h.Get("Diagnostic-Code") != w.diag {
			t.Errorf("block %d = %v, want %+v", i, h.Map(), w)
		}
		if h.Has("X-Evil") {
			t.Errorf("header injection through the diagnostic")
		}
	}
	if rest, _ := io.ReadAll(br); len(bytes.TrimSpace(rest)) > 0 {
		t.Errorf("more recipient blocks than recipients: %q", rest)
	}
	oh, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(append(bodies[2], "\r\n"...))))
	if err != nil {
		t.Fatal(err)
	}
	if oh.Get("Message-ID") != "<m1@example.com>" || oh.Get("Subject") != "Hello" {
		t.Errorf("original headers = %v", oh.Map())
	}
}

func TestBuildNoRecipients(t *testing.T) {
	if _, err := Build(Report{To: "a@b"}); err == nil {
		t.Fatal("no error for a report without recipients")
	}
}

func TestAddrType(t *testing.T) {
	tests := []struct{ in, want string }{
		{"bob@example.org", "rfc822; bob@example.org"},
		{"jörg@example.de", `utf-8; j\x{F6}rg@example.de`},
		{"a\r\nb@x", "rfc822; a  b@x"},
	}
	for _, tt := range tests {
		if got := addrType(tt.in); got != tt.want {
			t.Errorf("addrType(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzBuild(f *testing.F) {
	f.Add("bob@example.org", "550 no", "Subject: x\r\n\r\n")
	f.Fuzz(func(t *testing.T, rcpt, diag, hdr string) {
		b, err := Build(Report{To: "a@b", Header: []byte(hdr), Recipients: []Recipient{{Address: rcpt, Diagnostic: diag}}})
		if err != nil {
			t.Fatal(err)
		}
		e, err := message.Read(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		mr := e.MultipartReader()
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			io.Copy(io.Discard, p.Body)
			n++
		}
		if n < 2 {
			t.Fatalf("only %d parts", n)
		}
	})
}
