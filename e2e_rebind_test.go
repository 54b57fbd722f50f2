package main

// Hot reload of smtp.listen and http.listen: serve binds the new address,
// serves it, and closes the old listener only, so sessions already open run
// to their end; an address that cannot be bound leaves the old one in use.

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// TestRebindMovesListeners: a reload to new free ports moves both listeners.
// Mail sent to the new SMTP address is delivered, the old addresses refuse
// connections, a session opened before the reload still gets its 250 and
// its message delivered, status --json names the new addresses, and closing
// the old listeners is not logged as an error.
func TestRebindMovesListeners(t *testing.T) {
	in := newInstance(t, "")
	in.start()
	oldSMTP, oldHTTP := in.smtpAddr, in.httpAddr

	// A session opened before the reload, left mid-transaction.
	c, err := smtp.Dial(oldSMTP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("e2e.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("me@example.com", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("before@example.com", nil); err != nil {
		t.Fatal(err)
	}

	newSMTP, newHTTP := freePort(t), freePort(t)
	rebindRewrite(t, in, map[string]string{oldSMTP: newSMTP, oldHTTP: newHTTP})
	rebindWaitLog(t, in, fmt.Sprintf("smtp.listen: now listening on %s (was %s)", newSMTP, oldSMTP))
	rebindWaitLog(t, in, fmt.Sprintf("http.listen: now listening on %s (was %s)", newHTTP, oldHTTP))

	for _, old := range []string{oldSMTP, oldHTTP} {
		if dialable(old) {
			t.Errorf("the old address %s still accepts connections after the re-bind", old)
		}
	}
	if _, err := sendMail(t, newSMTP, "me@example.com", []string{"after@example.com"}, htmlMessage("me@example.com", []string{"after@example.com"}, "after")); err != nil {
		t.Fatalf("sending to the new smtp.listen: %v", err)
	}

	w, err := c.Data()
	if err != nil {
		t.Fatalf("the session opened before the re-bind failed after it: %v", err)
	}
	w.Write([]byte(htmlMessage("me@example.com", []string{"before@example.com"}, "before")))
	if _, err := w.CloseWithResponse(); err != nil { // any non-2xx reply is an error
		t.Fatalf("the session opened before the re-bind got %v; want 250", err)
	}
	c.Quit()
	rebindDelivered(t, in, "before@example.com", "after@example.com")

	st := rebindStatus(t, in)
	if st.SMTPListen != newSMTP || st.HTTPListen != newHTTP {
		t.Errorf("status --json says smtp %q http %q, want %q %q", st.SMTPListen, st.HTTPListen, newSMTP, newHTTP)
	}
	logs := in.logs.String()
	for _, bad := range []string{`"level":"ERROR"`, "closed network connection", "takes effect after a restart"} {
		if strings.Contains(logs, bad) {
			t.Errorf("logs contain %q after a clean re-bind:\n%s", bad, logs)
		}
	}
}

// TestRebindAddressInUse: a reload to an address someone else holds logs an
// error naming the key and keeps serving on the old address (status says
// so); once the address is free, SIGHUP tries again and the move happens.
func TestRebindAddressInUse(t *testing.T) {
	in := newInstance(t, "")
	in.start()
	oldSMTP := in.smtpAddr
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := taken.Addr().String()

	rebindRewrite(t, in, map[string]string{oldSMTP: busy})
	rebindWaitLog(t, in, fmt.Sprintf("smtp.listen: cannot listen on %s; still listening on %s", busy, oldSMTP))
	if !strings.Contains(in.logs.String(), `"key":"smtp.listen"`) {
		t.Errorf("the bind error does not name the key:\n%s", in.logs.String())
	}
	if _, err := sendMail(t, oldSMTP, "me@example.com", []string{"old@example.com"}, htmlMessage("me@example.com", []string{"old@example.com"}, "old")); err != nil {
		t.Fatalf("the old smtp.listen stopped working after a failed re-bind: %v", err)
	}
	rebindDelivered(t, in, "old@example.com")
	if st := rebindStatus(t, in); st.SMTPListen != oldSMTP {
		t.Errorf("status --json says smtp_listen %q, but the server listens on %s", st.SMTPListen, oldSMTP)
	}

	taken.Close()
	in.cmd.Process.Signal(syscall.SIGHUP)
	rebindWaitLog(t, in, fmt.Sprintf("smtp.listen: now listening on %s (was %s)", busy, oldSMTP))
	if _, err := sendMail(t, busy, "me@example.com", []string{"retry@example.com"}, htmlMessage("me@example.com", []string{"retry@example.com"}, "retry")); err != nil {
		t.Fatalf("sending to smtp.listen after the retry: %v", err)
	}
	rebindDelivered(t, in, "old@example.com", "retry@example.com")
}

// TestRebindRefusesOpenRelay: a reload that moves smtp.listen to a
// non-loopback address without [[smtp.users]] is rejected by validation, so
// nothing is bound there and the old address keeps working.
func TestRebindRefusesOpenRelay(t *testing.T) {
	in := newInstance(t, "")
	in.start()
	oldSMTP := in.smtpAddr
	_, port, _ := net.SplitHostPort(freePort(t))
	rebindRewrite(t, in, map[string]string{oldSMTP: "0.0.0.0:" + port})
	rebindWaitLog(t, in, "config file is invalid; keeping the last good config")
	// Each problem follows on a line of its own.
	if !logged(in.logs, `"key":"smtp.listen"`) || !logged(in.logs, "open relay") {
		t.Errorf("the rejected reload does not name smtp.listen and the open relay:\n%s", in.logs.String())
	}
	logs := in.logs.String()
	if strings.Contains(logs, "now listening on") || dialable("127.0.0.1:"+port) {
		t.Fatalf("serve bound a non-loopback smtp.listen without smtp.users:\n%s", logs)
	}
	if _, err := sendMail(t, oldSMTP, "me@example.com", []string{"still@example.com"}, htmlMessage("me@example.com", []string{"still@example.com"}, "still")); err != nil {
		t.Fatalf("the old smtp.listen stopped working: %v", err)
	}
	if st := rebindStatus(t, in); st.SMTPListen != oldSMTP {
		t.Errorf("status --json says smtp_listen %q, want %s", st.SMTPListen, oldSMTP)
	}
}

// rebindRewrite replaces listen addresses in the instance's config file
// (write to a temp file and rename, as editors do).
func rebindRewrite(t *testing.T, in *instance, moves map[string]string) {
	t.Helper()
	b, err := os.ReadFile(in.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	for from, to := range moves {
		line := fmt.Sprintf("listen = %q", from)
		if !strings.Contains(cfg, line) {
			t.Fatalf("config has no line %s", line)
		}
		cfg = strings.Replace(cfg, line, fmt.Sprintf("listen = %q", to), 1)
	}
	tmp := in.cfgPath + ".tmp"
	if err := os.WriteFile(tmp, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, in.cfgPath); err != nil {
		t.Fatal(err)
	}
}

func rebindWaitLog(t *testing.T, in *instance, line string) {
	t.Helper()
	waitFor(t, func() bool { return strings.Contains(in.logs.String(), line) })
}

// rebindDelivered waits until the outbox holds exactly one copy for each
// recipient.
func rebindDelivered(t *testing.T, in *instance, rcpts ...string) {
	t.Helper()
	copies := in.waitOutbox(len(rcpts), 10*time.Second)
	if len(copies) != len(rcpts) {
		t.Fatalf("outbox has %d copies, want %d", len(copies), len(rcpts))
	}
	for _, r := range rcpts {
		n := 0
		for _, c := range copies {
			if strings.Contains(c, "To: "+r) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d copies for %s, want 1", n, r)
		}
	}
}

type rebindStatusJSON struct {
	SMTPListen string `json:"smtp_listen"`
	HTTPListen string `json:"http_listen"`
}

// rebindStatus runs `pixelrelay status --json` (it finds the server through
// the config file's http.listen).
func rebindStatus(t *testing.T, in *instance) rebindStatusJSON {
	t.Helper()
	out, errOut, code := in.cli("status", "--json")
	if code != 0 {
		t.Fatalf("status --json: exit %d: %s", code, errOut)
	}
	var st rebindStatusJSON
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v: %s", err, out)
	}
	return st
}
