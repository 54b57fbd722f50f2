package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// cmdLoad sends -m messages with -r recipients each over -s parallel SMTP
// sessions, like smtp-source, and records for every message the time from
// the end of DATA (the final ".") to the server's reply.
func cmdLoad(args []string) error {
	fs := newFlags("load")
	addr := fs.String("addr", "127.0.0.1:2525", "SMTP server")
	sessions := fs.Int("s", 10, "parallel sessions")
	total := fs.Int("m", 1000, "messages in all")
	rcpts := fs.Int("r", 3, "recipients per message")
	perConn := fs.Int("per-conn", 1, "messages per connection (1: new connection each, like smtp-source)")
	file := fs.String("msg", "", "message file (LF or CRLF line ends)")
	limit := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	body, err := readMessage(*file)
	if err != nil {
		return err
	}
	l := &loader{addr: *addr, rcpts: *rcpts, perConn: max(*perConn, 1), body: body,
		total: int64(*total), deadline: time.Now().Add(*limit)}
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < *sessions; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.worker()
		}()
	}
	wg.Wait()
	if unsent := l.total - int64(len(l.lat)) - l.failed.Load(); unsent > 0 {
		l.fail(fmt.Errorf("timed out with %d messages unsent", unsent), unsent)
	}
	secs := time.Since(start).Seconds()
	fmt.Printf("sent %d\nfailed %d\nsecs %.3f\nrate %.1f\n", len(l.lat), l.failed.Load(), secs, float64(len(l.lat))/secs)
	printLatencies("lat_", l.lat)
	if l.firstErr != nil {
		fmt.Fprintf(os.Stderr, "pxbench load: first error: %v\n", l.firstErr)
	}
	if l.failed.Load() > 0 {
		return fmt.Errorf("%d messages failed", l.failed.Load())
	}
	return nil
}

type loader struct {
	addr     string
	rcpts    int
	perConn  int
	body     []byte
	total    int64
	deadline time.Time

	next   atomic.Int64
	failed atomic.Int64

	mu       sync.Mutex
	lat      []time.Duration
	firstErr error
}

// worker opens connections and sends messages until all are taken.
func (l *loader) worker() {
	for time.Now().Before(l.deadline) {
		first := l.next.Add(int64(l.perConn)) - int64(l.perConn)
		if first >= l.total {
			return
		}
		n := min(int64(l.perConn), l.total-first)
		if sent, err := l.session(first, n); err != nil && sent < n {
			l.fail(err, n-sent)
		}
	}
}

// session sends messages first..first+n-1 over one connection. A message
// that fails counts as failed; the rest of the session's messages too.
func (l *loader) session(first, n int64) (sent int64, err error) {
	conn, err := net.DialTimeout("tcp", l.addr, 10*time.Second)
	if err != nil {
		return 0, err
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("bench.example"); err != nil {
		return 0, err
	}
	for i := first; i < first+n; i++ {
		d, err := l.send(c, i)
		if err != nil {
			return sent, err
		}
		l.mu.Lock()
		l.lat = append(l.lat, d)
		l.mu.Unlock()
		sent++
	}
	return sent, c.Quit()
}

func (l *loader) send(c *smtp.Client, i int64) (time.Duration, error) {
	if err := c.Mail("sender@bench.example", nil); err != nil {
		return 0, err
	}
	for j := 0; j < l.rcpts; j++ {
		if err := c.Rcpt(fmt.Sprintf("m%d-r%d@example.com", i, j), nil); err != nil {
			return 0, err
		}
	}
	w, err := c.Data()
	if err != nil {
		return 0, err
	}
	if _, err := w.Write(l.body); err != nil {
		return 0, err
	}
	start := time.Now()
	if err := w.Close(); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func (l *loader) fail(err error, n int64) {
	l.failed.Add(n)
	l.mu.Lock()
	if l.firstErr == nil {
		l.firstErr = err
	}
	l.mu.Unlock()
}

// readMessage reads a message file and makes every line end in CRLF.
func readMessage(path string) ([]byte, error) {
	if path == "" {
		return []byte("Subject: bench\r\n\r\nhello\r\n"), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")), nil
}
