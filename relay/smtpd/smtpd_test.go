package smtpd

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"pixelrelay/config"
)

// spooled is one message the fake spooler accepted.
type spooled struct {
	from string
	to   []string
	body string
}

// fakeSpool is an in-memory relay.Spooler.
type fakeSpool struct {
	mu      sync.Mutex
	msgs    []spooled
	fail    error         // returned after reading the body
	discard bool          // read and forget the body
	first   chan struct{} // closed when the first bytes of a body arrive
}

func (f *fakeSpool) Spool(from string, to []string, body io.Reader) (string, error) {
	if f.discard {
		_, err := io.Copy(io.Discard, body)
		return "Q", err
	}
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := body.Read(buf)
		sb.Write(buf[:n])
		if n > 0 && f.first != nil {
			f.mu.Lock()
			select {
			case <-f.first:
			default:
				close(f.first)
			}
			f.mu.Unlock()
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
	}
	if f.fail != nil {
		return "", f.fail
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, spooled{from, append([]string(nil), to...), sb.String()})
	return fmt.Sprintf("Q%04d", len(f.msgs)), nil
}

func (f *fakeSpool) messages() []spooled {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]spooled(nil), f.msgs...)
}

type holder struct{ p atomic.Pointer[config.Config] }

func (h *holder) get() *config.Config  { return h.p.Load() }
func (h *holder) set(c *config.Config) { h.p.Store(c) }

func baseConfig() *config.Config {
	c := &config.Config{}
	c.SMTP = config.SMTP{Listen: "127.0.0.1:0", Hostname: "relay.test", MaxMessageSize: 1 << 20, MaxRecipients: 10}
	return c
}

type env struct {
	srv  *Server
	addr string
	cfg  *holder
	sp   *fakeSpool
	done chan error
}

// start runs a Server for cfg on 127.0.0.1; tweak runs before Serve.
func start(t testing.TB, cfg *config.Config, tweak func(*Server)) *env {
	t.Helper()
	h := &holder{}
	h.set(cfg)
	sp := &fakeSpool{}
	s := New(h.get, sp, slog.New(slog.DiscardHandler))
	if tweak != nil {
		tweak(s)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{srv: s, addr: l.Addr().String(), cfg: h, sp: sp, done: make(chan error, 1)}
	go func() { e.done <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return e
}

func (e *env) dial(t testing.TB) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(e.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

const msg = "From: a@example.com\r\nTo: b@example.com\r\nSubject: test\r\n\r\nHello,\r\n.dot line\r\nbye\r\n"

// send runs MAIL, RCPT, DATA and returns the DATA reply text.
func send(c *smtp.Client, from string, to []string, body string) (string, error) {
	if err := c.Mail(from, nil); err != nil {
		return "", err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return "", err
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := io.WriteString(w, body); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	return resp.StatusText, nil
}

// wantCode fails unless err is an SMTP reply with code and enhanced code.
func wantCode(t *testing.T, err error, code int, enh smtp.EnhancedCode) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v (%T), want SMTP reply %d", err, err, code)
	}
	if se.Code != code || se.EnhancedCode != enh {
		t.Fatalf("reply %d %v %q, want %d %v", se.Code, se.EnhancedCode, se.Message, code, enh)
	}
}

func TestSubmit(t *testing.T) {
	e := start(t, baseConfig(), nil)
	c := e.dial(t)
	reply, err := send(c, "a@example.com", []string{"b@example.com", "c@example.org"}, msg)
	if err != nil {
		t.Fatal(err)
	}
	if reply != "2.0.0 OK: queued as Q0001" {
		t.Errorf("reply %q does not name the queue id", reply)
	}
	msgs := e.sp.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d spooled", len(msgs))
	}
	m := msgs[0]
	if m.from != "a@example.com" || strings.Join(m.to, ",") != "b@example.com,c@example.org" {
		t.Errorf("envelope %q %q", m.from, m.to)
	}
	received := regexp.MustCompile(`^Received: from localhost \(localhost \[127\.0\.0\.1\]\)\r\n\tby relay\.test \(pixelrelay\) with ESMTP;\r\n\t[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}\r\n`)
	loc := received.FindStringIndex(m.body)
	if loc == nil {
		t.Fatalf("no Received header first:\n%q", m.body)
	}
	if got := m.body[loc[1]:]; got != msg {
		t.Errorf("body changed:\n%q\nwant\n%q", got, msg)
	}
	// A repeated recipient gets one copy.
	if _, err := send(c, "a@example.com", []string{"b@example.com", "b@EXAMPLE.com", "B@example.com"}, msg); err != nil {
		t.Fatal(err)
	}
	if m := e.sp.messages(); len(m) != 2 || strings.Join(m[1].to, ",") != "b@example.com,B@example.com" {
		t.Fatalf("duplicate recipients: %q", m[1].to)
	}
	// A null sender.
	if _, err := send(c, "", []string{"b@example.com"}, msg); err != nil {
		t.Fatalf("null sender: %v", err)
	}
	if m := e.sp.messages(); len(m) != 3 || m[2].from != "" {
		t.Fatalf("second message %+v", m)
	}
	// A message whose first line is a continuation would fold into our
	// Received header: it is spooled as it came.
	folded := " junk before the header\r\n" + msg
	if _, err := send(c, "a@example.com", []string{"b@example.com"}, folded); err != nil {
		t.Fatal(err)
	}
	if m := e.sp.messages(); len(m) != 4 || m[3].body != folded {
		t.Fatalf("message starting with white space spooled as %q", m[3].body)
	}
}

func TestEHLO(t *testing.T) {
	dir := t.TempDir()
	cert, key, _ := makeCert(t, dir)
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	tests := []struct {
		name    string
		cfg     func(*config.Config)
		want    []string
		notWant []string
	}{
		{"default", func(*config.Config) {}, []string{"PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "SIZE 1048577"}, []string{"STARTTLS", "AUTH"}},
		{"tls and users", func(c *config.Config) {
			c.SMTP.TLSCert, c.SMTP.TLSKey = cert, key
			c.SMTP.Users = []config.User{{Username: "alice", PasswordHash: string(hash)}}
		}, []string{"STARTTLS", "AUTH PLAIN LOGIN", "SIZE 1048577"}, nil},
		{"bad cert", func(c *config.Config) { c.SMTP.TLSCert, c.SMTP.TLSKey = key, cert }, []string{"PIPELINING"}, []string{"STARTTLS"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig()
			tt.cfg(cfg)
			e := start(t, cfg, nil)
			c := e.dial(t)
			if err := c.Hello("client.test"); err != nil {
				t.Fatal(err)
			}
			for _, ext := range tt.want {
				name, param, _ := strings.Cut(ext, " ")
				ok, got := c.Extension(name)
				if !ok || got != param {
					t.Errorf("extension %s: %v %q, want %q", name, ok, got, param)
				}
			}
			for _, ext := range tt.notWant {
				if ok, _ := c.Extension(ext); ok {
					t.Errorf("extension %s advertised", ext)
				}
			}
		})
	}
}

func TestGreetingNamesHostname(t *testing.T) {
	e := start(t, baseConfig(), nil)
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	line, _ := bufio.NewReader(conn).ReadString('\n')
	if !strings.HasPrefix(line, "220 relay.test ESMTP") {
		t.Fatalf("greeting %q", line)
	}
}

func TestLimits(t *testing.T) {
	cfg := baseConfig()
	cfg.SMTP.MaxMessageSize = 1000
	cfg.SMTP.MaxRecipients = 2
	e := start(t, cfg, nil)

	t.Run("too big", func(t *testing.T) {
		c := e.dial(t)
		_, err := send(c, "a@example.com", []string{"b@example.com"}, "Subject: x\r\n\r\n"+strings.Repeat("y", 2000)+"\r\n")
		wantCode(t, err, 552, smtp.EnhancedCode{5, 3, 4})
		// The connection still works.
		if _, err := send(c, "a@example.com", []string{"b@example.com"}, msg); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("exactly the limit", func(t *testing.T) {
		c := e.dial(t)
		head := "Subject: x\r\n\r\n"
		exact := head + strings.Repeat("y", 1000-len(head)-2) + "\r\n"
		if _, err := send(c, "a@example.com", []string{"b@example.com"}, exact); err != nil {
			t.Fatalf("a message of exactly max_message_size: %v", err)
		}
		_, err := send(c, "a@example.com", []string{"b@example.com"}, "z"+exact)
		wantCode(t, err, 552, smtp.EnhancedCode{5, 3, 4})
	})
	t.Run("declared size", func(t *testing.T) {
		c := e.dial(t)
		err := c.Mail("a@example.com", &smtp.MailOptions{Size: 5000})
		wantCode(t, err, 552, smtp.EnhancedCode{5, 3, 4})
	})
	t.Run("too many recipients", func(t *testing.T) {
		c := e.dial(t)
		if err := c.Mail("a@example.com", nil); err != nil {
			t.Fatal(err)
		}
		for _, r := range []string{"b@example.com", "c@example.com"} {
			if err := c.Rcpt(r, nil); err != nil {
				t.Fatal(err)
			}
		}
		wantCode(t, c.Rcpt("d@example.com", nil), 452, smtp.EnhancedCode{4, 5, 3})
	})
	t.Run("reload lowers limits on open connection", func(t *testing.T) {
		c := e.dial(t)
		if err := c.Hello("x"); err != nil {
			t.Fatal(err)
		}
		low := *cfg
		low.SMTP.MaxMessageSize = 100
		low.SMTP.MaxRecipients = 1
		e.cfg.set(&low)
		defer e.cfg.set(cfg)
		_, err := send(c, "a@example.com", []string{"b@example.com"}, strings.Repeat("z", 500))
		wantCode(t, err, 552, smtp.EnhancedCode{5, 3, 4})
		c.Reset()
		c.Mail("a@example.com", nil)
		c.Rcpt("b@example.com", nil)
		wantCode(t, c.Rcpt("c@example.com", nil), 452, smtp.EnhancedCode{4, 5, 3})
	})
	t.Run("reload raises size for new connections", func(t *testing.T) {
		high := *cfg
		high.SMTP.MaxMessageSize = 5000
		e.cfg.set(&high)
		defer e.cfg.set(cfg)
		c := e.dial(t)
		if _, err := send(c, "a@example.com", []string{"b@example.com"}, strings.Repeat("z", 2000)); err != nil {
			t.Fatal(err)
		}
		if _, size := c.Extension("SIZE"); size != "5001" { // max_message_size + 1: see serveConn
			t.Errorf("SIZE %q after reload", size)
		}
	})
}

func TestAddressSyntax(t *testing.T) {
	e := start(t, baseConfig(), nil)
	tests := []struct {
		from, to string
		code     int
		enh      smtp.EnhancedCode
	}{
		{"no-domain", "b@example.com", 501, smtp.EnhancedCode{5, 5, 2}},
		{"a@-bad-.com", "b@example.com", 501, smtp.EnhancedCode{5, 1, 7}},
		{"a@example.com", "b@exa mple", 501, smtp.EnhancedCode{5, 5, 2}},
		{"a@example.com", "b@exa..mple.com", 501, smtp.EnhancedCode{5, 1, 3}},
		{"a@example.com", "b@[300.1.1.1]", 501, smtp.EnhancedCode{5, 1, 3}},
		{"a@example.com", "postmaster", 501, smtp.EnhancedCode{5, 5, 2}},
		{"a@example.com", "\"a b\"@example.com", 501, smtp.EnhancedCode{5, 1, 3}},
		{"a@example.com", "b@[127.0.0.1]", 0, smtp.EnhancedCode{}},
		{"a@example.com", "δοκιμή@παράδειγμα.δοκιμή", 0, smtp.EnhancedCode{}},
	}
	for _, tt := range tests {
		t.Run(tt.from+" "+tt.to, func(t *testing.T) {
			c := e.dial(t)
			err := c.Mail(tt.from, &smtp.MailOptions{UTF8: true})
			if err == nil {
				err = c.Rcpt(tt.to, nil)
			}
			if tt.code == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantCode(t, err, tt.code, tt.enh)
		})
	}
}

func users(t testing.TB, pairs ...string) []config.User {
	var us []config.User
	for i := 0; i < len(pairs); i += 2 {
		h, err := bcrypt.GenerateFromPassword([]byte(pairs[i+1]), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		us = append(us, config.User{Username: pairs[i], PasswordHash: string(h)})
	}
	return us
}

func TestAuth(t *testing.T) {
	cfg := baseConfig()
	cfg.SMTP.Users = users(t, "alice", "wonder", "bob", "builder")
	e := start(t, cfg, nil)
	tests := []struct {
		name string
		mech sasl.Client
		ok   bool
	}{
		{"plain", sasl.NewPlainClient("", "alice", "wonder"), true},
		{"plain with authzid", sasl.NewPlainClient("bob", "bob", "builder"), true},
		{"login", sasl.NewLoginClient("bob", "builder"), true},
		{"plain wrong password", sasl.NewPlainClient("", "alice", "builder"), false},
		{"login wrong password", sasl.NewLoginClient("bob", "wonder"), false},
		{"unknown user", sasl.NewPlainClient("", "carol", "wonder"), false},
		{"other authzid", sasl.NewPlainClient("bob", "alice", "wonder"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.dial(t)
			err := c.Auth(tt.mech)
			if !tt.ok {
				wantCode(t, err, 535, smtp.EnhancedCode{5, 7, 8})
				wantCode(t, c.Mail("a@example.com", nil), 530, smtp.EnhancedCode{5, 7, 0})
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			reply, err := send(c, "a@example.com", []string{"b@example.com"}, msg)
			if err != nil || !strings.HasPrefix(reply, "2.0.0 OK: queued as Q") {
				t.Fatalf("%q %v", reply, err)
			}
		})
	}
	t.Run("required", func(t *testing.T) {
		c := e.dial(t)
		wantCode(t, c.Mail("a@example.com", nil), 530, smtp.EnhancedCode{5, 7, 0})
	})
	t.Run("received says ESMTPA", func(t *testing.T) {
		n := len(e.sp.messages())
		c := e.dial(t)
		if err := c.Auth(sasl.NewPlainClient("", "alice", "wonder")); err != nil {
			t.Fatal(err)
		}
		if _, err := send(c, "a@example.com", []string{"b@example.com"}, msg); err != nil {
			t.Fatal(err)
		}
		if b := e.sp.messages()[n].body; !strings.Contains(b, "with ESMTPA;") {
			t.Errorf("Received header: %q", b[:150])
		}
	})
	t.Run("three failures close the connection", func(t *testing.T) {
		c := e.dial(t)
		for range 2 {
			wantCode(t, c.Auth(sasl.NewPlainClient("", "alice", "x")), 535, smtp.EnhancedCode{5, 7, 8})
		}
		wantCode(t, c.Auth(sasl.NewPlainClient("", "alice", "x")), 421, smtp.EnhancedCode{4, 7, 0})
		if err := c.Noop(); err == nil {
			t.Fatal("connection still usable after 3 failures")
		}
	})
	t.Run("reload adds a user", func(t *testing.T) {
		c2 := *cfg
		c2.SMTP.Users = append(users(t, "carol", "singer"), cfg.SMTP.Users...)
		e.cfg.set(&c2)
		defer e.cfg.set(cfg)
		c := e.dial(t)
		if err := c.Auth(sasl.NewPlainClient("", "carol", "singer")); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRemoteClients(t *testing.T) {
	dir := t.TempDir()
	cert, key, pool := makeCert(t, dir)
	cfg := baseConfig()
	cfg.SMTP.TLSCert, cfg.SMTP.TLSKey = cert, key
	cfg.SMTP.Users = users(t, "alice", "wonder")
	remote := func(s *Server) { s.isLocal = func(net.Addr) bool { return false } }
	e := start(t, cfg, remote)

	t.Run("no AUTH in plain text", func(t *testing.T) {
		c := e.dial(t)
		if ok, _ := c.Extension("AUTH"); ok {
			t.Error("AUTH advertised on a plain remote connection")
		}
		wantCode(t, c.Auth(sasl.NewPlainClient("", "alice", "wonder")), 538, smtp.EnhancedCode{5, 7, 11})
		wantCode(t, c.Mail("a@example.com", nil), 530, smtp.EnhancedCode{5, 7, 0})
	})
	t.Run("AUTH after STARTTLS", func(t *testing.T) {
		c, err := smtp.DialStartTLS(e.addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if ok, mechs := c.Extension("AUTH"); !ok || mechs != "PLAIN LOGIN" {
			t.Errorf("AUTH %v %q after STARTTLS", ok, mechs)
		}
		if err := c.Auth(sasl.NewPlainClient("", "alice", "wonder")); err != nil {
			t.Fatal(err)
		}
		if _, err := send(c, "a@example.com", []string{"b@example.com"}, msg); err != nil {
			t.Fatal(err)
		}
		last := e.sp.messages()
		if !strings.Contains(last[len(last)-1].body, "with ESMTPSA;") {
			t.Error("Received header does not say ESMTPSA")
		}
	})
	t.Run("no users: no open relay", func(t *testing.T) {
		open := baseConfig()
		e2 := start(t, open, remote)
		c := e2.dial(t)
		wantCode(t, c.Mail("a@example.com", nil), 554, smtp.EnhancedCode{5, 7, 1})
	})
}

func TestLocalNoUsersIsOpen(t *testing.T) {
	e := start(t, baseConfig(), nil)
	c := e.dial(t)
	if _, err := send(c, "a@example.com", []string{"b@example.com"}, msg); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.Auth(sasl.NewPlainClient("", "a", "b")), 502, smtp.EnhancedCode{5, 5, 1})
}

func TestSpoolFailure(t *testing.T) {
	e := start(t, baseConfig(), nil)
	e.sp.fail = errors.New("disk full")
	c := e.dial(t)
	_, err := send(c, "a@example.com", []string{"b@example.com"}, msg)
	wantCode(t, err, 451, smtp.EnhancedCode{4, 3, 0})
	var se *smtp.SMTPError
	if errors.As(err, &se); !se.Temporary() {
		t.Error("spool failure is not a temporary error")
	}
}

func TestDataIsStreamed(t *testing.T) {
	e := start(t, baseConfig(), nil)
	e.sp.first = make(chan struct{})
	c := e.dial(t)
	if err := c.Mail("a@example.com", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("b@example.com", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "Subject: big\r\n\r\n"+strings.Repeat("0123456789\r\n", 10000))
	select {
	case <-e.sp.first:
	case <-time.After(5 * time.Second):
		t.Fatal("spooler saw nothing before the end of DATA: the body is buffered")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestStartTLS(t *testing.T) {
	cert, key, pool := makeCert(t, t.TempDir())
	cfg := baseConfig()
	cfg.SMTP.TLSCert, cfg.SMTP.TLSKey = cert, key
	e := start(t, cfg, nil)
	c, err := smtp.DialStartTLS(e.addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.TLSConnectionState(); !ok {
		t.Fatal("not TLS")
	}
	if _, err := send(c, "a@example.com", []string{"b@example.com"}, msg); err != nil {
		t.Fatal(err)
	}
	if b := e.sp.messages()[0].body; !strings.Contains(b, "with ESMTPS;") {
		t.Errorf("Received: %q", b[:120])
	}

	// A renewed certificate is used by the next connection.
	cert2, key2, pool2 := makeCert(t, t.TempDir())
	os.Rename(cert2, cert)
	os.Rename(key2, key)
	future := time.Now().Add(time.Hour)
	os.Chtimes(cert, future, future)
	c2, err := smtp.DialStartTLS(e.addr, &tls.Config{RootCAs: pool2, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := c2.Noop(); err != nil {
		t.Fatalf("renewed certificate not used: %v", err)
	}
}

func TestConnectionCap(t *testing.T) {
	e := start(t, baseConfig(), func(s *Server) { s.MaxConns = 2 })
	for range 2 {
		c := e.dial(t)
		if err := c.Noop(); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(conn).ReadString('\n')
	if !strings.HasPrefix(line, "421 4.3.2 ") {
		t.Fatalf("over the cap: %q, want 421 4.3.2", line)
	}
}

func TestIdleTimeout(t *testing.T) {
	e := start(t, baseConfig(), func(s *Server) { s.ReadTimeout = 200 * time.Millisecond })
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(conn)
	r.ReadString('\n') // greeting
	line, _ := r.ReadString('\n')
	if !strings.HasPrefix(line, "421 ") {
		t.Fatalf("idle client got %q, want 421", line)
	}
}

func TestShutdown(t *testing.T) {
	e := start(t, baseConfig(), nil)
	idle := e.dial(t)
	if err := idle.Noop(); err != nil {
		t.Fatal(err)
	}
	busy := e.dial(t)
	if err := busy.Mail("a@example.com", nil); err != nil {
		t.Fatal(err)
	}
	if err := busy.Rcpt("b@example.com", nil); err != nil {
		t.Fatal(err)
	}
	w, err := busy.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "Subject: half\r\n\r\n")

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- e.srv.Shutdown(ctx)
	}()
	// The idle client is told to go away.
	deadline := time.Now().Add(5 * time.Second)
	for idle.Noop() == nil {
		if time.Now().After(deadline) {
			t.Fatal("idle connection still open after Shutdown")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := <-e.done; err != nil {
		t.Fatalf("Serve returned %v after Shutdown", err)
	}
	// New clients are refused.
	if c, err := net.DialTimeout("tcp", e.addr, time.Second); err == nil {
		c.Close()
		t.Fatal("still accepting connections")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) before the transaction finished", err)
	case <-time.After(100 * time.Millisecond):
	}
	// The transaction in progress completes.
	io.WriteString(w, "rest of the body\r\n")
	resp, err := w.CloseWithResponse()
	if err != nil || !strings.HasPrefix(resp.StatusText, "2.0.0 OK: queued as Q") {
		t.Fatalf("in-flight transaction: %v %v", resp, err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func TestShutdownDeadline(t *testing.T) {
	e := start(t, baseConfig(), nil)
	busy := e.dial(t)
	busy.Mail("a@example.com", nil)
	busy.Rcpt("b@example.com", nil)
	w, _ := busy.Data()
	io.WriteString(w, "Subject: never finished\r\n")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := e.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
	if len(e.sp.messages()) != 0 {
		t.Fatal("an unfinished message was spooled")
	}
}

// makeCert writes a self-signed certificate for localhost and 127.0.0.1.
func makeCert(t testing.TB, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	parsed, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(parsed)
	return certFile, keyFile, pool
}

func BenchmarkSessionData(b *testing.B) {
	e := start(b, baseConfig(), nil)
	e.sp.discard = true
	c := e.dial(b)
	body := "Subject: bench\r\n\r\n" + strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!?\r\n", 50*1024/66)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := send(c, "a@example.com", []string{"b@example.com"}, body); err != nil {
			b.Fatal(err)
		}
	}
}

// rawConn speaks SMTP line by line, for what go-smtp's client cannot do.
func rawConn(t *testing.T, addr string) *textproto.Conn {
	t.Helper()
	c, err := textproto.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, _, err := c.ReadResponse(220); err != nil {
		t.Fatal(err)
	}
	return c
}

func cmd(t *testing.T, c *textproto.Conn, want int, format string, args ...any) string {
	t.Helper()
	if err := c.PrintfLine(format, args...); err != nil {
		t.Fatal(err)
	}
	_, msg, err := c.ReadResponse(want)
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(format, args...), err)
	}
	return msg
}

func TestBDAT(t *testing.T) {
	e := start(t, baseConfig(), nil)
	c := rawConn(t, e.addr)
	cmd(t, c, 250, "EHLO raw.test")
	cmd(t, c, 250, "MAIL FROM:<a@example.com>")
	cmd(t, c, 250, "RCPT TO:<b@example.com>")
	part1, part2 := "Subject: chunks\r\n\r\n", "chunked body\r\n"
	fmt.Fprintf(c.W, "BDAT %d\r\n%s", len(part1), part1)
	c.W.Flush()
	if _, _, err := c.ReadResponse(250); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c.W, "BDAT %d LAST\r\n%s", len(part2), part2)
	c.W.Flush()
	_, msg, err := c.ReadResponse(250)
	if err != nil || !strings.Contains(msg, "queued as Q0001") {
		t.Fatalf("BDAT LAST: %q %v", msg, err)
	}
	if m := e.sp.messages(); len(m) != 1 || !strings.HasSuffix(m[0].body, part1+part2) {
		t.Fatalf("%+v", m)
	}
	// RSET in the middle of a BDAT transfer abandons the message.
	cmd(t, c, 250, "MAIL FROM:<a@example.com>")
	cmd(t, c, 250, "RCPT TO:<b@example.com>")
	fmt.Fprintf(c.W, "BDAT %d\r\n%s", len(part1), part1)
	c.W.Flush()
	c.ReadResponse(250)
	cmd(t, c, 250, "RSET")
	cmd(t, c, 250, "NOOP")
	if n := len(e.sp.messages()); n != 1 {
		t.Fatalf("%d messages after an abandoned BDAT", n)
	}
}

func TestClientDisconnectMidData(t *testing.T) {
	e := start(t, baseConfig(), nil)
	c := rawConn(t, e.addr)
	cmd(t, c, 250, "EHLO raw.test")
	cmd(t, c, 250, "MAIL FROM:<a@example.com>")
	cmd(t, c, 250, "RCPT TO:<b@example.com>")
	cmd(t, c, 354, "DATA")
	c.PrintfLine("Subject: cut")
	c.Close()
	time.Sleep(100 * time.Millisecond)
	if n := len(e.sp.messages()); n != 0 {
		t.Fatalf("%d messages spooled from a cut connection", n)
	}
}

func TestConcurrentSubmissions(t *testing.T) {
	e := start(t, baseConfig(), nil)
	const clients, each = 12, 4
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			c, err := smtp.Dial(e.addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			for j := range each {
				to := fmt.Sprintf("r%d-%d@example.com", i, j)
				if _, err := send(c, "a@example.com", []string{to}, msg); err != nil {
					t.Error(err)
					return
				}
			}
			c.Quit()
		})
	}
	wg.Wait()
	msgs := e.sp.messages()
	if len(msgs) != clients*each {
		t.Fatalf("%d spooled, want %d", len(msgs), clients*each)
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		seen[m.to[0]] = true
	}
	if len(seen) != clients*each {
		t.Fatalf("%d distinct recipients", len(seen))
	}
}

// BenchmarkSubmitNewConnection is one message per connection, the way
// msmtp, git send-email and most mail clients submit.
func BenchmarkSubmitNewConnection(b *testing.B) {
	e := start(b, baseConfig(), nil)
	e.sp.discard = true
	b.ReportAllocs()
	for b.Loop() {
		c, err := smtp.Dial(e.addr)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := send(c, "a@example.com", []string{"b@example.com"}, msg); err != nil {
			b.Fatal(err)
		}
		c.Quit()
	}
}

// TestOnAccepted: the server tells who submitted an accepted message, for
// remote clients only (on loopback every submitter is this machine).
func TestOnAccepted(t *testing.T) {
	dir := t.TempDir()
	cert, key, pool := makeCert(t, dir)
	cfg := baseConfig()
	cfg.SMTP.TLSCert, cfg.SMTP.TLSKey = cert, key
	cfg.SMTP.Users = users(t, "alice", "wonder")
	var mu sync.Mutex
	var seen []netip.Addr
	note := func(s *Server) {
		s.OnAccepted = func(ip netip.Addr) { mu.Lock(); seen = append(seen, ip); mu.Unlock() }
	}
	remote := func(s *Server) { note(s); s.isLocal = func(net.Addr) bool { return false } }
	e := start(t, cfg, remote)
	c, err := smtp.DialStartTLS(e.addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "alice", "wonder")); err != nil {
		t.Fatal(err)
	}
	// A refused message is no submission.
	if err := c.Mail("a@example.com", nil); err != nil {
		t.Fatal(err)
	}
	c.Reset()
	if _, err := send(c, "a@example.com", []string{"b@example.com"}, msg); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := append([]netip.Addr(nil), seen...)
	mu.Unlock()
	if len(got) != 1 || got[0] != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("remote: OnAccepted got %v, want [127.0.0.1]", got)
	}

	seen = nil
	local := start(t, baseConfig(), note)
	lc := local.dial(t)
	if _, err := send(lc, "a@example.com", []string{"b@example.com"}, msg); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 0 {
		t.Errorf("local: OnAccepted got %v", seen)
	}
}
