package deliver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"pixelrelay/config"
	"pixelrelay/internal/testport"
	"pixelrelay/relay"
	"pixelrelay/relay/smtptest"
)

const testMsg = "From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nHello.\r\n.leading dot\r\n"

// cfgFor returns a config pointing at srv with url scheme and tls mode.
func cfgFor(srv *smtptest.Server, scheme, tlsMode string) *config.Config {
	c := &config.Config{DataDir: "/nonexistent"}
	c.SMTP.Hostname = "relay.test"
	c.Upstream = config.Upstream{URL: srv.URL(scheme), TLS: tlsMode, CAFile: srv.CAFile, Connections: 2}
	return c
}

// holder is a hot-reloadable config.
type holder struct{ p atomic.Pointer[config.Config] }

func newHolder(c *config.Config) *holder { h := &holder{}; h.p.Store(c); return h }
func (h *holder) get() *config.Config    { return h.p.Load() }
func (h *holder) set(c *config.Config)   { h.p.Store(c) }

func newTestSMTP(t *testing.T, h *holder) *SMTP {
	t.Helper()
	s := NewSMTP(h.get, nil)
	s.CommandTimeout = 2 * time.Second
	s.DataTimeout = 2 * time.Second
	s.DialTimeout = 2 * time.Second
	t.Cleanup(func() { s.Close() })
	return s
}

func deliver(s relay.Upstream, to ...string) error {
	return s.Deliver(context.Background(), "a@example.com", to, strings.NewReader(testMsg))
}

func wantClass(t *testing.T, err error, class relay.Class, code int) {
	t.Helper()
	var de *relay.DeliveryError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v (%T), want *relay.DeliveryError", err, err)
	}
	if de.Class != class || de.Code != code {
		t.Fatalf("err = %v: class %v code %d, want class %v code %d", err, de.Class, de.Code, class, code)
	}
}

func TestDeliverSuccess(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Script{})
	s := newTestSMTP(t, newHolder(cfgFor(srv, "smtp", "none")))
	if err := deliver(s, "b@example.com", "c@example.com"); err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("got %d messages", len(msgs))
	}
	m := msgs[0]
	if m.From != "a@example.com" || strings.Join(m.To, ",") != "b@example.com,c@example.com" {
		t.Errorf("envelope %q %q", m.From, m.To)
	}
	if string(m.Data) != testMsg {
		t.Errorf("data changed:\n%q\nwant\n%q", m.Data, testMsg)
	}
	if !strings.Contains(srv.Transcript(), "EHLO relay.test") {
		t.Errorf("EHLO name not smtp.hostname; transcript:\n%s", srv.Transcript())
	}
}

func TestDeliverFailures(t *testing.T) {
	tests := []struct {
		name   string
		script smtptest.Script
		to     []string
		class  relay.Class
		code   int
		stage  string
	}{
		{"greeting 421", smtptest.Script{Greeting: smtptest.Reply(421, 4, 3, 2, "busy")}, nil, relay.Temporary, 421, "connect"},
		{"greeting 554", smtptest.Script{Greeting: smtptest.Reply(554, 5, 3, 2, "no service for you")}, nil, relay.Setup, 554, "connect"},
		{"mail 451", smtptest.Script{MailReply: smtptest.Reply(451, 4, 3, 0, "later")}, nil, relay.Temporary, 451, "mail"},
		{"mail 553", smtptest.Script{MailReply: smtptest.Reply(553, 5, 1, 8, "bad sender")}, nil, relay.Permanent, 553, "mail"},
		{"rcpt 550 only rcpt", smtptest.Script{RcptReplies: map[string]*smtp.SMTPError{
			"b@example.com": smtptest.Reply(550, 5, 1, 1, "no such user")}}, nil, relay.Permanent, 550, "rcpt"},
		{"rcpt 451 only rcpt", smtptest.Script{RcptReplies: map[string]*smtp.SMTPError{
			"b@example.com": smtptest.Reply(451, 4, 7, 1, "greylisted")}}, nil, relay.Temporary, 451, "rcpt"},
		{"data 554", smtptest.Script{DataReply: smtptest.Reply(554, 5, 6, 0, "content rejected")}, nil, relay.Permanent, 554, "data"},
		{"data 452", smtptest.Script{DataReply: smtptest.Reply(452, 4, 3, 1, "disk full")}, nil, relay.Temporary, 452, "data"},
		{"gmail daily limit", smtptest.Script{MailReply: smtptest.Reply(550, 5, 4, 5, "Daily user sending limit exceeded")}, nil, relay.Setup, 550, "mail"},
		{"gmail daily limit at data", smtptest.Script{DataReply: smtptest.Reply(550, 5, 4, 5, "Daily user sending limit exceeded")}, nil, relay.Setup, 550, "data"},
		{"auth required", smtptest.Script{MailReply: smtptest.Reply(530, 5, 7, 0, "Authentication required")}, nil, relay.Setup, 530, "mail"},
		{"reset mid data", smtptest.Script{ResetMidData: true}, nil, relay.Temporary, 0, "data"},
		{"slow data reply", smtptest.Script{Delays: map[string]time.Duration{"data": 3 * time.Second}}, nil, relay.Temporary, 0, "data"},
		{"slow greeting", smtptest.Script{Delays: map[string]time.Duration{"greeting": 3 * time.Second}}, nil, relay.Temporary, 0, "connect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := smtptest.Start(t, tt.script)
			s := newTestSMTP(t, newHolder(cfgFor(srv, "smtp", "none")))
			to := tt.to
			if to == nil {
				to = []string{"b@example.com"}
			}
			start := time.Now()
			err := deliver(s, to...)
			wantClass(t, err, tt.class, tt.code)
			var de *relay.DeliveryError
			errors.As(err, &de)
			if de.Stage != tt.stage {
				t.Errorf("stage %q, want %q (err %v)", de.Stage, tt.stage, err)
			}
			if d := time.Since(start); d > 2900*time.Millisecond {
				t.Errorf("took %v: timeouts not applied", d)
			}
			if n := len(srv.Messages()); n != 0 {
				t.Errorf("server accepted %d messages", n)
			}
		})
	}
}

func TestDeliverUTF8(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Script{})
	s := newTestSMTP(t, newHolder(cfgFor(srv, "smtp", "none")))
	if err := deliver(s, "björn@exämple.com"); err != nil {
		t.Fatal(err)
	}
	if m := srv.Messages(); len(m) != 1 || m[0].To[0] != "björn@exämple.com" {
		t.Fatalf("%+v", m)
	}
	old := smtptest.Start(t, smtptest.Script{NoSMTPUTF8: true})
	s2 := newTestSMTP(t, newHolder(cfgFor(old, "smtp", "none")))
	wantClass(t, deliver(s2, "björn@exämple.com"), relay.Permanent, 0)
	if err := deliver(s2, "bjorn@example.com"); err != nil {
		t.Fatal(err)
	}
}

func TestErrorText(t *testing.T) {
	tests := []struct {
		script smtptest.Script
		user   string
		want   []string
	}{
		{smtptest.Script{RcptReplies: map[string]*smtp.SMTPError{"b@example.com": smtptest.Reply(550, 5, 1, 1, "No such user")}},
			"", []string{"rcpt: upstream replied 550 5.1.1 No such user"}},
		{smtptest.Script{AuthUsers: map[string]string{"u": "p"}}, "u",
			[]string{"auth: upstream replied 535 5.7.8", "upstream.username"}},
		{smtptest.Script{MailReply: smtptest.Reply(550, 5, 4, 5, "Daily user sending limit exceeded")}, "",
			[]string{"mail: upstream replied 550 5.4.5 Daily user sending limit exceeded", "sending limit"}},
		{smtptest.Script{ResetMidData: true}, "", []string{"data: the upstream closed the connection: EOF"}},
		{smtptest.Script{DropAfterData: true}, "", []string{"data: the upstream closed the connection: EOF",
			"(no reply after the whole message was sent: the upstream may have taken it)"}},
		{smtptest.Script{DataReply: smtptest.Reply(451, 4, 3, 0, "try later")}, "", []string{"data: upstream replied 451 4.3.0 try later"}},
	}
	for _, tt := range tests {
		srv := smtptest.Start(t, tt.script)
		c := cfgFor(srv, "smtp", "none")
		c.Upstream.Username, c.Upstream.Password = tt.user, "wrong"
		err := deliver(newTestSMTP(t, newHolder(c)), "b@example.com")
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("error %q lacks %q", err, w)
			}
		}
		var se *smtp.SMTPError
		if errors.As(err, &se) && strings.Contains(err.Error(), "may have taken it") {
			t.Errorf("error %q says the upstream may have the message it refused", err)
		}
		if !errors.As(err, &se) && !tt.script.ResetMidData && !tt.script.DropAfterData {
			t.Errorf("%v does not unwrap to *smtp.SMTPError", err)
		}
	}
}

func TestDeliverConnectRefused(t *testing.T) {
	addr := testport.Addr(t) // nothing listens there while the test runs
	c := &config.Config{}
	c.Upstream = config.Upstream{URL: "smtp://" + addr, TLS: "none", Connections: 1}
	s := newTestSMTP(t, newHolder(c))
	err := deliver(s, "b@example.com")
	wantClass(t, err, relay.Temporary, 0)
	if !strings.Contains(err.Error(), "connect") {
		t.Errorf("error does not name the stage: %v", err)
	}
}

func TestDeliverPartialRecipients(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Script{RcptReplies: map[string]*smtp.SMTPError{
		"gone@example.com": smtptest.Reply(550, 5, 1, 1, "no such user"),
		"full@example.com": smtptest.Reply(452, 4, 2, 2, "mailbox full"),
	}})
	s := newTestSMTP(t, newHolder(cfgFor(srv, "smtp", "none")))
	err := deliver(s, "ok@example.com", "gone@example.com", "full@example.com")
	var re relay.RecipientErrors
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want RecipientErrors", err)
	}
	if len(re) != 2 {
		t.Fatalf("refused %v", re)
	}
	wantClass(t, re["gone@example.com"], relay.Permanent, 550)
	wantClass(t, re["full@example.com"], relay.Temporary, 452)
	msgs := srv.Messages()
	if len(msgs) != 1 || strings.Join(msgs[0].To, ",") != "ok@example.com" {
		t.Fatalf("delivered %+v", msgs)
	}
	// All refused: the first refusal, nothing delivered.
	err = deliver(s, "gone@example.com", "full@example.com")
	wantClass(t, err, relay.Permanent, 550)
	if len(srv.Messages()) != 1 {
		t.Fatal("delivered a message with no accepted recipient")
	}
	// The connection survived both (RSET after the refused transaction).
	if err := deliver(s, "ok@example.com"); err != nil {
		t.Fatal(err)
	}
	if n := srv.Connections(); n != 1 {
		t.Errorf("connections = %d, want 1", n)
	}
	if !strings.Contains(srv.Transcript(), "RSET") {
		t.Error("no RSET after the refused transaction")
	}
}

func TestDeliverTLS(t *testing.T) {
	tests := []struct {
		name    string
		script  smtptest.Script
		scheme  string
		trust   bool
		class   relay.Class
		wantErr bool
	}{
		{"starttls trusted", smtptest.Script{RequireTLS: true}, "smtp", true, 0, false},
		{"starttls untrusted", smtptest.Script{RequireTLS: true}, "smtp", false, relay.Setup, true},
		{"starttls not offered", smtptest.Script{}, "smtp", true, relay.Setup, true},
		{"smtps trusted", smtptest.Script{ImplicitTLS: true}, "smtps", true, 0, false},
		{"smtps untrusted", smtptest.Script{ImplicitTLS: true}, "smtps", false, relay.Setup, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := smtptest.Start(t, tt.script)
			c := cfgFor(srv, tt.scheme, "required")
			if !tt.trust {
				c.Upstream.CAFile = ""
			}
			s := newTestSMTP(t, newHolder(c))
			err := deliver(s, "b@example.com")
			if !tt.wantErr {
				if err != nil {
					t.Fatal(err)
				}
				msgs := srv.Messages()
				if len(msgs) != 1 || !msgs[0].TLS {
					t.Fatalf("messages %+v, want one over TLS", msgs)
				}
				return
			}
			wantClass(t, err, tt.class, 0)
			if len(srv.Messages()) != 0 {
				t.Fatal("message delivered")
			}
		})
	}
}

func TestDeliverHostnameMismatch(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Script{StartTLS: true})
	c := cfgFor(srv, "smtp", "required")
	// The certificate names 127.0.0.1 and localhost, not this name.
	_, port, _ := net.SplitHostPort(srv.Addr)
	c.Upstream.URL = "smtp://127.0.0.1.nip.invalid:" + port
	st, err := newSettings(c.Upstream, config.DefaultAccount, c.SMTP.Hostname, "", c.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	st.addr = srv.Addr // connect to the server, verify against the other name
	st.key = "x"
	s := newTestSMTP(t, newHolder(c))
	_, err = s.dial(context.Background(), st)
	wantClass(t, err, relay.Setup, 0)
}

func TestDeliverAuth(t *testing.T) {
	users := map[string]string{"alice": "s3cret"}
	tests := []struct {
		name   string
		script smtptest.Script
		user   string
		pass   string
		class  relay.Class
		code   int
		ok     bool
	}{
		{"plain ok", smtptest.Script{AuthUsers: users}, "alice", "s3cret", 0, 0, true},
		{"bad password", smtptest.Script{AuthUsers: users}, "alice", "wrong", relay.Setup, 535, false},
		{"app password required", smtptest.Script{AuthUsers: users, AuthFail: smtptest.Reply(534, 5, 7, 9, "Application-specific password required")}, "alice", "s3cret", relay.Setup, 534, false},
		{"temporary auth failure", smtptest.Script{AuthUsers: users, AuthFail: smtptest.Reply(454, 4, 7, 0, "Too many login attempts")}, "alice", "s3cret", relay.Temporary, 454, false},
		{"no auth offered", smtptest.Script{}, "alice", "s3cret", relay.Setup, 0, false},
		{"no credentials configured", smtptest.Script{AuthUsers: users}, "", "", relay.Setup, 530, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := smtptest.Start(t, tt.script)
			c := cfgFor(srv, "smtp", "none")
			c.Upstream.Username, c.Upstream.Password = tt.user, tt.pass
			s := newTestSMTP(t, newHolder(c))
			err := deliver(s, "b@example.com")
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				if m := srv.Messages(); len(m) != 1 || m[0].AuthUser != "alice" {
					t.Fatalf("messages %+v", m)
				}
				return
			}
			wantClass(t, err, tt.class, tt.code)
		})
	}
}

func TestDeliverPasswordFile(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Script{AuthUsers: map[string]string{"alice": "from-file"}})
	c := cfgFor(srv, "smtp", "none")
	c.Upstream.Username = "alice"
	c.Upstream.PasswordFile = filepath.Join(t.TempDir(), "pw")
	os.WriteFile(c.Upstream.PasswordFile, []byte("from-file\n"), 0o600)
	if err := deliver(newTestSMTP(t, newHolder(c)), "b@example.com"); err != nil {
		t.Fatal(err)
	}
}

func TestConnectionReuse(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Script{RequireTLS: true})
	s := newTestSMTP(t, newHolder(cfgFor(srv, "smtp", "required")))
	for i := range 5 {
		if err := deliver(s, fmt.Sprintf("r%d@example.com", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.Connections(); n != 1 {
		t.Fatalf("server saw %d connections for 5 sequential copies, want 1", n)
	}
	if n := len(srv.Messages()); n != 5 {
		t.Fatalf("%d messages", n)
	}
}

func TestStalePooledConnection(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Script{})
	s := newTestSMTP(t, newHolder(cfgFor(srv, "smtp", "none")))
	if err := deliver(s, "b@example.com"); err != nil {
		t.Fatal(err)
	}
	// The server drops the idle connection behind our back.
	s.mu.Lock()
	s.idle[0].raw.Close()
	s.mu.Unlock()
	if err := deliver(s, "b@example.com"); err != nil {
		t.Fatalf("delivery over a stale pooled connection not retried: %v", err)
	}
	if n := len(srv.Messages()); n != 2 {
		t.Fatalf("%d messages", n)
	}
}

func TestReloadClosesPool(t *testing.T) {
	a := smtptest.Start(t, smtptest.Script{})
	b := smtptest.Start(t, smtptest.Script{})
	h := newHolder(cfgFor(a, "smtp", "none"))
	s := newTestSMTP(t, h)
	if err := deliver(s, "x@example.com"); err != nil {
		t.Fatal(err)
	}
	h.set(cfgFor(b, "smtp", "none"))
	if err := deliver(s, "y@example.com"); err != nil {
		t.Fatal(err)
	}
	if len(a.Messages()) != 1 || len(b.Messages()) != 1 {
		t.Fatalf("a got %d, b got %d", len(a.Messages()), len(b.Messages()))
	}
	s.mu.Lock()
	n := len(s.idle)
	s.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d idle connections, want only the new upstream's", n)
	}
}

func TestConnectionLimit(t *testing.T) {
	var cur, peak atomic.Int32
	srv := smtptest.Start(t, smtptest.Script{OnData: func(smtptest.Message) *smtp.SMTPError {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
		cur.Add(-1)
		return nil
	}})
	c := cfgFor(srv, "smtp", "none")
	c.Upstream.Connections = 2
	s := newTestSMTP(t, newHolder(c))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if err := deliver(s, fmt.Sprintf("r%d@example.com", i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p != 2 {
		t.Errorf("peak parallel deliveries %d, want 2", p)
	}
	if n := srv.Connections(); n > 2 {
		t.Errorf("%d connections, want at most 2", n)
	}
}

func TestIdleConnectionsClosed(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Script{})
	s := newTestSMTP(t, newHolder(cfgFor(srv, "smtp", "none")))
	s.IdleTimeout = 100 * time.Millisecond
	if err := deliver(s, "b@example.com"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for !strings.Contains(srv.Transcript(), "QUIT") {
		if time.Now().After(deadline) {
			t.Fatal("idle connection not closed with QUIT")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestContextCancel(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Script{Delays: map[string]time.Duration{"data": 5 * time.Second}})
	s := newTestSMTP(t, newHolder(cfgFor(srv, "smtp", "none")))
	s.DataTimeout = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Deliver(ctx, "a@example.com", []string{"b@example.com"}, strings.NewReader(testMsg))
	wantClass(t, err, relay.Temporary, 0)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("cancel took %v", d)
	}
}

// failingReader fails after some bytes.
type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("disk error")
	}
	n := min(len(p), r.n)
	copy(p, bytes.Repeat([]byte("x"), n))
	r.n -= n
	return n, nil
}

func TestReadErrorNeverDeliversTruncated(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Script{})
	s := newTestSMTP(t, newHolder(cfgFor(srv, "smtp", "none")))
	err := s.Deliver(context.Background(), "a@example.com", []string{"b@example.com"}, &failingReader{n: 100})
	wantClass(t, err, relay.Temporary, 0)
	time.Sleep(50 * time.Millisecond)
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("a truncated message was delivered")
	}
}

func TestNewSwitchesUpstream(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Script{})
	dir := t.TempDir()
	c := &config.Config{DataDir: dir}
	c.Upstream = config.Upstream{URL: "outbox", Connections: 1}
	h := newHolder(c)
	up := New(h.get, nil)
	defer up.Close()
	if err := deliver(up, "b@example.com"); err != nil {
		t.Fatal(err)
	}
	if files, _ := os.ReadDir(filepath.Join(dir, "outbox", "new")); len(files) != 1 {
		t.Fatalf("outbox has %d files", len(files))
	}
	c2 := cfgFor(srv, "smtp", "none")
	c2.DataDir = dir
	h.set(c2)
	if err := deliver(up, "b@example.com"); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Fatalf("smtp upstream got %d", n)
	}
	c3 := *c2
	c3.Upstream.URL = "http://example.com"
	h.set(&c3)
	wantClass(t, deliver(up, "b@example.com"), relay.Setup, 0)
	// Back to the outbox: the SMTP pool is closed with QUIT.
	h.set(c)
	if err := deliver(up, "b@example.com"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(srv.Transcript(), "QUIT") {
		t.Error("pooled SMTP connection not closed after switching to the outbox")
	}
	if files, _ := os.ReadDir(filepath.Join(dir, "outbox", "new")); len(files) != 2 {
		t.Fatalf("outbox has %d files, want 2", len(files))
	}
}

func TestDeliverDrainsMessageOnError(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Script{MailReply: smtptest.Reply(550, 5, 7, 1, "no")})
	s := newTestSMTP(t, newHolder(cfgFor(srv, "smtp", "none")))
	r := strings.NewReader(testMsg)
	s.Deliver(context.Background(), "a@example.com", []string{"b@example.com"}, r)
	if r.Len() != 0 {
		t.Fatalf("%d bytes of msg left unread", r.Len())
	}
}

func BenchmarkDeliverSMTP(b *testing.B) {
	srv := smtptest.Start(b, smtptest.Script{DiscardData: true})
	c := &config.Config{}
	c.Upstream = config.Upstream{URL: srv.URL("smtp"), TLS: "none", Connections: 1}
	s := NewSMTP(newHolder(c).get, nil)
	defer s.Close()
	body := []byte(strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!?\r\n", 50*1024/66))
	msg := append([]byte("Subject: bench\r\n\r\n"), body...)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Deliver(context.Background(), "a@example.com", []string{"b@example.com"}, bytes.NewReader(msg)); err != nil {
			b.Fatal(err)
		}
	}
	if srv.Connections() != 1 {
		b.Fatalf("%d connections", srv.Connections())
	}
}

var _ io.Reader = (*failingReader)(nil)

func TestPooledConnectionChecks(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Script{})
	s := newTestSMTP(t, newHolder(cfgFor(srv, "smtp", "none")))
	age := func(d time.Duration) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.idle) != 1 {
			t.Fatalf("%d idle connections", len(s.idle))
		}
		s.idle[0].lastUsed = time.Now().Add(-d)
	}
	if err := deliver(s, "b@example.com"); err != nil {
		t.Fatal(err)
	}
	age(checkAfter + time.Second) // a while unused: NOOP, then reuse
	if err := deliver(s, "b@example.com"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(srv.Transcript(), "NOOP") || srv.Connections() != 1 {
		t.Fatalf("no NOOP check before reuse, or not reused (%d connections)", srv.Connections())
	}
	age(s.IdleTimeout + time.Second) // too old: replaced
	if err := deliver(s, "b@example.com"); err != nil {
		t.Fatal(err)
	}
	if srv.Connections() != 2 {
		t.Fatalf("%d connections, want a new one for an expired pooled connection", srv.Connections())
	}
}

// BenchmarkDeliverSMTPParallel: copies from several queue workers sharing
// a pool of upstream.connections = 4.
func BenchmarkDeliverSMTPParallel(b *testing.B) {
	srv := smtptest.Start(b, smtptest.Script{DiscardData: true})
	c := &config.Config{}
	c.Upstream = config.Upstream{URL: srv.URL("smtp"), TLS: "none", Connections: 4}
	s := NewSMTP(newHolder(c).get, nil)
	defer s.Close()
	msg := []byte("Subject: bench\r\n\r\n" + strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyz\r\n", 100))
	b.SetParallelism(2)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Deliver(context.Background(), "a@example.com", []string{"b@example.com"}, bytes.NewReader(msg)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if n := srv.Connections(); n > 4 {
		b.Fatalf("%d connections, limit 4", n)
	}
}

// countConn counts the writes that reach the network.
type countConn struct {
	net.Conn
	writes atomic.Int32
}

func (c *countConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// TestTimeoutConnCoalesces: small writes are held until the next read (or a
// full buffer) and then go out in one write, in order; a write error shows
// at the read.
func TestTimeoutConnCoalesces(t *testing.T) {
	tests := []struct {
		name       string
		chunks     int // writes of 4096 bytes before the read
		wantWrites int32
	}{
		{"one chunk", 1, 1},
		{"50 KB copy", 13, 1},
		{"over the buffer", 20, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := net.Pipe()
			defer a.Close()
			defer b.Close()
			cc := &countConn{Conn: a}
			nc := &timeoutConn{Conn: cc, timeout: time.Second}
			got := make(chan []byte, 1)
			n := tc.chunks * 4096
			go func() {
				buf := make([]byte, n)
				io.ReadFull(b, buf)
				b.Write([]byte("250 ok\r\n"))
				got <- buf
			}()
			var want []byte
			for i := range tc.chunks {
				chunk := bytes.Repeat([]byte{byte('a' + i%26)}, 4096)
				want = append(want, chunk...)
				if _, err := nc.Write(chunk); err != nil {
					t.Fatal(err)
				}
			}
			reply := make([]byte, 8)
			if _, err := io.ReadFull(nc, reply); err != nil || string(reply) != "250 ok\r\n" {
				t.Fatalf("read %q, %v", reply, err)
			}
			if data := <-got; !bytes.Equal(data, want) {
				t.Error("the server got other bytes than were written")
			}
			if w := cc.writes.Load(); w != tc.wantWrites {
				t.Errorf("%d writes reached the network, want %d", w, tc.wantWrites)
			}
		})
	}
	a, b := net.Pipe()
	b.Close()
	nc := &timeoutConn{Conn: a}
	if _, err := nc.Write([]byte("MAIL FROM:<a@b>\r\n")); err != nil {
		t.Fatalf("buffered write failed early: %v", err)
	}
	if _, err := nc.Read(make([]byte, 10)); err == nil {
		t.Error("read after a failed send succeeded")
	}
	if _, err := nc.Write([]byte("x")); err == nil {
		t.Error("write after a failed send succeeded")
	}
}
