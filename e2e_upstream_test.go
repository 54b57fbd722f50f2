package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"pixelrelay/relay/smtptest"
)

func upstreamConfig(srv *smtptest.Server, user, pass string) string {
	return fmt.Sprintf(`
[upstream]
url = "smtp://%s"
tls = "none"
username = %q
password = %q
`, srv.Addr, user, pass)
}

// waitMessages waits until the fake upstream holds n messages.
func waitMessages(t *testing.T, srv *smtptest.Server, n int, within time.Duration) []smtptest.Message {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		msgs := srv.Messages()
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("upstream received %d messages, want %d", len(msgs), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestUpstreamDownThenUp: while the upstream answers 421 the copies wait
// (deferred, with the reason); once it is back they are delivered.
func TestUpstreamDownThenUp(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Script{Greeting: smtptest.Reply(421, 4, 3, 2, "down for maintenance")})
	in := newInstance(t, upstreamConfig(srv, "", ""))
	in.start()
	to := []string{"alice@example.org", "bob@example.org"}
	if _, err := sendMail(t, in.smtpAddr, "me@example.com", to, htmlMessage("me@example.com", to, "while down")); err != nil {
		t.Fatal(err)
	}
	waitQueue(t, in, func(out string) bool {
		return strings.Contains(out, "deferred") && strings.Contains(out, "maintenance")
	})
	srv.SetScript(smtptest.Script{})
	msgs := waitMessages(t, srv, 2, 15*time.Second)
	for _, m := range msgs {
		if len(m.To) != 1 || m.From != "me@example.com" {
			t.Errorf("copy envelope: from %q to %v", m.From, m.To)
		}
	}
	if err := in.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// waitQueue polls `pixelrelay queue` until ok(stdout).
func waitQueue(t *testing.T, in *instance, ok func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, errOut, code := in.cli("queue")
		if code == 0 && ok(out) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue never matched; last: exit %d\n%s%s", code, out, errOut)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestRecipientRefusedBounces: a 550 for one recipient produces one DSN to
// the sender (from <>), naming that recipient; the other copy is delivered.
func TestRecipientRefusedBounces(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Script{RcptReplies: map[string]*smtp.SMTPError{
		"bob@example.org": smtptest.Reply(550, 5, 1, 1, "no such user here"),
	}})
	in := newInstance(t, upstreamConfig(srv, "", ""))
	in.start()
	to := []string{"alice@example.org", "bob@example.org"}
	if _, err := sendMail(t, in.smtpAddr, "me@example.com", to, htmlMessage("me@example.com", to, "bounce me")); err != nil {
		t.Fatal(err)
	}
	msgs := waitMessages(t, srv, 2, 15*time.Second)
	time.Sleep(500 * time.Millisecond) // a second DSN would show up now
	msgs = srv.Messages()
	var dsns, copies int
	for _, m := range msgs {
		switch {
		case m.From == "" && len(m.To) == 1 && m.To[0] == "me@example.com":
			dsns++
			body := string(m.Data)
			for _, want := range []string{"multipart/report", "delivery-status", "bob@example.org", "550", "no such user here"} {
				if !strings.Contains(body, want) {
					t.Errorf("DSN lacks %q:\n%s", want, body)
				}
			}
		case len(m.To) == 1 && m.To[0] == "alice@example.org":
			copies++
		default:
			t.Errorf("unexpected message from %q to %v", m.From, m.To)
		}
	}
	if dsns != 1 || copies != 1 {
		t.Fatalf("got %d DSNs and %d copies for alice, want 1 and 1", dsns, copies)
	}
}

// TestAuthFailureWaitsForConfigFix: the upstream refuses our credentials
// (535). The copy is not bounced; it waits with the reason until the config
// file is fixed, which the running server picks up by itself.
func TestAuthFailureWaitsForConfigFix(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Script{AuthUsers: map[string]string{"relay": "right"}})
	in := newInstance(t, upstreamConfig(srv, "relay", "wrong"))
	in.start()
	to := []string{"alice@example.org"}
	if _, err := sendMail(t, in.smtpAddr, "me@example.com", to, htmlMessage("me@example.com", to, "credentials")); err != nil {
		t.Fatal(err)
	}
	waitQueue(t, in, func(out string) bool { return strings.Contains(out, "deferred") && strings.Contains(out, "535") })
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("%d messages delivered with wrong credentials (a bounce?)", n)
	}
	cfg, _ := os.ReadFile(in.cfgPath)
	fixed := strings.Replace(string(cfg), `password = "wrong"`, `password = "right"`, 1)
	tmp := in.cfgPath + ".tmp"
	os.WriteFile(tmp, []byte(fixed), 0o600)
	os.Rename(tmp, in.cfgPath) // an editor's write-temp-and-rename
	msgs := waitMessages(t, srv, 1, 15*time.Second)
	if msgs[0].AuthUser != "relay" || msgs[0].To[0] != "alice@example.org" {
		t.Fatalf("delivered %+v", msgs[0])
	}
}
