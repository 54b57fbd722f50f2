package smtpd

import (
	"bytes"
	"net"
	"sync"
	"time"
)

// clientConn wraps a client's net.Conn. It applies the read timeout to every
// read (so a slow but steady DATA upload is not cut off, while an idle client
// is), and implements graceful shutdown: once draining, a read outside a
// mail transaction fails at once with a timeout, which go-smtp answers with
// its idle-timeout reply before closing; Write turns that reply into the
// shutting-down one ("421 4.3.2"), so the client (one that sends QUIT, say)
// is told why.
type clientConn struct {
	net.Conn
	timeout time.Duration

	mu       sync.Mutex
	draining bool
	inTx     bool
	killed   bool
	// dataPhase is set while go-smtp reads DATA on a plain-text
	// connection, until the next reply is written; tail holds the last
	// bytes read, to notice an end of data go-smtp missed (see guard.go).
	dataPhase bool
	tail      [len(endOfData)]byte

	closeOnce sync.Once
	closed    chan struct{}
}

func newClientConn(c net.Conn, timeout time.Duration) *clientConn {
	return &clientConn{Conn: c, timeout: timeout, closed: make(chan struct{})}
}

var past = time.Unix(1, 0)

// Read sets the read deadline, then reads. In the data phase, a read that
// follows an end of data the client already sent fails with errMissedEnd:
// go-smtp did not see that end and would wait for text that never comes.
func (c *clientConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	if c.dataPhase && string(c.tail[:]) == endOfData {
		c.mu.Unlock()
		return 0, errMissedEnd
	}
	c.Conn.SetReadDeadline(c.deadline())
	c.mu.Unlock()
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.mu.Lock()
		c.keepTail(b[:n])
		c.mu.Unlock()
	}
	return n, err
}

// keepTail appends p to the last bytes read; c.mu is held.
func (c *clientConn) keepTail(p []byte) {
	t := c.tail[:]
	if len(p) >= len(t) {
		copy(t, p[len(p)-len(t):])
		return
	}
	copy(t, t[len(p):])
	copy(t[len(t)-len(p):], p)
}

// go-smtp's reply to a read timeout, and what a drained connection is told
// instead.
const (
	idleTimeoutReply = "421 4.4.2 "
	shuttingDown     = "421 4.3.2 Service shutting down, closing connection; try again later\r\n"
)

// Write writes a reply; a reply ends the data phase.
func (c *clientConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.dataPhase = false
	drained := c.draining && !c.inTx && !c.killed
	c.mu.Unlock()
	if drained && bytes.HasPrefix(b, []byte(idleTimeoutReply)) {
		// The timeout is the drain's: say so.
		if _, err := c.Conn.Write([]byte(shuttingDown)); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// startData marks the start of the DATA text (go-smtp has sent 354).
func (c *clientConn) startData() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dataPhase = true
}

// deadline returns the read deadline to use now; c.mu is held.
func (c *clientConn) deadline() time.Time {
	if c.killed || c.draining && !c.inTx {
		return past
	}
	if c.timeout <= 0 {
		return time.Time{}
	}
	return time.Now().Add(c.timeout)
}

// SetReadDeadline is ignored: Read manages the read deadline itself.
func (c *clientConn) SetReadDeadline(time.Time) error { return nil }

// SetDeadline only sets the write deadline, see SetReadDeadline.
func (c *clientConn) SetDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(t) }

// setTx records whether a mail transaction (MAIL until the end of DATA or
// RSET) is in progress.
func (c *clientConn) setTx(v bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inTx = v
	if c.draining && !v {
		c.Conn.SetReadDeadline(past)
	}
}

// drain makes the connection end after its current transaction, or now if
// none is in progress.
func (c *clientConn) drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining = true
	if !c.inTx {
		c.Conn.SetReadDeadline(past)
	}
}

// kill makes the next read fail, ending the connection with a 421.
func (c *clientConn) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.killed = true
	c.Conn.SetReadDeadline(past)
}

func (c *clientConn) isDraining() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.draining
}

// Close closes the connection once.
func (c *clientConn) Close() error {
	err := net.ErrClosed
	c.closeOnce.Do(func() {
		err = c.Conn.Close()
		close(c.closed)
	})
	return err
}

// oneConnListener hands out a single connection, then blocks until that
// connection is closed. It lets a go-smtp Server serve exactly one conn.
type oneConnListener struct {
	conn *clientConn
	once sync.Once
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = l.conn })
	if c != nil {
		return c, nil
	}
	<-l.conn.closed
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return l.conn.LocalAddr() }
