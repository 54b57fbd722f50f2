package smtptest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

func send(c *smtp.Client, to ...string) error {
	if err := c.Mail("a@example.com", nil); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	w.Write([]byte("Subject: x\r\n\r\nbody\r\n"))
	return w.Close()
}

func code(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func TestDefaultAcceptsAndRecords(t *testing.T) {
	s := Start(t, Script{})
	c, err := smtp.Dial(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := send(c, "b@example.com", "c@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := send(c, "d@example.com"); err != nil {
		t.Fatal(err)
	}
	m := s.Messages()
	if len(m) != 2 || m[0].From != "a@example.com" || strings.Join(m[0].To, ",") != "b@example.com,c@example.com" ||
		string(m[0].Data) != "Subject: x\r\n\r\nbody\r\n" || m[1].Conn != 1 || m[0].TLS {
		t.Fatalf("messages %+v", m)
	}
	if s.Connections() != 1 || !strings.Contains(s.Transcript(), "RCPT TO:<c@example.com>") {
		t.Fatalf("connections %d, transcript %q", s.Connections(), s.Transcript())
	}
}

func TestScriptedReplies(t *testing.T) {
	tests := []struct {
		name   string
		script Script
		code   int
	}{
		{"greeting", Script{Greeting: Reply(421, 4, 3, 2, "busy")}, 421},
		{"mail", Script{MailReply: Reply(451, 4, 3, 0, "later")}, 451},
		{"rcpt", Script{RcptReplies: map[string]*smtp.SMTPError{"b@example.com": Reply(550, 5, 1, 1, "unknown")}}, 550},
		{"data", Script{DataReply: Reply(554, 5, 6, 0, "no")}, 554},
		{"on data", Script{OnData: func(m Message) *smtp.SMTPError {
			if strings.Contains(string(m.Data), "body") {
				return Reply(552, 5, 3, 4, "too big")
			}
			return nil
		}}, 552},
		{"require tls", Script{RequireTLS: true}, 530},
		{"auth required", Script{AuthUsers: map[string]string{"u": "p"}}, 530},
		{"reset mid data", Script{ResetMidData: true}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Start(t, tt.script)
			c, err := smtp.Dial(s.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = send(c, "b@example.com")
			if err == nil || code(err) != tt.code {
				t.Fatalf("err = %v, want code %d", err, tt.code)
			}
			if len(s.Messages()) != 0 {
				t.Fatal("refused message recorded")
			}
		})
	}
}

func TestTLSAndAuth(t *testing.T) {
	s := Start(t, Script{RequireTLS: true, AuthUsers: map[string]string{"u": "p"}})
	c, err := smtp.DialStartTLS(s.Addr, &tls.Config{RootCAs: s.CertPool})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if code(c.Auth(sasl.NewPlainClient("", "u", "wrong"))) != 535 {
		t.Fatal("wrong password accepted")
	}
	if err := c.Auth(sasl.NewLoginClient("u", "p")); err != nil {
		t.Fatal(err)
	}
	if err := send(c, "b@example.com"); err != nil {
		t.Fatal(err)
	}
	if m := s.Messages(); len(m) != 1 || !m[0].TLS || m[0].AuthUser != "u" {
		t.Fatalf("%+v", m)
	}

	untrusted, err := smtp.DialStartTLS(s.Addr, &tls.Config{})
	if err == nil {
		err = untrusted.Noop()
		untrusted.Close()
	}
	if err == nil {
		t.Fatal("self-signed certificate trusted without CertPool")
	}
}

func TestImplicitTLSAndDelay(t *testing.T) {
	s := Start(t, Script{ImplicitTLS: true, Delays: map[string]time.Duration{"mail": 300 * time.Millisecond}})
	c, err := smtp.DialTLS(s.Addr, &tls.Config{RootCAs: s.CertPool})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if err := send(c, "b@example.com"); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Error("mail delay not applied")
	}
	if m := s.Messages(); len(m) != 1 || !m[0].TLS {
		t.Fatalf("%+v", m)
	}
}

func TestSetScript(t *testing.T) {
	s := Start(t, Script{})
	s.SetScript(Script{MailReply: Reply(421, 4, 7, 0, "closing")})
	c, err := smtp.Dial(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if code(send(c, "b@example.com")) != 421 {
		t.Fatal("new script not applied")
	}
}

// TestStall: a stalled command gets no reply until the script changes,
// then 421, and nothing is recorded.
func TestStall(t *testing.T) {
	for _, stage := range []string{"greeting", "mail", "rcpt", "data"} {
		t.Run(stage, func(t *testing.T) {
			s := Start(t, Script{Stall: stage})
			done := make(chan error, 1)
			go func() {
				c, err := smtp.Dial(s.Addr)
				if err == nil {
					defer c.Close()
					err = send(c, "b@example.com")
				}
				done <- err
			}()
			select {
			case err := <-done:
				t.Fatalf("answered while stalled: %v", err)
			case <-time.After(200 * time.Millisecond):
			}
			s.SetScript(Script{})
			select {
			case err := <-done:
				if err == nil || (stage != "greeting" && code(err) != 421) {
					t.Fatalf("after the stall: %v, want 421 (greeting: closed)", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("still stalled after SetScript")
			}
			if len(s.Messages()) != 0 {
				t.Fatal("stalled message recorded")
			}
		})
	}
}

// TestTLSFaults: FailTLS fails the handshake, WrongCert presents a trusted
// certificate for another name; both for STARTTLS and implicit TLS.
func TestTLSFaults(t *testing.T) {
	cfg := func(s *Server) *tls.Config { return &tls.Config{RootCAs: s.CertPool, ServerName: "127.0.0.1"} }
	for _, implicit := range []bool{false, true} {
		dial := func(s *Server) error {
			var c *smtp.Client
			var err error
			if implicit {
				c, err = smtp.DialTLS(s.Addr, cfg(s))
			} else {
				c, err = smtp.DialStartTLS(s.Addr, cfg(s))
			}
			if err == nil {
				err = c.Noop()
				c.Close()
			}
			return err
		}
		s := Start(t, Script{StartTLS: true, ImplicitTLS: implicit, FailTLS: true})
		if err := dial(s); err == nil || !strings.Contains(err.Error(), "tls") {
			t.Errorf("implicit=%v FailTLS: err = %v, want a TLS error", implicit, err)
		}
		s.SetScript(Script{StartTLS: true, ImplicitTLS: implicit, WrongCert: true})
		var he x509.HostnameError
		if err := dial(s); !errors.As(err, &he) {
			t.Errorf("implicit=%v WrongCert: err = %v, want a HostnameError", implicit, err)
		}
		s.SetScript(Script{StartTLS: true, ImplicitTLS: implicit})
		if err := dial(s); err != nil {
			t.Errorf("implicit=%v after the fault: %v", implicit, err)
		}
	}
}

// TestDownUp: connections are refused while Down, accepted after Up on
// the same address.
func TestDownUp(t *testing.T) {
	s := Start(t, Script{})
	s.Down()
	if c, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
		c.Close()
		t.Fatal("connected while Down")
	}
	if err := s.Up(); err != nil {
		t.Fatal(err)
	}
	c, err := smtp.Dial(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := send(c, "b@example.com"); err != nil {
		t.Fatal(err)
	}
	if len(s.Messages()) != 1 {
		t.Fatal("message not recorded after Up")
	}
}

func TestMaxPerConn(t *testing.T) {
	srv := Start(t, Script{MaxPerConn: 1})
	c, err := smtp.Dial(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail("a@example.com", []string{"b@example.com"}, strings.NewReader("Subject: 1\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	err = c.Mail("a@example.com", nil)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 421 {
		t.Fatalf("second MAIL: %v, want 421", err)
	}
}
