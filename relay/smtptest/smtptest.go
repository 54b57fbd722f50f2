// Package smtptest runs a scriptable fake SMTP server on 127.0.0.1 for
// tests: it plays the upstream (Gmail, any SMTP server) that pixelrelay
// delivers to, built on go-smtp's server.
//
// Typical use:
//
//	srv := smtptest.Start(t, smtptest.Script{
//		RcptReplies: map[string]*smtp.SMTPError{
//			"bad@example.com": smtptest.Reply(550, 5, 1, 1, "No such user"),
//		},
//	})
//	// point the code under test at srv.URL("smtp") with upstream.tls = "none"
//	// ... deliver ...
//	msgs := srv.Messages() // what the server accepted: envelope and bytes
//
// Without a script field set the server accepts everything: any sender,
// any recipient, any message (250), no AUTH, no TLS. Each field changes one
// behaviour:
//
//   - Greeting: every connection gets this reply instead of 220 and is closed
//     (e.g. 421 "try again later").
//   - MailReply, RcptReplies (per recipient address), DataReply: the reply
//     to that command; OnData decides the DATA reply from the message.
//   - ResetMidData: the connection is dropped after the first bytes of DATA.
//   - Delays: sleep before answering "greeting", "mail", "rcpt", "data"
//     (after the whole message was read) or "auth".
//   - StartTLS offers STARTTLS with a self-signed certificate for 127.0.0.1
//     and localhost; RequireTLS also refuses MAIL without it (530 5.7.0);
//     ImplicitTLS makes the listener speak TLS from the start (smtps).
//     Clients trust the certificate through Server.CertPool or the PEM file
//     Server.CAFile (for upstream.ca_file). (With ImplicitTLS, Greeting is
//     sent in plain text: do not combine them.)
//   - AuthUsers offers AUTH PLAIN and LOGIN (also without TLS) and then
//     requires it before MAIL (530 5.7.0); AuthFail makes every AUTH fail
//     with that reply (e.g. 535 5.7.8, or 454 4.7.0).
//
// Server records every accepted message (Messages), counts connections
// (Connections) and keeps the raw protocol transcript (Transcript).
// Change the script of a running server with SetScript.
package smtptest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Script says how the fake server behaves. The zero Script accepts
// everything.
type Script struct {
	// Greeting, when set, is sent instead of the 220 greeting, and the
	// connection is closed.
	Greeting *smtp.SMTPError
	// MailReply, when set, is the reply to every MAIL FROM.
	MailReply *smtp.SMTPError
	// RcptReplies maps a recipient address to the reply to its RCPT TO;
	// recipients not in the map are accepted.
	RcptReplies map[string]*smtp.SMTPError
	// DataReply, when set, is the reply after the message data.
	DataReply *smtp.SMTPError
	// OnData, when set, decides the reply after the message data (nil
	// accepts). It overrides DataReply. A refused message is not recorded.
	OnData func(Message) *smtp.SMTPError
	// ResetMidData drops the connection after reading the first bytes of
	// the message data, without replying.
	ResetMidData bool
	// Delays holds how long to wait before replying to "greeting", "mail",
	// "rcpt", "data" and "auth".
	Delays map[string]time.Duration
	// StartTLS offers STARTTLS.
	StartTLS bool
	// RequireTLS offers STARTTLS and refuses MAIL before it.
	RequireTLS bool
	// ImplicitTLS serves TLS from the first byte (like port 465).
	ImplicitTLS bool
	// AuthUsers enables AUTH PLAIN and LOGIN with these username/password
	// pairs, and requires AUTH before MAIL.
	AuthUsers map[string]string
	// AuthFail, when set, is the reply to every AUTH attempt.
	AuthFail *smtp.SMTPError
	// DiscardData records accepted messages without their Data (for
	// benchmarks).
	DiscardData bool
	// NoSMTPUTF8 stops advertising SMTPUTF8 (read by Start only).
	NoSMTPUTF8 bool
}

// Reply builds an *smtp.SMTPError, e.g. Reply(550, 5, 1, 1, "No such user").
func Reply(code, class, subject, detail int, msg string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{class, subject, detail}, Message: msg}
}

// Message is one message the server accepted (or, for OnData, is about to).
type Message struct {
	From     string
	To       []string
	Data     []byte // the message as received, CRLF line ends, dot-unstuffed
	TLS      bool   // received over TLS
	AuthUser string // the user who authenticated, "" if none
	Conn     int    // number of the connection (1 for the first) it came on
}

// Server is a running fake SMTP server.
type Server struct {
	// Addr is "127.0.0.1:PORT".
	Addr string
	// CertPool trusts the server's self-signed certificate.
	CertPool *x509.CertPool
	// CAFile is a PEM file with the server's certificate, usable as
	// upstream.ca_file.
	CAFile string
	// TLSConfig is the server side TLS config (certificate for 127.0.0.1
	// and localhost).
	TLSConfig *tls.Config

	srv *smtp.Server

	mu         sync.Mutex
	script     Script
	messages   []Message
	conns      int
	transcript bytes.Buffer
}

// Start starts a server with script on 127.0.0.1 and a free port; it is
// closed when the test ends.
func Start(t testing.TB, script Script) *Server {
	t.Helper()
	s := &Server{script: script}
	if err := s.makeCert(t.TempDir()); err != nil {
		t.Fatalf("smtptest: certificate: %v", err)
	}
	var l net.Listener
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: listen: %v", err)
	}
	s.Addr = l.Addr().String()
	l = &listener{Listener: l, s: s}
	if script.ImplicitTLS {
		l = tls.NewListener(l, s.TLSConfig)
	}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "smtptest.localhost"
	srv.AllowInsecureAuth = true
	srv.EnableSMTPUTF8 = !script.NoSMTPUTF8
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.Debug = lockedWriter{s}
	srv.ErrorLog = nopLog{}
	if script.StartTLS || script.RequireTLS {
		srv.TLSConfig = s.TLSConfig
	}
	s.srv = srv
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return s
}

// URL returns scheme://Addr, e.g. URL("smtp") for upstream.url.
func (s *Server) URL(scheme string) string { return scheme + "://" + s.Addr }

// SetScript replaces the script; it applies to commands that arrive after.
func (s *Server) SetScript(script Script) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = script
}

// Messages returns the accepted messages, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Connections returns how many connections the server accepted.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Transcript returns everything both sides sent so far (after TLS, the
// decrypted protocol), up to its first MiB.
func (s *Server) Transcript() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.transcript.String()
}

// Close stops the server and closes every connection.
func (s *Server) Close() error { return s.srv.Close() }

func (s *Server) current() Script {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.script
}

func (s *Server) delay(what string) {
	if d := s.current().Delays[what]; d > 0 {
		time.Sleep(d)
	}
}

// listener counts connections and applies Greeting and the greeting delay.
type listener struct {
	net.Listener
	s *Server
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.s.mu.Lock()
		l.s.conns++
		n := l.s.conns
		sc := l.s.script
		l.s.mu.Unlock()
		if g := sc.Greeting; g != nil {
			go func() {
				l.s.delay("greeting")
				fmt.Fprintf(c, "%d %d.%d.%d %s\r\n", g.Code, g.EnhancedCode[0], g.EnhancedCode[1], g.EnhancedCode[2], g.Message)
				c.Close()
			}()
			continue
		}
		return &conn{Conn: c, s: l.s, n: n}, nil
	}
}

// conn delays its first write (the greeting) and carries its number.
type conn struct {
	net.Conn
	s       *Server
	n       int
	greeted sync.Once
}

func (c *conn) Write(b []byte) (int, error) {
	c.greeted.Do(func() { c.s.delay("greeting") })
	return c.Conn.Write(b)
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	se := &session{s: s, c: c}
	nc := c.Conn()
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	if cc, ok := nc.(*conn); ok {
		se.connN = cc.n
	}
	return se, nil
}

type session struct {
	s     *Server
	c     *smtp.Conn
	connN int
	user  string
	from  string
	to    []string
}

func (se *session) isTLS() bool {
	_, ok := se.c.TLSConnectionState()
	return ok
}

func (se *session) AuthMechanisms() []string {
	if len(se.s.current().AuthUsers) == 0 {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

func (se *session) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		se.s.delay("auth")
		sc := se.s.current()
		if sc.AuthFail != nil {
			return sc.AuthFail
		}
		if want, ok := sc.AuthUsers[user]; !ok || want != pass {
			return Reply(535, 5, 7, 8, "Authentication credentials invalid")
		}
		se.user = user
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(_, user, pass string) error { return check(user, pass) }), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (se *session) Mail(from string, _ *smtp.MailOptions) error {
	se.s.delay("mail")
	sc := se.s.current()
	switch {
	case sc.RequireTLS && !se.isTLS():
		return Reply(530, 5, 7, 0, "Must issue a STARTTLS command first")
	case len(sc.AuthUsers) > 0 && se.user == "":
		return Reply(530, 5, 7, 0, "Authentication required")
	case sc.MailReply != nil:
		return sc.MailReply
	}
	se.from = from
	se.to = nil
	return nil
}

func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	se.s.delay("rcpt")
	if r := se.s.current().RcptReplies[to]; r != nil {
		return r
	}
	se.to = append(se.to, to)
	return nil
}

func (se *session) Data(r io.Reader) error {
	sc := se.s.current()
	if sc.ResetMidData {
		io.ReadFull(r, make([]byte, 16))
		se.c.Conn().Close()
		return Reply(421, 4, 4, 0, "connection dropped")
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return Reply(451, 4, 3, 0, "read error: "+err.Error())
	}
	se.s.delay("data")
	m := Message{From: se.from, To: append([]string(nil), se.to...), Data: data,
		TLS: se.isTLS(), AuthUser: se.user, Conn: se.connN}
	reply := sc.DataReply
	if sc.OnData != nil {
		reply = sc.OnData(m)
	}
	if reply != nil {
		return reply
	}
	if sc.DiscardData {
		m.Data = nil
	}
	se.s.mu.Lock()
	se.s.messages = append(se.s.messages, m)
	se.s.mu.Unlock()
	return nil
}

func (se *session) Reset() { se.from, se.to = "", nil }

func (se *session) Logout() error { return nil }

// loginServer is the server side of SASL LOGIN (go-sasl has only the
// client).
type loginServer struct {
	check func(user, pass string) error
	step  int
	user  string
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch {
	case l.step == 0 && resp == nil:
		l.step = 1
		return []byte("Username:"), false, nil
	case l.step <= 1:
		l.user, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	default:
		return nil, true, l.check(l.user, string(resp))
	}
}

// makeCert makes a self-signed ECDSA certificate for 127.0.0.1, ::1 and
// localhost, and writes it as PEM to dir/ca.pem.
func (s *Server) makeCert(dir string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "smtptest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	s.CertPool = x509.NewCertPool()
	s.CertPool.AddCert(cert)
	s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}
	s.CAFile = filepath.Join(dir, "ca.pem")
	return os.WriteFile(s.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
}

// maxTranscript bounds the transcript kept; later traffic is dropped.
const maxTranscript = 1 << 20

// lockedWriter appends to the transcript under the server's lock.
type lockedWriter struct{ s *Server }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if room := maxTranscript - w.s.transcript.Len(); room > 0 {
		w.s.transcript.Write(b[:min(len(b), room)])
	}
	return len(b), nil
}

type nopLog struct{}

func (nopLog) Printf(string, ...any) {}
func (nopLog) Println(...any)        {}
