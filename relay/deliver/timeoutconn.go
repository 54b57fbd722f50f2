package deliver

import (
	"net"
	"sync"
	"time"
)

// timeoutConn gives every write a deadline (go-smtp's client leaves the
// message data without one) and, while clampTo > 0, shortens the deadlines
// go-smtp sets to at most clampTo from now (its default of 5 minutes
// applies before its timeouts can be configured, and QUIT should not wait
// long).
//
// It also coalesces writes: go-smtp's client writes the message through a
// 4 KB buffer, one write system call per 4 KB. Writes are kept in wbuf and
// sent when it is full or before the next read: an SMTP client always reads
// the reply to what it wrote, so nothing waits in wbuf while the client
// waits for the server. A write error shows at the next write or read.
type timeoutConn struct {
	net.Conn
	timeout time.Duration

	mu      sync.Mutex
	clampTo time.Duration

	wbuf []byte // written, not sent yet; only the client's goroutine uses it
	werr error  // sticky error of a send
}

// writeBufSize holds a typical copy (50 KB newsletter) in one send.
const writeBufSize = 64 << 10

func (c *timeoutConn) clamp(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clampTo = d
}

func (c *timeoutConn) limit(t time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.clampTo > 0 {
		if max := time.Now().Add(c.clampTo); t.IsZero() || t.After(max) {
			return max
		}
	}
	return t
}

func (c *timeoutConn) SetDeadline(t time.Time) error     { return c.Conn.SetDeadline(c.limit(t)) }
func (c *timeoutConn) SetReadDeadline(t time.Time) error { return c.Conn.SetReadDeadline(c.limit(t)) }

func (c *timeoutConn) Write(b []byte) (int, error) {
	if c.werr != nil {
		return 0, c.werr
	}
	if len(c.wbuf)+len(b) > writeBufSize {
		if err := c.flush(); err != nil {
			return 0, err
		}
	}
	if len(b) >= writeBufSize {
		return c.send(b)
	}
	if c.wbuf == nil {
		c.wbuf = make([]byte, 0, writeBufSize)
	}
	c.wbuf = append(c.wbuf, b...)
	return len(b), nil
}

// Read sends what was written before waiting for the reply.
func (c *timeoutConn) Read(b []byte) (int, error) {
	if err := c.flush(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *timeoutConn) flush() error {
	if c.werr != nil || len(c.wbuf) == 0 {
		return c.werr
	}
	_, err := c.send(c.wbuf)
	c.wbuf = c.wbuf[:0]
	return err
}

func (c *timeoutConn) send(b []byte) (int, error) {
	if c.timeout > 0 {
		c.Conn.SetWriteDeadline(c.limit(time.Now().Add(c.timeout)))
	}
	n, err := c.Conn.Write(b)
	if err != nil {
		c.werr = err
	}
	return n, err
}
