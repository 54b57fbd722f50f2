package smtpd

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// rawClient is a line-level SMTP client, to see the exact replies.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := &rawClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.reply() // greeting
	return c
}

// reply reads one whole (possibly multi-line) reply and returns its last line.
func (c *rawClient) reply() string {
	c.t.Helper()
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading a reply: %v (got %q)", err, line)
		}
		if len(line) < 4 || line[3] != '-' {
			return strings.TrimRight(line, "\r\n")
		}
	}
}

func (c *rawClient) send(lines ...string) {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(strings.Join(lines, "\r\n") + "\r\n")); err != nil {
		c.t.Fatal(err)
	}
}

// A client told to go away by a shutdown hears why: "421 4.3.2 ... shutting
// down", not go-smtp's "421 4.4.2 Idle timeout" (issue 11). A real idle
// timeout keeps its own reply.
func TestShutdownReply(t *testing.T) {
	const want = "421 4.3.2 Service shutting down"
	t.Run("idle client sends QUIT", func(t *testing.T) {
		e := start(t, baseConfig(), nil)
		c := dialRaw(t, e.addr)
		c.send("EHLO client.test")
		c.reply()
		shutdown(t, e)
		c.send("QUIT")
		if got := c.reply(); !strings.HasPrefix(got, want) {
			t.Errorf("QUIT during shutdown: %q, want %q…", got, want)
		}
	})
	t.Run("transaction finishes, then QUIT", func(t *testing.T) {
		e := start(t, baseConfig(), nil)
		c := dialRaw(t, e.addr)
		c.send("EHLO client.test")
		c.reply()
		c.send("MAIL FROM:<a@example.com>", "RCPT TO:<b@example.com>", "DATA")
		for range 3 {
			c.reply()
		}
		c.send("Subject: during shutdown", "")
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			done <- e.srv.Shutdown(ctx)
		}()
		time.Sleep(50 * time.Millisecond) // the drain has begun
		c.send("body", ".")
		if got := c.reply(); !strings.HasPrefix(got, "250 ") {
			t.Fatalf("the transaction in progress: %q, want 250", got)
		}
		c.send("QUIT")
		if got := c.reply(); !strings.HasPrefix(got, want) {
			t.Errorf("QUIT after the last transaction: %q, want %q…", got, want)
		}
		if err := <-done; err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	t.Run("real idle timeout", func(t *testing.T) {
		e := start(t, baseConfig(), func(s *Server) { s.ReadTimeout = 100 * time.Millisecond })
		c := dialRaw(t, e.addr)
		if got := c.reply(); !strings.HasPrefix(got, "421 4.4.2 ") {
			t.Errorf("idle client: %q, want 421 4.4.2", got)
		}
	})
}
