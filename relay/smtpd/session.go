package smtpd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"pixelrelay/relay"
)

// Replies the session gives. Every error a session method returns is an
// *smtp.SMTPError: go-smtp turns anything else into a permanent 554.
var (
	errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0},
		Message: "Authentication required"}
	errRelayDenied = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: "Relay access denied: remote clients must authenticate, and no SMTP users are configured"}
	errEncryptionRequired = &smtp.SMTPError{Code: 538, EnhancedCode: smtp.EnhancedCode{5, 7, 11},
		Message: "Encryption required for requested authentication mechanism: use STARTTLS first"}
	errAuthFailed = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8},
		Message: "Authentication credentials invalid"}
	errTooManyAuthFailures = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
		Message: "Too many authentication failures, closing connection"}
	errShuttingDown = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2},
		Message: "Service shutting down, try again later"}
	errTooManyRcpts = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3},
		Message: "Too many recipients"}
	errTooBig = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
		Message: "Message size exceeds fixed maximum message size"}
	errSpool = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Temporary local problem, message not accepted: try again later"}
	errDiskFull = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1},
		Message: "Insufficient system storage, message not accepted: try again later"}
	errBareLineEnd = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 5, 2},
		Message: "Message refused: a line holding only \".\" next to a bare CR or LF (SMTP smuggling); send CRLF line ends"}
	errLineTooLong = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
		Message: "Message refused: a line is longer than 1 MiB"}
	errNoAuth = &smtp.SMTPError{Code: 502, EnhancedCode: smtp.EnhancedCode{5, 5, 1},
		Message: "AUTH not available: no SMTP users are configured"}
)

// maxAuthFailures is how many failed AUTH attempts a connection gets.
const maxAuthFailures = 3

// session is one client's state between EHLO and QUIT (or STARTTLS, which
// starts a new session).
type session struct {
	s      *Server
	sc     *smtp.Conn
	conn   *clientConn
	log    *slog.Logger
	remote net.Addr
	local  bool // client is on a loopback address
	tls    bool

	user         string // authenticated user, "" if none
	authFailures int

	from  string
	rcpts []string
}

func (s *Server) newSession(sc *smtp.Conn, c *clientConn) *session {
	_, isTLS := sc.TLSConnectionState()
	return &session{
		s:      s,
		sc:     sc,
		conn:   c,
		log:    s.log.With("client", c.RemoteAddr().String()),
		remote: c.RemoteAddr(),
		local:  s.isLocal(c.RemoteAddr()),
		tls:    isTLS,
	}
}

// AuthMechanisms lists PLAIN and LOGIN when users are configured and the
// connection is encrypted or local; otherwise AUTH is not advertised.
func (se *session) AuthMechanisms() []string {
	if len(se.s.cfg().SMTP.Users) == 0 || !(se.tls || se.local) {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth starts a PLAIN or LOGIN exchange checked against smtp.users.
func (se *session) Auth(mech string) (sasl.Server, error) {
	if len(se.s.cfg().SMTP.Users) == 0 {
		return nil, errNoAuth
	}
	if !(se.tls || se.local) {
		return nil, errEncryptionRequired
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, user, pass string) error {
			if identity != "" && identity != user {
				return se.authResult(user, errors.New("authorization identity differs"))
			}
			return se.authResult(user, checkUser(se.s.cfg().SMTP.Users, user, pass))
		}), nil
	case sasl.Login:
		return &loginServer{check: func(user, pass string) error {
			return se.authResult(user, checkUser(se.s.cfg().SMTP.Users, user, pass))
		}}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// authResult records the outcome of one AUTH attempt and maps a failure to
// its reply.
func (se *session) authResult(user string, err error) error {
	if err == nil {
		se.user = user
		se.log.Info("authenticated", "user", user)
		return nil
	}
	se.authFailures++
	se.s.Metrics.SMTPRefused("auth", errAuthFailed.Code)
	se.log.Warn("authentication failed", "user", user, "err", err, "failures", se.authFailures)
	if se.authFailures >= maxAuthFailures {
		se.conn.kill()
		return errTooManyAuthFailures
	}
	return errAuthFailed
}

// Mail starts a transaction after checking who may send and the sender
// address.
func (se *session) Mail(from string, opts *smtp.MailOptions) error {
	if se.conn.isDraining() {
		return errShuttingDown
	}
	cfg := se.s.cfg()
	if se.user == "" {
		switch {
		case len(cfg.SMTP.Users) > 0:
			se.log.Info("MAIL refused: not authenticated", "from", from)
			return errAuthRequired
		case !se.local:
			se.log.Warn("MAIL refused: remote client and no SMTP users configured", "from", from)
			return errRelayDenied
		}
	}
	if from != "" {
		if err := checkAddress(from, opts.UTF8); err != nil {
			return &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 7},
				Message: "Bad sender address syntax: " + err.Error()}
		}
	}
	if max := int64(cfg.SMTP.MaxMessageSize); max > 0 && opts.Size > max {
		return errTooBig
	}
	se.from = from
	se.rcpts = nil
	se.conn.setTx(true)
	return nil
}

// Rcpt adds a recipient after checking its syntax and the recipient limit.
func (se *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if max := se.s.cfg().SMTP.MaxRecipients; max > 0 && len(se.rcpts) >= max {
		return errTooManyRcpts
	}
	if err := checkAddress(to, true); err != nil {
		return &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3},
			Message: "Bad recipient address syntax: " + err.Error()}
	}
	if !slices.ContainsFunc(se.rcpts, func(r string) bool { return sameAddress(r, to) }) {
		// A repeated recipient is accepted but gets one copy.
		se.rcpts = append(se.rcpts, to)
	}
	return nil
}

// sameAddress compares two mailboxes: the local part exactly, the domain
// case-insensitively.
func sameAddress(a, b string) bool {
	ia, ib := strings.LastIndexByte(a, '@'), strings.LastIndexByte(b, '@')
	return ia >= 0 && ib >= 0 && a[:ia] == b[:ib] && strings.EqualFold(a[ia:], b[ib:])
}

// spool hands the message to the spooler, with the SMTP AUTH user when
// it takes one.
func (se *session) spool(from string, rcpts []string, body io.Reader) (string, error) {
	if us, ok := se.s.spool.(relay.UserSpooler); ok && se.user != "" {
		return us.SpoolUser(se.user, from, rcpts, body)
	}
	return se.s.spool.Spool(from, rcpts, body)
}

// Data streams the message, with a Received header in front, into the
// spool. The reply names the queue id.
func (se *session) Data(r io.Reader) error {
	start := time.Now()
	// With BDAT, Data runs in its own goroutine and an RSET may end the
	// transaction under it: work on copies of the envelope.
	from, rcpts := se.from, slices.Clone(se.rcpts)
	cfg := se.s.cfg()
	_, bdat := r.(*io.PipeReader) // go-smtp hands BDAT chunks over through a pipe
	body := &sizeLimiter{r: r, max: int64(cfg.SMTP.MaxMessageSize), dots: dotScanner{bdat: bdat}}
	if !bdat && !se.tls {
		se.conn.startData()
	}
	hdr := receivedHeader(se.sc.Hostname(), se.remote, hostname(cfg), se.tls, se.user != "", start)
	id, err := se.spool(from, rcpts, withReceived(hdr, body))
	attrs := []any{"from", from, "rcpts", len(rcpts), "size", body.n,
		"duration", time.Since(start).Round(time.Microsecond)}
	if se.user != "" {
		attrs = append(attrs, "user", se.user)
	}
	switch {
	case body.tooBig:
		se.log.Warn("message refused: too big", append(attrs, "max", body.max)...)
		return errTooBig
	case errors.Is(body.err, errSmuggling):
		se.log.Warn("message refused: SMTP smuggling sequence", attrs...)
		return errBareLineEnd
	case errors.Is(body.err, errMissedEnd):
		// go-smtp still reads text the client sent after its end of
		// data: end the connection after the reply.
		se.conn.kill()
		se.log.Warn("message refused: end of data after a bare CR; closing the connection", attrs...)
		return errBareLineEnd
	case errors.Is(body.err, smtp.ErrTooLongLine):
		se.log.Warn("message refused: line too long", append(attrs, "max", MaxLineLength)...)
		return errLineTooLong
	case body.err != nil:
		if ne, ok := errors.AsType[net.Error](body.err); ok && ne.Timeout() {
			se.conn.kill() // go-smtp would wait the timeout again to drain
		}
		se.log.Warn("message not accepted: DATA aborted", append(attrs, "err", body.err)...)
		return errSpool
	case err != nil:
		se.log.Error("message not accepted: spool failed", append(attrs, "err", err)...)
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			return errDiskFull
		}
		return errSpool
	}
	se.log.Info("message queued", append([]any{"queue_id", id}, attrs...)...)
	if fn := se.s.OnAccepted; fn != nil && !se.local {
		if ap, err := netip.ParseAddrPort(se.remote.String()); err == nil {
			fn(ap.Addr().Unmap())
		}
	}
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0},
		Message: fmt.Sprintf("OK: queued as %s", id)}
}

// Reset ends the transaction.
func (se *session) Reset() {
	se.from = ""
	se.rcpts = nil
	se.conn.setTx(false)
}

// Logout ends the session.
func (se *session) Logout() error {
	se.conn.setTx(false)
	return nil
}

// sizeLimiter counts the bytes read from r and fails once more than max
// (when max > 0) have been read. go-smtp enforces the limit that was in force
// when the connection opened; this enforces the current one, and also notes
// go-smtp's own overflow.
//
// It also refuses SMTP smuggling sequences, see dotScanner.
type sizeLimiter struct {
	r      io.Reader
	max    int64
	n      int64
	tooBig bool
	err    error // a read error other than EOF (the client went away), or a smuggling sequence
	dots   dotScanner
}

func (l *sizeLimiter) Read(p []byte) (int, error) {
	if l.tooBig {
		return 0, smtp.ErrDataTooLarge
	}
	if l.err != nil {
		return 0, l.err
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	if serr := l.dots.scan(p[:n]); serr != nil {
		l.err = serr
		return 0, serr
	}
	if l.max > 0 && l.n > l.max || errors.Is(err, smtp.ErrDataTooLarge) {
		l.tooBig = true
		return 0, smtp.ErrDataTooLarge
	}
	if err != nil && err != io.EOF {
		// The client went away before the final dot (go-smtp reports
		// io.ErrUnexpectedEOF). Wrap it so no reader downstream can take
		// it for the normal end of a message: a truncated message must
		// never be spooled.
		l.err = err
		return n, fmt.Errorf("smtpd: DATA aborted: %w", err)
	}
	return n, err
}

// withReceived puts the Received header in front of the message. A leading
// mbox "From " line (a message saved from an mbox file) is dropped first,
// as sendmail and Postfix drop it on submission: it is no header field, and
// under our Received header it would be a misplaced envelope line. A
// message that then starts with white space is spooled without our header:
// that (malformed) first line would become a continuation of it.
func withReceived(hdr io.Reader, body io.Reader) io.Reader {
	var head [5]byte
	n, err := io.ReadFull(body, head[:])
	switch {
	case n == 0 && err == io.EOF:
		return hdr // an empty message
	case n == 0:
		return &errReader{err} // DATA failed: Spool sees the error
	}
	// A read error after the first bytes comes again from body.
	rest := io.MultiReader(bytes.NewReader(head[:n]), body)
	if string(head[:n]) == "From " {
		br := bufio.NewReader(body)
		err := skipLine(br)
		var next []byte
		if err == nil {
			next, err = br.Peek(1)
		}
		switch {
		case len(next) == 0 && err == io.EOF:
			return hdr // nothing after the From line
		case len(next) == 0:
			return &errReader{err}
		}
		rest, head[0] = br, next[0]
	}
	if head[0] == ' ' || head[0] == '\t' {
		return rest
	}
	return io.MultiReader(hdr, rest)
}

// skipLine reads up to and including the next line feed.
func skipLine(br *bufio.Reader) error {
	for {
		_, err := br.ReadSlice('\n')
		if err != bufio.ErrBufferFull {
			return err
		}
	}
}

// errReader returns err from every Read.
type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }
