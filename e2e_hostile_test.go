package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"pixelrelay/relay/smtptest"
)

// Hostile SMTP input through the real binary (issue 7, "Hostile input —
// SMTP" and "Abuse and access — Open relay"); the outcome is read from the
// outbox. Unit-level versions are in relay/smtpd/hostile_test.go.

// hostileSMTPBody strips what the relay puts in front of a message in the
// outbox: Return-Path, Delivered-To and our three-line Received header.
func hostileSMTPBody(t *testing.T, copy string) string {
	t.Helper()
	lines := strings.SplitAfter(copy, "\n")
	if len(lines) < 5 || !strings.HasPrefix(lines[0], "Return-Path: <") ||
		!strings.HasPrefix(lines[1], "Delivered-To: ") || !strings.HasPrefix(lines[2], "Received: from ") {
		t.Fatalf("copy does not start with the envelope and Received header:\n%.300q", copy)
	}
	return strings.Join(lines[5:], "")
}

// TestHostileSMTPSmugglingEndToEnd: the SMTP smuggling sequences of Dec 2023,
// each followed by a smuggled MAIL/RCPT/DATA and the real end of data.
// Nothing addressed by a smuggled command is ever delivered, every reply
// is the right one, and the connection stays in step (or, after an end
// go-smtp missed, is closed).
func TestHostileSMTPSmugglingEndToEnd(t *testing.T) {
	in := newInstance(t, "")
	in.start()
	const smuggled = "MAIL FROM:<smuggler@evil.test>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n" +
		"From: ceo@example.com\r\nSubject: smuggled\r\n\r\nsmuggled\r\n"
	tests := []struct {
		seq  string
		code int // reply to the DATA
	}{
		{"\n.\r\n", 550}, {"\n.\n", 550}, {"\r.\r\n", 550}, {"\r.\r", 550}, {"\r.\n", 550}, {"\n.\r", 550},
		{"\r\r\n.\r\n", 550}, // go-smtp misses this end: refused, connection closed
		{"\r\n.\n", 250},     // read as a stuffed line: the dot goes, the rest is text
		{"\r\n.\r\r\n", 250},
	}
	accepted := 0
	for _, tt := range tests {
		h := smtptest.Dial(t, in.smtpAddr)
		h.Cmd(250, "EHLO hostile.test")
		text := "From: me@example.com\r\nSubject: smuggling test\r\nMessage-ID: <s@e2e.test>\r\n\r\nhello" + tt.seq + smuggled + "\r\n.\r\n"
		code, msg := h.Send("me@example.com", "rcpt@example.org", text)
		if code != tt.code || (code == 550 && !strings.HasPrefix(msg, "5.5.2 ")) {
			t.Fatalf("%q: reply %d %q, want %d", tt.seq, code, msg, tt.code)
		}
		if code == 250 {
			accepted++
		}
		if strings.HasPrefix(tt.seq, "\r\r\n") {
			h.Text.PrintfLine("NOOP")
			if code, _ := h.Reply(); code == 250 {
				t.Fatalf("%q: connection still open after a missed end", tt.seq)
			}
			continue
		}
		h.Cmd(250, "NOOP") // the next reply is NOOP's: no smuggled command ran
		h.Cmd(221, "QUIT")
	}
	// A marker sent last: once it is in the outbox, everything before is.
	if _, err := sendMail(t, in.smtpAddr, "me@example.com", []string{"marker@example.org"}, "Subject: marker\r\n\r\nmarker\r\n"); err != nil {
		t.Fatal(err)
	}
	copies := in.waitOutbox(accepted+1, 15*time.Second)
	time.Sleep(300 * time.Millisecond)
	copies = in.outbox()
	if len(copies) != accepted+1 {
		t.Fatalf("%d copies in the outbox, want %d", len(copies), accepted+1)
	}
	for _, c := range copies {
		env := c[:strings.Index(c, "Received: ")]
		if strings.Contains(env, "smuggler") || strings.Contains(env, "victim") {
			t.Fatalf("a smuggled envelope was delivered:\n%s", c)
		}
		if strings.Contains(c, "\nSubject: smuggled") && !strings.Contains(c, "hello\r\n") {
			t.Fatalf("smuggled message delivered on its own:\n%s", c)
		}
	}
	t.Logf("%d smuggling sequences: %d refused with 550 5.5.2, %d taken as text, 0 smuggled commands run", len(tests), len(tests)-accepted, accepted)
}

// TestHostileSMTPBytesEndToEnd: NUL bytes, 8-bit headers without SMTPUTF8,
// bare LF and CR, long lines, 10,000 parts, nesting 60 deep, a header
// section over 1 MB: each is accepted and forwarded unmodified (untracked
// or malformed), or tracked with one pixel per HTML part.
func TestHostileSMTPBytesEndToEnd(t *testing.T) {
	in := newInstance(t, "")
	in.start()
	var parts strings.Builder
	parts.WriteString("Content-Type: multipart/mixed; boundary=\"p\"\r\n\r\n")
	for i := range 10000 {
		fmt.Fprintf(&parts, "--p\r\nContent-Type: text/plain\r\n\r\npart %d\r\n", i)
	}
	parts.WriteString("--p--\r\n")
	var nested strings.Builder
	for i := range 60 {
		fmt.Fprintf(&nested, "Content-Type: multipart/mixed; boundary=\"d%d\"\r\n\r\n--d%d\r\n", i, i)
	}
	nested.WriteString("Content-Type: text/html\r\n\r\n<body>deep</body>\r\n")
	for i := 59; i >= 0; i-- {
		fmt.Fprintf(&nested, "--d%d--\r\n", i)
	}
	html := "Content-Type: text/html; charset=utf-8\r\n\r\n<html><body>hi</body></html>\r\n"
	tests := []struct {
		name   string
		text   string // after From/To/Subject/Message-ID
		pixels int    // 0: forwarded byte for byte
	}{
		{"NUL", "X-Nul: a\x00b\r\n\r\nbody\x00\r\n", 0},
		{"8-bit header", "X-Name: J\xfcrgen caf\xc3\xa9 \xc3\r\n" + html, 1},
		{"bare LF", "X-LF: yes\n\nline\nline\n", 0},
		{"bare CR", "X-CR: yes\r\n\r\nline\rmore\r\n", 0},
		{"2,000-byte line", "\r\n" + strings.Repeat("x", 2000) + "\r\n", 0},
		{"200,000-byte line", "\r\n" + strings.Repeat("y", 200000) + "\r\n", 0},
		{"10,000 parts", parts.String(), 0},
		{"nesting 60", nested.String(), 0},
		{"header over 1 MB", strings.Repeat("X-Filler: "+strings.Repeat("f", 990)+"\r\n", 1100) + html, 0},
	}
	want := map[string]string{}
	for i, tt := range tests {
		rcpt := fmt.Sprintf("r%d@example.org", i)
		msg := "From: me@example.com\r\nTo: " + rcpt + "\r\nSubject: " + tt.name + "\r\nMessage-ID: <h" + strconv.Itoa(i) + "@e2e.test>\r\n" + tt.text
		if !strings.HasSuffix(msg, "\r\n") {
			msg += "\r\n" // a bare LF before the final dot would be a smuggling line
		}
		want[rcpt] = msg
		h := smtptest.Dial(t, in.smtpAddr)
		h.Cmd(250, "EHLO hostile.test")
		wire := strings.ReplaceAll(msg, "\r\n.", "\r\n..") + ".\r\n"
		if code, reply := h.Send("me@example.com", rcpt, wire); code != 250 {
			t.Fatalf("%s: %d %q", tt.name, code, reply)
		}
	}
	copies := in.waitOutbox(len(tests), 30*time.Second)
	for _, c := range copies {
		rcpt := strings.TrimSpace(strings.TrimPrefix(strings.SplitAfter(c, "\n")[1], "Delivered-To: "))
		msg, ok := want[rcpt]
		if !ok {
			t.Fatalf("copy for %q", rcpt)
		}
		delete(want, rcpt)
		var tc struct{ pixels int }
		for i, tt := range tests {
			if rcpt == fmt.Sprintf("r%d@example.org", i) {
				tc.pixels = tt.pixels
			}
		}
		body := hostileSMTPBody(t, c)
		if tc.pixels == 0 {
			if body != msg {
				t.Errorf("%s: not forwarded unmodified (%d bytes, want %d)", rcpt, len(body), len(msg))
			}
			continue
		}
		if n := len(pixelURLs(body)); n != tc.pixels {
			t.Errorf("%s: %d pixels, want %d", rcpt, n, tc.pixels)
		}
		head := msg[:strings.Index(msg, "Content-Type:")]
		if !strings.HasPrefix(body, head) {
			t.Errorf("%s: header changed", rcpt)
		}
	}
}

// TestHostileSMTPOversizedEndToEnd: 100 MB over the default 35 MB limit is
// refused with 552 5.3.4; the same connection then delivers a message; the
// relay's memory does not grow by anything like 100 MB.
func TestHostileSMTPOversizedEndToEnd(t *testing.T) {
	in := newInstance(t, "")
	in.start()
	pid := in.cmd.Process.Pid
	rssBefore := hostileSMTPProcKB(t, pid, "VmRSS")
	c, err := smtp.Dial(in.smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("me@example.com", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("big@example.org", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	const size = 100 << 20
	start := time.Now()
	if _, err := io.Copy(w, io.LimitReader(&hostileSMTPLines{}, size)); err != nil {
		t.Fatal(err)
	}
	err = w.Close()
	var se *smtp.SMTPError
	if !hostileSMTPError(err, &se) || se.Code != 552 || se.EnhancedCode != (smtp.EnhancedCode{5, 3, 4}) {
		t.Fatalf("100 MB: %v, want 552 5.3.4", err)
	}
	elapsed := time.Since(start)
	peak := hostileSMTPProcKB(t, pid, "VmHWM")
	if grew := peak - rssBefore; grew > 64<<10 {
		t.Errorf("peak RSS grew by %d MB while refusing 100 MB (before %d MB)", grew>>10, rssBefore>>10)
	}
	if err := c.Mail("me@example.com", nil); err != nil {
		t.Fatalf("same connection after 552: %v", err)
	}
	if err := c.Rcpt("after@example.org", nil); err != nil {
		t.Fatal(err)
	}
	w, err = c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "Subject: after the big one\r\n\r\nsmall\r\n")
	if err := w.Close(); err != nil {
		t.Fatalf("same connection after 552: %v", err)
	}
	copies := in.waitOutbox(1, 15*time.Second)
	if len(copies) != 1 || !strings.Contains(copies[0], "Delivered-To: after@example.org") {
		t.Fatalf("outbox: %d copies", len(copies))
	}
	if n, _ := os.ReadDir(in.dir + "/spool"); len(n) > 0 {
		for _, e := range n {
			if fi, err := e.Info(); err == nil && fi.Size() > 30<<20 {
				t.Errorf("spool keeps %s (%d MB)", e.Name(), fi.Size()>>20)
			}
		}
	}
	t.Logf("100 MB refused in %v; peak RSS %d MB (before %d MB)", elapsed.Round(time.Millisecond), peak>>10, rssBefore>>10)
}

func hostileSMTPError(err error, se **smtp.SMTPError) bool {
	e, ok := err.(*smtp.SMTPError)
	*se = e
	return ok
}

// hostileSMTPProcKB reads a "kB" field of /proc/PID/status.
func hostileSMTPProcKB(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// hostileSMTPLines is an endless message of 78-byte lines, without allocating.
type hostileSMTPLines struct{ off int }

var hostileSMTPLine = []byte("Subject: big\r\n\r\n" + strings.Repeat("0123456789", 7) + "abcdef\r\n")

func (s *hostileSMTPLines) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := copy(p[n:], hostileSMTPLine[s.off:])
		n += k
		s.off = (s.off + k) % len(hostileSMTPLine)
		if s.off == 0 {
			s.off = 16
		}
	}
	return n, nil
}

// TestHostileSMTPHeaderInjectionEndToEnd: CR, NUL and odd bytes in MAIL FROM /
// RCPT TO are refused; a hostile EHLO name is defused; the delivered copy
// starts with exactly Return-Path, Delivered-To and a three-line Received.
func TestHostileSMTPHeaderInjectionEndToEnd(t *testing.T) {
	in := newInstance(t, "")
	in.start()
	h := smtptest.Dial(t, in.smtpAddr)
	h.Cmd(250, "EHLO evil\rX-Injected:\x00yes")
	for _, a := range []string{"<a\rX-Injected: yes@example.com>", "<a\x00@example.com>", "<\"a\rb\"@example.com>", "<a@example.com>\rX-Injected: yes", "<a@ex\rample.com>"} {
		h.Text.PrintfLine("MAIL FROM:%s", a)
		if code, msg := h.Reply(); code/100 != 5 {
			t.Fatalf("MAIL FROM:%q: %d %q", a, code, msg)
		}
		h.Cmd(250, "MAIL FROM:<me@example.com>")
		h.Text.PrintfLine("RCPT TO:%s", a)
		if code, msg := h.Reply(); code/100 != 5 {
			t.Fatalf("RCPT TO:%q: %d %q", a, code, msg)
		}
		h.Cmd(250, "RSET")
	}
	if code, msg := h.Send("me@example.com", "rcpt@example.org", "Subject: inj\r\nMessage-ID: <i@e2e.test>\r\n\r\nbody\r\n.\r\n"); code != 250 {
		t.Fatalf("%d %q", code, msg)
	}
	copies := in.waitOutbox(1, 15*time.Second)
	lines := strings.SplitAfter(copies[0], "\r\n")
	if lines[0] != "Return-Path: <me@example.com>\r\n" || lines[1] != "Delivered-To: rcpt@example.org\r\n" ||
		!strings.HasPrefix(lines[2], "Received: from evil_X-Injected:_yes (evil_X-Injected:_yes [127.0.0.1])\r\n") ||
		!strings.HasPrefix(lines[3], "\tby ") || !strings.HasPrefix(lines[4], "\t") || lines[5] != "Subject: inj\r\n" {
		t.Fatalf("copy header:\n%q", strings.Join(lines[:6], ""))
	}
}

// TestHostileSMTPOpenRelayEndToEnd: with [[smtp.users]] the relay refuses
// unauthenticated MAIL (530 5.7.0) and a wrong password (535), and
// accepts after AUTH. (Off loopback AUTH is not offered without TLS:
// relay/smtpd TestRemoteClients, which injects a remote address; a
// non-loopback listen without users: TestServeRefusesOpenRelay.)
func TestHostileSMTPOpenRelayEndToEnd(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	in := newInstance(t, fmt.Sprintf("\n[[smtp.users]]\nusername = \"alice\"\npassword_hash = %q\n", hash))
	in.start()
	c, err := smtp.Dial(in.smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Mail("me@example.com", nil)
	var se *smtp.SMTPError
	if !hostileSMTPError(err, &se) || se.Code != 530 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 0}) {
		t.Fatalf("unauthenticated MAIL: %v, want 530 5.7.0", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice", "wrong")); !hostileSMTPError(err, &se) || se.Code != 535 {
		t.Fatalf("wrong password: %v, want 535", err)
	}
	if err := c.Mail("me@example.com", nil); !hostileSMTPError(err, &se) || se.Code != 530 {
		t.Fatalf("MAIL after a failed AUTH: %v, want 530", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice", "s3cret")); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("me@example.com", nil); err != nil {
		t.Fatalf("MAIL after AUTH: %v", err)
	}
	if len(in.outbox()) != 0 {
		t.Fatal("something was delivered")
	}
}
