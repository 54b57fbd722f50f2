package smtptest

import (
	"io"
	"net"
	"net/textproto"
	"testing"
	"time"
)

// Raw is a raw SMTP client for tests of hostile input: commands go through
// textproto, and message text is written byte for byte, as no client
// library would send it (bare CR or LF, smuggled end-of-data sequences).
// Conn and Text are there for writing or reading anything else.
type Raw struct {
	t    testing.TB
	Conn net.Conn
	Text *textproto.Conn
}

// Dial connects to addr, reads the greeting (it must be 220) and closes the
// connection when the test ends. Every read and write must be done within
// a minute.
func Dial(t testing.TB, addr string) *Raw {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(time.Minute))
	r := &Raw{t: t, Conn: nc, Text: textproto.NewConn(nc)}
	if _, _, err := r.Text.ReadResponse(220); err != nil {
		t.Fatal(err)
	}
	return r
}

// Cmd sends line and fails the test unless the reply has code want. It
// returns the reply's text.
func (r *Raw) Cmd(want int, line string) string {
	r.t.Helper()
	if err := r.Text.PrintfLine("%s", line); err != nil {
		r.t.Fatal(err)
	}
	_, msg, err := r.Text.ReadResponse(want)
	if err != nil {
		r.t.Fatalf("%q: %v", line, err)
	}
	return msg
}

// Reply reads one reply: its code and text, or code 0 and the error when
// the connection ended.
func (r *Raw) Reply() (int, string) {
	code, msg, err := r.Text.ReadResponse(0)
	if err != nil {
		if _, ok := err.(*textproto.Error); !ok {
			return 0, err.Error()
		}
	}
	return code, msg
}

// Send runs MAIL, RCPT and DATA, writes text as it is (it must hold its
// own end of data) and returns the reply to it.
func (r *Raw) Send(from, to, text string) (int, string) {
	r.t.Helper()
	r.Cmd(250, "MAIL FROM:<"+from+">")
	r.Cmd(250, "RCPT TO:<"+to+">")
	r.Cmd(354, "DATA")
	if _, err := io.WriteString(r.Conn, text); err != nil {
		r.t.Fatal(err)
	}
	return r.Reply()
}
