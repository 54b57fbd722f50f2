// Package smtpd is pixelrelay's SMTP submission server: mail clients connect
// to smtp.listen, authenticate when users are configured, and hand over a
// message that is streamed into the spool. It wraps github.com/emersion/go-smtp.
//
// Every accepted connection gets its own go-smtp server built from the config
// in force at that moment (greeting name, SIZE, recipient limit, STARTTLS
// certificate, whether AUTH may be offered in plain text). That is how hot
// reload reaches the protocol layer without racing on shared fields: a reload
// applies to new connections at once, and the session methods re-check the
// current limits and users on every command, so a lowered limit also applies
// to connections that are already open.
package smtpd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"pixelrelay/config"
	"pixelrelay/metrics"
	"pixelrelay/relay"
)

// Defaults for the tunables of Server.
const (
	DefaultMaxConns     = 100
	DefaultReadTimeout  = 5 * time.Minute // RFC 5321 4.5.3.2.7: at least 5 minutes
	DefaultWriteTimeout = 1 * time.Minute
	// MaxLineLength bounds a command or DATA line. RFC 5321 allows 1000
	// octets, but real mail often carries longer lines; refusing them would
	// lose mail, so the bound is generous and only guards memory.
	MaxLineLength = 1 << 20
)

// Server is the SMTP submission server. Set the exported fields before Serve.
type Server struct {
	// MaxConns bounds concurrent client connections; one more is answered
	// "421 4.3.2" and closed.
	MaxConns int
	// ReadTimeout is the longest the server waits for any read from the
	// client (a command line, or the next chunk of DATA).
	ReadTimeout time.Duration
	// WriteTimeout bounds each reply write.
	WriteTimeout time.Duration
	// Metrics counts sessions, replies at the end of DATA and refused
	// commands; nil counts nothing.
	Metrics *metrics.Metrics
	// OnAccepted, when set, is called with the client's address after each
	// message the relay accepted (250) from a client that is not on
	// loopback: the tracker tells the sender's own views of a pixel by it.
	OnAccepted func(ip netip.Addr)

	cfg   func() *config.Config
	spool relay.Spooler
	log   *slog.Logger
	certs certCache
	// isLocal says whether a client address counts as local (loopback);
	// tests replace it to simulate remote clients.
	isLocal func(net.Addr) bool

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*clientConn]struct{}
	closing   bool
	idle      chan struct{} // closed when conns becomes empty while closing
}

// New returns a server that reads its settings from cfg (called again for
// every connection and command, so hot reloads apply) and hands accepted
// messages to sp. A nil log means slog.Default().
func New(cfg func() *config.Config, sp relay.Spooler, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	return &Server{
		MaxConns:     DefaultMaxConns,
		ReadTimeout:  DefaultReadTimeout,
		WriteTimeout: DefaultWriteTimeout,
		cfg:          cfg,
		spool:        sp,
		log:          log.With("component", "smtpd"),
		isLocal:      isLoopbackAddr,
		listeners:    make(map[net.Listener]struct{}),
		conns:        make(map[*clientConn]struct{}),
	}
}

// Serve accepts connections on l until Shutdown; it then returns nil. If l
// is closed by someone else, Serve returns net.ErrClosed; other accept
// errors (such as running out of file descriptors) are retried.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()

	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if s.isClosing() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: wait, do not die.
			delay = backoff(delay)
			s.log.Warn("accept failed; retrying", "err", err, "delay", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.accept(c)
	}
}

func backoff(d time.Duration) time.Duration {
	if d == 0 {
		return 5 * time.Millisecond
	}
	return min(2*d, time.Second)
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// accept registers c and serves it in its own goroutine, or turns it away
// when the server is full or closing.
func (s *Server) accept(raw net.Conn) {
	c := newClientConn(raw, s.ReadTimeout)
	s.mu.Lock()
	full := len(s.conns) >= s.maxConns()
	if s.closing || full {
		s.mu.Unlock()
		go s.reject(raw, full)
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.Metrics.SMTPSession()
	go s.serveConn(c)
}

func (s *Server) maxConns() int {
	if s.MaxConns > 0 {
		return s.MaxConns
	}
	return DefaultMaxConns
}

// reject answers 421 without reading anything and closes the connection.
func (s *Server) reject(c net.Conn, full bool) {
	msg := "421 4.3.2 Service shutting down, try again later\r\n"
	if full {
		msg = "421 4.3.2 Too many connections, try again later\r\n"
		s.log.Warn("connection refused: too many connections", "client", c.RemoteAddr().String(), "max", s.maxConns())
	}
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte(msg))
	c.Close()
}

// serveConn runs one go-smtp server, configured from the current config,
// for the single connection c, and returns when the connection is closed.
func (s *Server) serveConn(c *clientConn) {
	defer s.forget(c)
	cfg := s.cfg()
	srv := smtp.NewServer(smtp.BackendFunc(func(sc *smtp.Conn) (smtp.Session, error) {
		if s.Metrics != nil {
			return countedSession{s.newSession(sc, c)}, nil
		}
		return s.newSession(sc, c), nil
	}))
	srv.Domain = hostname(cfg)
	// One byte of headroom: go-smtp refuses to read the end-of-data marker
	// once its budget is spent, so a message of exactly the limit would get
	// 552. sizeLimiter in session.Data enforces the exact limit.
	srv.MaxMessageBytes = int64(cfg.SMTP.MaxMessageSize) + 1
	srv.MaxRecipients = cfg.SMTP.MaxRecipients
	srv.MaxLineLength = MaxLineLength
	srv.EnableSMTPUTF8 = true
	// AUTH is offered or refused per session (see session.AuthMechanisms):
	// go-smtp's switch is server-wide, so it is left open here.
	srv.AllowInsecureAuth = true
	srv.WriteTimeout = s.WriteTimeout
	srv.ErrorLog = errorLog{s.log}
	if tc, err := s.certs.tlsConfig(cfg); err != nil {
		s.log.Error("STARTTLS disabled: cannot load certificate", "key", "smtp.tls_cert", "err", err)
	} else {
		srv.TLSConfig = tc
	}
	l := &oneConnListener{conn: c}
	srv.Serve(l) // returns once c is closed
	// Wait for go-smtp's connection goroutine (session Logout) to finish.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv.Shutdown(ctx)
}

func (s *Server) forget(c *clientConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if s.closing && len(s.conns) == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
}

// Shutdown stops accepting connections, closes idle ones (they get "421"),
// lets transactions in progress finish and closes their connections after
// the reply. When ctx ends first, the remaining connections are closed
// abruptly (their clients get no 250, so nothing is lost) and ctx's error is
// returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	var err error
	for l := range s.listeners {
		if e := l.Close(); e != nil && !errors.Is(e, net.ErrClosed) && err == nil {
			err = e
		}
	}
	clear(s.listeners)
	idle := make(chan struct{})
	if len(s.conns) == 0 {
		close(idle)
	} else {
		s.idle = idle
	}
	for c := range s.conns {
		c.drain()
	}
	s.mu.Unlock()

	select {
	case <-idle:
		return err
	case <-ctx.Done():
	}
	s.mu.Lock()
	n := len(s.conns)
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.log.Warn("shutdown grace ended; closed connections still in a transaction", "connections", n)
	// Give the sessions a moment to see the close and return from the
	// spooler (which then discards the half-received message).
	select {
	case <-idle:
	case <-time.After(5 * time.Second):
	}
	return ctx.Err()
}

// hostname is the name used in the greeting and the Received header.
func hostname(cfg *config.Config) string {
	if cfg.SMTP.Hostname != "" {
		return cfg.SMTP.Hostname
	}
	return "localhost"
}

// isLoopbackAddr reports whether a is a loopback IP address.
func isLoopbackAddr(a net.Addr) bool {
	var ip net.IP
	switch v := a.(type) {
	case *net.TCPAddr:
		ip = v.IP
	default:
		host, _, err := net.SplitHostPort(a.String())
		if err != nil {
			return false
		}
		ip = net.ParseIP(host)
	}
	return ip != nil && ip.IsLoopback()
}

// errorLog sends go-smtp's internal error log to slog.
type errorLog struct{ log *slog.Logger }

func (e errorLog) Printf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.HasPrefix(msg, "panic") {
		e.log.Error(msg)
		return
	}
	e.log.Debug(msg)
}

func (e errorLog) Println(v ...any) {
	e.log.Debug(fmt.Sprint(v...))
}
