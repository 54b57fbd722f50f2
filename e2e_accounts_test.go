package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"pixelrelay/relay/smtptest"
	"pixelrelay/tracker/httpd"
	"pixelrelay/tracker/record"
)

// sendAuth submits msg after AUTH PLAIN as user.
func sendAuth(t *testing.T, addr, user, pass, from string, to []string, msg string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("e2e.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
		t.Fatalf("AUTH %s: %v", user, err)
	}
	if err := c.SendMail(from, to, strings.NewReader(msg)); err != nil {
		t.Fatalf("send from %s as %s: %v", from, user, err)
	}
	c.Quit()
}

// accountsFile is the config of TestAccountsEndToEnd: [upstream] and the
// accounts "work" (senders @work.example) and "club" (SMTP user bob), each
// on its own upstream with its own credentials; withWork false leaves
// "work" out (the reload that removes it).
func accountsFile(def, work, club *smtptest.Server, hash []byte, withWork bool) string {
	s := fmt.Sprintf(`
[[smtp.users]]
username = "alice"
password_hash = %q
[[smtp.users]]
username = "bob"
password_hash = %q

[upstream]
url = "smtp://%s"
tls = "none"
username = "relay@home.example"
password = "pw-default"
`, hash, hash, def.Addr)
	if withWork {
		s += fmt.Sprintf(`
[[accounts]]
name = "work"
senders = ["@work.example"]
url = "smtp://%s"
tls = "none"
username = "me@work.example"
password = "pw-work"
connections = 1
`, work.Addr)
	}
	return s + fmt.Sprintf(`
[[accounts]]
name = "club"
smtp_users = ["bob"]
url = "smtp://%s"
tls = "none"
username = "bob@club.example"
password = "pw-club"
`, club.Addr)
}

// TestAccountsEndToEnd: through the real binary, mail from each sender
// lands at its account's upstream, signed in with that account's
// credentials; messages, queue and status show the accounts; a reload that
// removes an account sends its deferred copies to [upstream].
func TestAccountsEndToEnd(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	def := smtptest.Start(t, smtptest.Script{AuthUsers: map[string]string{"relay@home.example": "pw-default"}})
	work := smtptest.Start(t, smtptest.Script{AuthUsers: map[string]string{"me@work.example": "pw-work"}})
	club := smtptest.Start(t, smtptest.Script{AuthUsers: map[string]string{"bob@club.example": "pw-club"}})
	in := newInstance(t, accountsFile(def, work, club, hash, true))
	in.start()

	send := func(user, from, rcpt, subject string) {
		sendAuth(t, in.smtpAddr, user, "s3cret", from, []string{rcpt}, htmlMessage(from, []string{rcpt}, subject))
	}
	send("alice", "me@work.example", "r1@example.org", "from work")
	send("bob", "bob@home.example", "r2@example.org", "from the club")
	send("alice", "alice@home.example", "r3@example.org", "from home")
	send("alice", "me@work.example", "me@work.example", "to myself")
	for _, tt := range []struct {
		srv        *smtptest.Server
		user, rcpt string
	}{
		{work, "me@work.example", "r1@example.org"},
		{club, "bob@club.example", "r2@example.org"},
		{def, "relay@home.example", "r3@example.org"},
		{work, "me@work.example", "me@work.example"},
	} {
		m := waitReceived(t, tt.srv, tt.rcpt)
		if m.AuthUser != tt.user {
			t.Errorf("%s: signed in as %q, want %q", tt.rcpt, m.AuthUser, tt.user)
		}
	}
	if n := len(def.Messages()) + len(work.Messages()) + len(club.Messages()); n != 4 {
		t.Errorf("%d messages upstream, want 4", n)
	}

	var msgs httpd.MessagesResponse
	in.api("/api/messages", &msgs)
	want := map[string]string{"r1@example.org": "work", "r2@example.org": "club", "r3@example.org": "default", "me@work.example": "work"}
	for _, m := range msgs.Messages {
		if m.Account != want[m.Recipient] {
			t.Errorf("MESSAGE of %s: account %q, want %q", m.Recipient, m.Account, want[m.Recipient])
		}
		if m.Recipient == "me@work.example" && (m.Tracked || m.UntrackedReason != "sender") {
			t.Errorf("the sender's own copy: tracked %v, reason %q", m.Tracked, m.UntrackedReason)
		}
	}
	out, errOut, code := in.cli("messages")
	if code != 0 || !strings.Contains(out, "ACCOUNT") || !strings.Contains(out, "club") {
		t.Errorf("messages (exit %d) shows no accounts:\n%s%s", code, out, errOut)
	}
	var st httpd.StatusResponse
	in.api("/api/status", &st)
	var names []string
	for _, a := range st.Accounts {
		names = append(names, a.Name)
	}
	if strings.Join(names, ",") != "default,work,club" {
		t.Errorf("status accounts %v, want default, work, club", names)
	}
	out, _, _ = in.cli("status")
	if !strings.Contains(out, "account work") || !strings.Contains(out, "@work.example") {
		t.Errorf("status does not list the accounts:\n%s", out)
	}

	// work goes down: its copy waits under work.
	work.SetScript(smtptest.Script{AuthUsers: map[string]string{"me@work.example": "pw-work"},
		RcptReplies: map[string]*smtp.SMTPError{"r4@example.org": smtptest.Reply(451, 4, 3, 0, "work is down")}})
	send("alice", "me@work.example", "r4@example.org", "while work is down")
	waitQueue(t, in, func(out string) bool {
		return strings.Contains(out, "ACCOUNT") && strings.Contains(out, "work") && strings.Contains(out, "work is down")
	})
	var q httpd.QueueResponse
	in.api("/api/queue", &q)
	if len(q.Queue) != 1 || q.Queue[0].Account != "work" || q.Queue[0].Status != record.StatusDeferred {
		t.Fatalf("queue %+v, want r4's copy deferred under work", q.Queue)
	}

	// The reload removes work: the copy goes to [upstream] at once.
	tmp := in.cfgPath + ".tmp"
	os.WriteFile(tmp, []byte(accountsFile(def, work, club, hash, false)), 0o600)
	os.Rename(tmp, in.cfgPath)
	m := waitReceived(t, def, "r4@example.org")
	if m.AuthUser != "relay@home.example" {
		t.Errorf("r4 signed in as %q at [upstream]", m.AuthUser)
	}
	if !logged(in.logs, "account removed from the config") {
		t.Errorf("no log line about the removed account:\n%s", in.logs.String())
	}
	in.api("/api/messages?to=r4@example.org", &msgs)
	if len(msgs.Messages) != 1 || msgs.Messages[0].Account != "default" {
		t.Errorf("r4's MESSAGE after the move: %+v, want account default", msgs.Messages)
	}
}

// waitReceived waits until srv received a message for rcpt and returns it.
func waitReceived(t *testing.T, srv *smtptest.Server, rcpt string) smtptest.Message {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, m := range srv.Messages() {
			for _, to := range m.To {
				if to == rcpt {
					return m
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached its upstream", rcpt)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
