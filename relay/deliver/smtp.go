package deliver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"pixelrelay/config"
	"pixelrelay/relay"
	"pixelrelay/relay/oauth"
)

// Defaults for the SMTP upstream's timeouts.
const (
	DefaultDialTimeout    = 30 * time.Second
	DefaultCommandTimeout = 2 * time.Minute  // greeting, each command, TLS handshake
	DefaultDataTimeout    = 10 * time.Minute // reply after the message (RFC 5321 4.5.3.2.6)
	DefaultIdleTimeout    = 30 * time.Second // pooled connection left unused
	// checkAfter: a pooled connection unused for longer gets a NOOP before
	// it is trusted with a copy.
	checkAfter = 5 * time.Second
)

// envPassword overrides upstream.password and password_file when set.
const envPassword = "PIXELRELAY_UPSTREAM_PASSWORD"

// SMTP delivers copies to an SMTP upstream: "smtp://host:port" (STARTTLS,
// required unless upstream.tls = "none"; port 587 when missing) or
// "smtps://host:port" (implicit TLS; port 465). The certificate is verified
// against the system roots plus upstream.ca_file. With upstream.username
// set it authenticates with PLAIN, or LOGIN when only that is offered.
//
// Connections are pooled: up to upstream.connections are in use at once;
// after a copy a connection is kept for reuse for IdleTimeout, then closed
// with QUIT. A transaction that ended in a refusal is followed by RSET; a
// connection unused for more than a few seconds gets a NOOP before reuse;
// a pooled connection found dead at MAIL is replaced once, transparently
// (nothing of the message was sent yet). When any upstream setting changes
// (hot reload), pooled connections are closed and new ones use the new
// settings. Set the exported fields before use.
type SMTP struct {
	DialTimeout    time.Duration
	CommandTimeout time.Duration
	DataTimeout    time.Duration
	IdleTimeout    time.Duration

	cfg     func() *config.Config
	account string // whose upstream keys are used (config.DefaultAccount: [upstream])
	log     *slog.Logger

	mu       sync.Mutex
	closed   bool
	settings *settings // what the pool's connections were made for
	idle     []*pconn  // most recently used last
	inUse    int
	released chan struct{} // closed (and replaced) when a slot frees up
	sweeping bool
}

// NewSMTP returns an SMTP upstream reading upstream.* from cfg at every
// delivery. A nil log means slog.Default().
func NewSMTP(cfg func() *config.Config, log *slog.Logger) *SMTP {
	return NewAccountSMTP(cfg, config.DefaultAccount, log)
}

// NewAccountSMTP is NewSMTP for the account called account: its own keys
// ([upstream]'s for config.DefaultAccount, and for an account the config no
// longer has), connections and pool.
func NewAccountSMTP(cfg func() *config.Config, account string, log *slog.Logger) *SMTP {
	if log == nil {
		log = slog.Default()
	}
	return &SMTP{
		DialTimeout:    DefaultDialTimeout,
		CommandTimeout: DefaultCommandTimeout,
		DataTimeout:    DefaultDataTimeout,
		IdleTimeout:    DefaultIdleTimeout,
		cfg:            cfg,
		account:        account,
		log:            log.With("component", "deliver", "account", account),
		released:       make(chan struct{}),
	}
}

// upstream returns the keys of s's account in cfg.
func (s *SMTP) upstream(cfg *config.Config) config.Upstream {
	return upstreamOf(cfg, s.account)
}

// upstreamOf returns the keys of the account called name, [upstream]'s
// when cfg has no such account.
func upstreamOf(cfg *config.Config, name string) config.Upstream {
	if a, ok := cfg.Account(name); ok {
		return a.Upstream
	}
	return cfg.Upstream
}

// settings is the part of the config a connection depends on.
type settings struct {
	key      string // all the inputs; a change means new connections
	addr     string
	implicit bool        // smtps
	tls      *tls.Config // nil: plain (upstream.tls = "none")
	user     string
	password string
	oauth    *oauth.Source // auth = "oauth": XOAUTH2 with its tokens
	helo     string
}

// current returns the settings for cfg, reusing the pool's when unchanged.
func (s *SMTP) current(cfg *config.Config) (*settings, error) {
	u := s.upstream(cfg)
	key := strings.Join([]string{u.URL, u.Username, u.Password, u.PasswordFile,
		s.envPassword(), u.TLS, u.CAFile, cfg.SMTP.Hostname,
		u.Auth, u.OAuthProvider, u.OAuthClientID, u.OAuthClientSecret, u.OAuthAuthURL, u.OAuthTokenURL,
		cfg.DataDir}, "\x00")
	s.mu.Lock()
	st := s.settings
	s.mu.Unlock()
	if st != nil && st.key == key {
		return st, nil
	}
	st, err := newSettings(u, s.account, cfg.SMTP.Hostname, s.envPassword(), cfg.DataDir)
	if err != nil {
		return nil, err
	}
	st.key = key
	return st, nil
}

// envPassword is $PIXELRELAY_UPSTREAM_PASSWORD for [upstream]; it is not
// the password of any other account.
func (s *SMTP) envPassword() string {
	if s.account != config.DefaultAccount {
		return ""
	}
	return os.Getenv(envPassword)
}

// newSettings makes the settings of account (its keys u) for a new
// connection; helo is smtp.hostname, envPW $PIXELRELAY_UPSTREAM_PASSWORD
// where it applies, dataDir where OAuth tokens are kept.
func newSettings(u config.Upstream, account, helo, envPW, dataDir string) (*settings, error) {
	pu, err := url.Parse(u.URL)
	if err != nil || pu.Host == "" {
		return nil, fmt.Errorf("upstream.url %q: want smtp://host:port or smtps://host:port", u.URL)
	}
	st := &settings{user: u.Username, helo: helo}
	if st.helo == "" {
		st.helo = "localhost"
	}
	port := pu.Port()
	switch pu.Scheme {
	case "smtp":
		if port == "" {
			port = "587"
		}
	case "smtps":
		st.implicit = true
		if port == "" {
			port = "465"
		}
	default:
		return nil, fmt.Errorf("upstream.url %q: unknown scheme %q", u.URL, pu.Scheme)
	}
	st.addr = net.JoinHostPort(pu.Hostname(), port)
	if st.implicit || u.TLS != "none" {
		if st.tls, err = tlsConfig(pu.Hostname(), u.CAFile); err != nil {
			return nil, err
		}
	}
	if u.Auth == "oauth" {
		st.oauth = oauth.For(oauth.FromConfig(dataDir, config.Account{Name: account, Upstream: u}))
		return st, nil
	}
	if st.password, err = password(u, envPW); err != nil {
		return nil, err
	}
	return st, nil
}

// tlsConfig verifies the server name against the system roots plus
// upstream.ca_file.
func tlsConfig(host, caFile string) (*tls.Config, error) {
	tc, err := config.ClientTLS(host, caFile)
	if err != nil {
		return nil, fmt.Errorf("upstream.%w", err)
	}
	return tc, nil
}

// password is envPW ($PIXELRELAY_UPSTREAM_PASSWORD for [upstream]),
// upstream.password or the content of upstream.password_file, in that
// order.
func password(u config.Upstream, envPW string) (string, error) {
	if envPW != "" {
		return envPW, nil
	}
	if u.Password != "" || u.PasswordFile == "" {
		return u.Password, nil
	}
	b, err := os.ReadFile(u.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("upstream.password_file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// Deliver sends one copy to the recipients in to over a pooled connection.
// When some recipients are refused and others accepted it delivers to the
// accepted ones and returns relay.RecipientErrors; when all are refused it
// returns the first refusal. Errors are *relay.DeliveryError.
func (s *SMTP) Deliver(ctx context.Context, from string, to []string, msg io.Reader) error {
	err := s.deliver(ctx, from, to, msg)
	if err != nil {
		io.Copy(io.Discard, msg) // Deliver reads msg to its end
	}
	return err
}

func (s *SMTP) deliver(ctx context.Context, from string, to []string, msg io.Reader) error {
	if len(to) == 0 {
		return &relay.DeliveryError{Class: relay.Permanent, Stage: "rcpt", Err: errors.New("no recipients")}
	}
	st, err := s.current(s.cfg())
	if err != nil {
		return setupErr("connect", err)
	}
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	for attempt := 0; ; attempt++ {
		pc, err := s.get(ctx, st)
		if err != nil {
			return err
		}
		err = s.send(ctx, pc, from, to, msg)
		if attempt == 0 && pc.uses > 0 && stale(err) {
			// A pooled connection the server had closed; nothing of msg
			// was read yet, so try once more on a new connection.
			s.log.Debug("pooled connection was stale; reconnecting", "err", err)
			pc.close()
			continue
		}
		s.put(pc, err)
		return err
	}
}

// stale reports whether err is a pooled connection failing at MAIL
// because the server went away or timed it out.
func stale(err error) bool {
	var de *relay.DeliveryError
	return errors.As(err, &de) && de.Stage == "mail" && (de.Code == 0 || de.Code == 421)
}

// acquire waits for one of upstream.connections slots.
func (s *SMTP) acquire(ctx context.Context) error {
	for {
		limit := max(s.upstream(s.cfg()).Connections, 1)
		s.mu.Lock()
		if s.inUse < limit {
			s.inUse++
			s.mu.Unlock()
			return nil
		}
		ch := s.released
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctxErr(ctx, "connect")
		}
	}
}

func (s *SMTP) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inUse--
	close(s.released)
	s.released = make(chan struct{})
}

// get returns a pooled connection made with st, or a new one. A change
// of settings empties the pool.
func (s *SMTP) get(ctx context.Context, st *settings) (*pconn, error) {
	for {
		s.mu.Lock()
		if s.settings == nil || s.settings.key != st.key {
			if s.settings != nil {
				s.log.Info("upstream settings changed; closing pooled connections", "idle", len(s.idle))
			}
			s.closeIdle()
			s.settings = st
		}
		var pc *pconn
		if n := len(s.idle); n > 0 {
			pc = s.idle[n-1]
			s.idle = s.idle[:n-1]
		}
		s.mu.Unlock()
		if pc == nil {
			return s.dial(ctx, st)
		}
		if time.Since(pc.lastUsed) > s.IdleTimeout {
			pc.quit()
			continue
		}
		if time.Since(pc.lastUsed) > checkAfter {
			if err := s.check(ctx, pc); err != nil {
				pc.close()
				continue
			}
		}
		return pc, nil
	}
}

func (s *SMTP) check(ctx context.Context, pc *pconn) error {
	stop := context.AfterFunc(ctx, func() { pc.raw.Close() })
	defer stop()
	return pc.c.Noop()
}

// put returns pc to the pool after a transaction that ended with err, or
// closes it when it is not reusable.
func (s *SMTP) put(pc *pconn, err error) {
	pc.uses++
	if !reusable(err) {
		pc.close()
		return
	}
	var de *relay.DeliveryError
	if errors.As(err, &de) && pc.c.Reset() != nil {
		pc.close()
		return
	}
	pc.lastUsed = time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.settings == nil || s.settings.key != pc.settings.key {
		go pc.quit()
		return
	}
	s.idle = append(s.idle, pc)
	if !s.sweeping {
		s.sweeping = true
		time.AfterFunc(s.IdleTimeout, s.sweep)
	}
}

// reusable reports whether a connection is still in a known state after
// err: success, refused recipients, or a reply other than 421.
func reusable(err error) bool {
	if err == nil {
		return true
	}
	var re relay.RecipientErrors
	if errors.As(err, &re) {
		return true
	}
	var de *relay.DeliveryError
	return errors.As(err, &de) && de.Code != 0 && de.Code != 421
}

// sweep closes pooled connections idle for longer than IdleTimeout.
func (s *SMTP) sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := s.idle[:0]
	for _, pc := range s.idle {
		if time.Since(pc.lastUsed) >= s.IdleTimeout {
			go pc.quit()
		} else {
			keep = append(keep, pc)
		}
	}
	clear(s.idle[len(keep):])
	s.idle = keep
	s.sweeping = len(s.idle) > 0 && !s.closed
	if s.sweeping {
		time.AfterFunc(s.IdleTimeout/2, s.sweep)
	}
}

// closeIdle closes the pooled connections; s.mu is held.
func (s *SMTP) closeIdle() {
	for _, pc := range s.idle {
		go pc.quit()
	}
	clear(s.idle)
	s.idle = s.idle[:0]
}

// Close says QUIT on the pooled connections (waiting a few seconds at
// most); connections in use are closed when their delivery ends.
func (s *SMTP) Close() error {
	s.mu.Lock()
	s.closed = true
	idle := s.idle
	s.idle = nil
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, pc := range idle {
		wg.Go(pc.quit)
	}
	wg.Wait()
	return nil
}

// pconn is one upstream connection.
type pconn struct {
	c        *smtp.Client
	raw      net.Conn
	nc       *timeoutConn
	settings *settings
	lastUsed time.Time
	uses     int // transactions done on it
}

func (pc *pconn) close() { pc.c.Close() }

// quit says QUIT (waiting at most a few seconds) and closes.
func (pc *pconn) quit() {
	pc.nc.clamp(3 * time.Second)
	if pc.c.Quit() != nil {
		pc.c.Close()
	}
}

// dial connects, says EHLO, starts TLS and authenticates.
func (s *SMTP) dial(ctx context.Context, st *settings) (*pconn, error) {
	d := net.Dialer{Timeout: s.DialTimeout}
	raw, err := d.DialContext(ctx, "tcp", st.addr)
	if err != nil {
		return nil, classify(err, "connect")
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	nc := &timeoutConn{Conn: raw, timeout: s.CommandTimeout, clampTo: s.CommandTimeout}
	c, err := s.handshake(nc, st)
	if err == nil {
		nc.clamp(0)
		err = s.auth(ctx, c, st)
	}
	if err != nil {
		raw.Close()
		if ctx.Err() != nil {
			return nil, ctxErr(ctx, "connect")
		}
		return nil, err
	}
	return &pconn{c: c, raw: raw, nc: nc, settings: st, lastUsed: time.Now()}, nil
}

// handshake reads the greeting, says EHLO and sets up TLS.
func (s *SMTP) handshake(nc *timeoutConn, st *settings) (*smtp.Client, error) {
	var c *smtp.Client
	switch {
	case st.implicit:
		tc := tls.Client(nc, st.tls)
		nc.SetDeadline(time.Now().Add(s.CommandTimeout))
		if err := tc.Handshake(); err != nil {
			return nil, classify(err, "tls")
		}
		c = s.newClient(tc)
	case st.tls != nil:
		var err error
		// NewClientStartTLS reads the greeting and says EHLO before we can
		// set its timeouts: nc clamps its deadlines meanwhile.
		c, err = smtp.NewClientStartTLS(nc, st.tls)
		if err != nil {
			if strings.Contains(err.Error(), "support STARTTLS") {
				return nil, setupErr("tls", fmt.Errorf("upstream %s does not offer STARTTLS and upstream.tls is \"required\"", st.addr))
			}
			return nil, classify(err, "connect")
		}
		s.setTimeouts(c)
	default:
		c = s.newClient(nc)
	}
	if err := c.Hello(st.helo); err != nil {
		c.Close()
		stage := "connect"
		if st.tls != nil && !st.implicit {
			stage = "tls" // the STARTTLS handshake happens here
		}
		return nil, classify(err, stage)
	}
	return c, nil
}

func (s *SMTP) newClient(conn net.Conn) *smtp.Client {
	c := smtp.NewClient(conn)
	s.setTimeouts(c)
	return c
}

func (s *SMTP) setTimeouts(c *smtp.Client) {
	c.CommandTimeout = s.CommandTimeout
	c.SubmissionTimeout = s.DataTimeout
}

// auth authenticates when upstream.username is set: XOAUTH2 with
// auth = "oauth", else PLAIN, or LOGIN when the server offers only that.
func (s *SMTP) auth(ctx context.Context, c *smtp.Client, st *settings) error {
	if st.oauth != nil {
		return s.authOAuth(ctx, c, st)
	}
	if st.user == "" {
		return nil
	}
	var mech sasl.Client
	switch {
	case c.SupportsAuth(sasl.Plain):
		mech = sasl.NewPlainClient("", st.user, st.password)
	case c.SupportsAuth(sasl.Login):
		mech = sasl.NewLoginClient(st.user, st.password)
	default:
		c.Close()
		offered, _ := c.Extension("AUTH")
		if !offered {
			return setupErr("auth", fmt.Errorf("upstream %s does not offer AUTH but upstream.username is set", st.addr))
		}
		return setupErr("auth", fmt.Errorf("upstream %s offers neither AUTH PLAIN nor LOGIN", st.addr))
	}
	if err := c.Auth(mech); err != nil {
		c.Close()
		return classify(err, "auth")
	}
	return nil
}

// send runs one transaction: MAIL, RCPT for each recipient, DATA.
func (s *SMTP) send(ctx context.Context, pc *pconn, from string, to []string, msg io.Reader) error {
	stop := context.AfterFunc(ctx, func() { pc.raw.Close() })
	defer stop()
	err := s.transaction(pc.c, from, to, msg)
	if err != nil && ctx.Err() != nil {
		return ctxErr(ctx, "data")
	}
	return err
}

func (s *SMTP) transaction(c *smtp.Client, from string, to []string, msg io.Reader) error {
	opts := &smtp.MailOptions{UTF8: !ascii(from) || !allASCII(to)}
	if ok, _ := c.Extension("SMTPUTF8"); opts.UTF8 && !ok {
		return &relay.DeliveryError{Class: relay.Permanent, Stage: "mail",
			Err: errors.New("non-ASCII address, but the upstream does not support SMTPUTF8")}
	}
	if err := c.Mail(from, opts); err != nil {
		return classify(err, "mail")
	}
	refused := relay.RecipientErrors{}
	var first error
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt, nil); err != nil {
			de := classify(err, "rcpt")
			if de.Code == 0 || de.Code == 421 {
				return de // the connection is gone
			}
			refused[rcpt] = de
			if first == nil {
				first = de
			}
		}
	}
	if len(refused) == len(to) {
		return first
	}
	w, err := c.Data()
	if err != nil {
		return classify(err, "data")
	}
	src := &readErrReader{r: msg}
	buf := copyBufs.Get().(*[]byte)
	_, err = io.CopyBuffer(w, src, *buf)
	copyBufs.Put(buf)
	if err != nil {
		// Never end DATA after a short read: that would deliver a
		// truncated message. Dropping the connection aborts it.
		c.Close()
		if src.err != nil {
			err = fmt.Errorf("reading the message: %w", src.err)
		}
		return &relay.DeliveryError{Class: relay.Temporary, Stage: "data", Err: err}
	}
	if err := w.Close(); err != nil {
		return endOfDataErr(err)
	}
	if len(refused) > 0 {
		return refused
	}
	return nil
}

// endOfDataErr classifies a failure at the end of the message. A reply
// or a failed write of the message's end (the upstream never takes a
// message without it) is as it is. Anything else (no reply within
// DataTimeout, the connection dropped while waiting for it) leaves the
// relay unable to know whether the upstream took the copy; it is retried
// like any temporary failure, so it may arrive twice (RFC 1047), and the
// error says so.
func endOfDataErr(err error) *relay.DeliveryError {
	de := classify(err, "data")
	var se *smtp.SMTPError
	var oe *net.OpError
	if errors.As(err, &se) || errors.As(err, &oe) && oe.Op == "write" {
		return de
	}
	de.Err = fmt.Errorf("%w (no reply after the whole message was sent: the upstream may have taken it)", de.Err)
	return de
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// readErrReader remembers the error of its reader.
type readErrReader struct {
	r   io.Reader
	err error
}

func (r *readErrReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func allASCII(ss []string) bool {
	for _, s := range ss {
		if !ascii(s) {
			return false
		}
	}
	return true
}
