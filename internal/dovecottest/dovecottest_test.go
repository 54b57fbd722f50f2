package dovecottest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap"
	"github.com/emersion/go-imap/client"
)

// TestServer: the private Dovecot signs users in on both ports, refuses a
// wrong password, lists the special-use mailboxes with their attributes,
// and keeps what is appended (flags, internal date, bytes).
func TestServer(t *testing.T) {
	s := Start(t, Options{Users: map[string]string{"ann@example.com": "secret"}, Mailboxes: GmailLike})

	if _, err := s.Login("ann@example.com", "wrong"); err == nil {
		t.Fatal("a wrong password signed in")
	}
	c, err := s.Login("ann@example.com", "secret")
	if err != nil {
		t.Fatalf("login: %v\n%s", err, s.Log())
	}
	ch := make(chan *imap.MailboxInfo, 16)
	if err := c.List("", "*", ch); err != nil {
		t.Fatal(err)
	}
	attrs := map[string][]string{}
	for mb := range ch {
		attrs[mb.Name] = mb.Attributes
	}
	c.Logout()
	for _, m := range GmailLike {
		if !strings.Contains(strings.Join(attrs[m.Name], " "), m.SpecialUse) {
			t.Errorf("LIST %q: attributes %v, want %s", m.Name, attrs[m.Name], m.SpecialUse)
		}
	}

	raw := []byte("From: ann@example.com\r\nMessage-ID: <1@x>\r\nSubject: hi\r\n\r\nbody\r\n")
	date := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	if err := s.Append("ann@example.com", "secret", "[Gmail]/Sent Mail", []string{imap.SeenFlag}, date, raw); err != nil {
		t.Fatal(err)
	}
	msgs := s.Messages(t, "ann@example.com", "secret", "[Gmail]/Sent Mail")
	if len(msgs) != 1 || !bytes.Equal(msgs[0].Raw, raw) || !msgs[0].Seen() || !msgs[0].InternalDate.Equal(date) {
		t.Fatalf("Sent Mail holds %+v", msgs)
	}

	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(s.CAFile)
	pool.AppendCertsFromPEM(pem)
	tc, err := client.DialTLS(s.TLSAddr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("imaps: %v", err)
	}
	if err := tc.Login("ann@example.com", "secret"); err != nil {
		t.Fatalf("imaps login: %v", err)
	}
	tc.Logout()
}
