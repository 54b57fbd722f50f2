// Package smtptest runs a scriptable fake SMTP server on 127.0.0.1 for
// tests: it plays the upstream (Gmail, any SMTP server) that pixelrelay
// delivers to, built on go-smtp's server. Raw (raw.go) is the other side:
// a client that writes hostile bytes to pixelrelay's own SMTP server.
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
//   - Down and Up: the server stops listening (connections are refused)
//     and listens again on the same address.
//   - MailReply, RcptReplies (per recipient address), DataReply: the reply
//     to that command; OnData decides the DATA reply from the message.
//   - ResetMidData: the connection is dropped after the first bytes of DATA.
//   - DropAfterData: the message is recorded, then the connection dropped
//     before the reply.
//   - Delays: sleep before answering "greeting", "mail", "rcpt", "data"
//     (after the whole message was read) or "auth".
//   - Stall: the server stops answering at that stage ("greeting", "mail",
//     "rcpt" or "data", the latter after reading the whole message) until
//     the script changes or the server closes; the stalled command then
//     gets 421 (the greeting: the connection is closed) and nothing is
//     recorded. The client's timeouts must end the wait.
//   - FailTLS makes every TLS handshake (STARTTLS or implicit) fail with an
//     alert; WrongCert presents a certificate that the client trusts
//     (through CertPool and CAFile) but for another name (wrong.invalid).
//   - StartTLS offers STARTTLS with a self-signed certificate for 127.0.0.1
//     and localhost; RequireTLS also refuses MAIL without it (530 5.7.0);
//     ImplicitTLS makes the listener speak TLS from the start (smtps).
//     Clients trust the certificate through Server.CertPool or the PEM file
//     Server.CAFile (for upstream.ca_file). (With ImplicitTLS, Greeting is
//     sent in plain text: do not combine them.)
//   - AuthUsers offers AUTH PLAIN and LOGIN (also without TLS) and then
//     requires it before MAIL (530 5.7.0); AuthFail makes every AUTH fail
//     with that reply (e.g. 535 5.7.8, or 454 4.7.0).
//   - MaxPerConn: after that many messages on one connection, every MAIL
//     gets 421 4.7.0 (as servers that limit messages per connection do;
//     the client should then close it).
//   - XOAUTH2 offers only AUTH XOAUTH2 (as Gmail and Outlook with OAuth) and
//     requires it before MAIL; the function decides whether a user's access
//     token is live. A refused token gets Gmail's JSON challenge, then
//     535 5.7.8.
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
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
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
	// DropAfterData records the message, then drops the connection
	// without replying: the server took a message its client cannot know
	// was taken.
	DropAfterData bool
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
	// MaxPerConn, when > 0, is the most messages one connection takes;
	// every MAIL after that gets 421.
	MaxPerConn int
	// XOAUTH2, when set, offers AUTH XOAUTH2 only, accepting a user's
	// access token when it returns true, and requires AUTH before MAIL.
	XOAUTH2 func(user, token string) bool
	// AuthFail, when set, is the reply to every AUTH attempt.
	AuthFail *smtp.SMTPError
	// DiscardData records accepted messages without their Data (for
	// benchmarks).
	DiscardData bool
	// NoSMTPUTF8 stops advertising SMTPUTF8 (read by Start only).
	NoSMTPUTF8 bool
	// Stall names the stage where the server stops answering: "greeting",
	// "mail", "rcpt" or "data" (after the message was read). It waits
	// until the script changes or the server closes, then answers 421
	// (at the greeting: closes the connection) and records nothing.
	Stall string
	// FailTLS makes TLS handshakes fail (the server sends an alert).
	FailTLS bool
	// WrongCert presents a trusted certificate for wrong.invalid instead
	// of one for 127.0.0.1 and localhost.
	WrongCert bool
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

	srv       *smtp.Server
	wrongCert tls.Certificate
	closing   chan struct{} // closed by Close: stalled commands give up
	closeOnce sync.Once

	mu         sync.Mutex
	script     Script
	unstall    chan struct{} // closed (and replaced) by SetScript
	ln         net.Listener  // the current listener, nil while Down
	messages   []Message
	conns      int
	transcript bytes.Buffer
}

// Start starts a server with script on 127.0.0.1 and a free port; it is
// closed when the test ends.
func Start(t testing.TB, script Script) *Server {
	t.Helper()
	s := &Server{script: script, closing: make(chan struct{}), unstall: make(chan struct{})}
	if err := s.makeCert(t.TempDir()); err != nil {
		t.Fatalf("smtptest: certificate: %v", err)
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
	l, err := s.listen("127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: listen: %v", err)
	}
	s.Addr = l.Addr().String()
	t.Cleanup(func() { s.Close() })
	return s
}

// listen starts serving on addr.
func (s *Server) listen(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.ln = l
	implicit := s.script.ImplicitTLS
	s.mu.Unlock()
	var sl net.Listener = &listener{Listener: l, s: s}
	if implicit {
		sl = tls.NewListener(sl, s.TLSConfig)
	}
	go s.srv.Serve(sl)
	return l, nil
}

// Down stops listening: new connections are refused until Up. Open
// connections stay.
func (s *Server) Down() {
	s.mu.Lock()
	l := s.ln
	s.ln = nil
	s.mu.Unlock()
	if l != nil {
		l.Close()
	}
}

// Up listens again on the same address after Down.
func (s *Server) Up() error {
	s.mu.Lock()
	up := s.ln != nil
	s.mu.Unlock()
	if up {
		return nil
	}
	_, err := s.listen(s.Addr)
	return err
}

// URL returns scheme://Addr, e.g. URL("smtp") for upstream.url.
func (s *Server) URL(scheme string) string { return scheme + "://" + s.Addr }

// SetScript replaces the script; it applies to commands that arrive after,
// and releases stalled commands.
func (s *Server) SetScript(script Script) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = script
	close(s.unstall)
	s.unstall = make(chan struct{})
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
func (s *Server) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	return s.srv.Close()
}

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

// stall waits while the script stalls at stage and reports whether it did.
func (s *Server) stall(stage string) bool {
	s.mu.Lock()
	stalled, ch := s.script.Stall == stage, s.unstall
	s.mu.Unlock()
	if !stalled {
		return false
	}
	select {
	case <-ch:
	case <-s.closing:
	}
	return true
}

// stalled is the reply to a command released from a stall.
func stalled() *smtp.SMTPError { return Reply(421, 4, 4, 2, "stalled; closing") }

// tlsConfigFor fails the handshake or picks the wrong certificate as the
// script says.
func (s *Server) tlsConfigFor(*tls.ClientHelloInfo) (*tls.Config, error) {
	sc := s.current()
	switch {
	case sc.FailTLS:
		return nil, errors.New("smtptest: handshake refused by the script")
	case sc.WrongCert:
		return &tls.Config{Certificates: []tls.Certificate{s.wrongCert}}, nil
	}
	return nil, nil
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
	var stalled bool
	c.greeted.Do(func() {
		c.s.delay("greeting")
		stalled = c.s.stall("greeting")
	})
	if stalled {
		c.Conn.Close()
		return 0, net.ErrClosed
	}
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
	taken int // messages accepted on this connection
}

func (se *session) isTLS() bool {
	_, ok := se.c.TLSConnectionState()
	return ok
}

func (se *session) AuthMechanisms() []string {
	sc := se.s.current()
	switch {
	case sc.XOAUTH2 != nil:
		return []string{"XOAUTH2"}
	case len(sc.AuthUsers) == 0:
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// authRequired: MAIL needs AUTH first.
func (sc Script) authRequired() bool { return len(sc.AuthUsers) > 0 || sc.XOAUTH2 != nil }

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
	case "XOAUTH2":
		return &xoauth2Server{se: se}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (se *session) Mail(from string, _ *smtp.MailOptions) error {
	se.s.delay("mail")
	if se.s.stall("mail") {
		return stalled()
	}
	sc := se.s.current()
	switch {
	case sc.RequireTLS && !se.isTLS():
		return Reply(530, 5, 7, 0, "Must issue a STARTTLS command first")
	case sc.MaxPerConn > 0 && se.taken >= sc.MaxPerConn:
		return Reply(421, 4, 7, 0, "Too many messages on this connection")
	case sc.authRequired() && se.user == "":
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
	if se.s.stall("rcpt") {
		return stalled()
	}
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
	if se.s.stall("data") {
		return stalled()
	}
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
	se.taken++
	if sc.DropAfterData {
		se.c.Conn().Close()
		return Reply(421, 4, 4, 0, "connection dropped")
	}
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

// xoauth2Server is the server side of XOAUTH2: the initial response
// "user=U\x01auth=Bearer T\x01\x01"; a refused token gets a JSON
// challenge, and the client's (empty) answer a 535.
type xoauth2Server struct {
	se      *session
	refused bool
}

func (x *xoauth2Server) Next(resp []byte) ([]byte, bool, error) {
	if x.refused {
		return nil, true, Reply(535, 5, 7, 8, "Username and Password not accepted")
	}
	if resp == nil {
		return []byte{}, false, nil
	}
	x.se.s.delay("auth")
	sc := x.se.s.current()
	if sc.AuthFail != nil {
		return nil, true, sc.AuthFail
	}
	user, token, ok := parseXOAUTH2(string(resp))
	if !ok {
		return nil, true, Reply(501, 5, 5, 2, "Malformed XOAUTH2 response")
	}
	if sc.XOAUTH2 == nil || !sc.XOAUTH2(user, token) {
		x.refused = true
		return []byte(`{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}`), false, nil
	}
	x.se.user = user
	return nil, true, nil
}

func parseXOAUTH2(s string) (user, token string, ok bool) {
	var found int
	for _, f := range strings.Split(s, "\x01") {
		if v, cut := strings.CutPrefix(f, "user="); cut {
			user, found = v, found+1
		}
		if v, cut := strings.CutPrefix(f, "auth=Bearer "); cut {
			token, found = v, found+1
		}
	}
	return user, token, found == 2 && strings.HasSuffix(s, "\x01\x01")
}

// makeCert makes a self-signed ECDSA certificate for 127.0.0.1, ::1 and
// localhost, and one for wrong.invalid (WrongCert), and writes both as PEM
// to dir/ca.pem.
func (s *Server) makeCert(dir string) error {
	good, err := selfSigned([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback})
	if err != nil {
		return err
	}
	if s.wrongCert, err = selfSigned([]string{"wrong.invalid"}, nil); err != nil {
		return err
	}
	s.CertPool = x509.NewCertPool()
	s.CertPool.AddCert(good.Leaf)
	s.CertPool.AddCert(s.wrongCert.Leaf)
	s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{good}, GetConfigForClient: s.tlsConfigFor}
	s.CAFile = filepath.Join(dir, "ca.pem")
	pems := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: good.Leaf.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.wrongCert.Leaf.Raw})...)
	return os.WriteFile(s.CAFile, pems, 0o600)
}

// selfSigned makes a self-signed ECDSA certificate for these names.
func selfSigned(names []string, ips []net.IP) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "smtptest " + names[0]},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              names,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, nil
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
