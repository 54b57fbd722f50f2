package smtpd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"pixelrelay/config"
	"pixelrelay/relay"
	"pixelrelay/relay/queue"
	"pixelrelay/relay/spool"
)

// diskFullUpstream keeps what the queue delivers.
type diskFullUpstream struct {
	mu   sync.Mutex
	msgs []string
}

func (u *diskFullUpstream) Deliver(_ context.Context, _ string, _ []string, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.msgs = append(u.msgs, string(b))
	return nil
}

func (u *diskFullUpstream) Close() error { return nil }

// count returns how many delivered messages contain marker.
func (u *diskFullUpstream) count(marker string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, m := range u.msgs {
		if strings.Contains(m, marker) {
			n++
		}
	}
	return n
}

// diskFullFault fails chosen spool write steps with ENOSPC.
type diskFullFault struct {
	mu   sync.Mutex
	full map[string]bool
	hits int
}

func (f *diskFullFault) fault(step string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.full[step] {
		f.hits++
		return syscall.ENOSPC
	}
	return nil
}

func (f *diskFullFault) set(step string, full bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.full[step] = full
}

func (f *diskFullFault) injected() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits
}

// diskFullRelay is smtpd in front of the real queue and spool.
type diskFullRelay struct {
	addr  string
	dir   string // the spool directory
	q     *queue.Queue
	up    *diskFullUpstream
	fault *diskFullFault
}

// diskFullStart runs the server on 127.0.0.1 with a queue spooling under
// dir (a fault hook when fault is set).
func diskFullStart(t *testing.T, dir string, fault bool) *diskFullRelay {
	t.Helper()
	cfg := baseConfig()
	cfg.Queue.MinRetry = config.Duration(10 * time.Millisecond)
	cfg.Queue.MaxRetry = config.Duration(50 * time.Millisecond)
	cfg.Tracking.BaseURL = "http://127.0.0.1:8025"
	h := &holder{}
	h.set(cfg)
	r := &diskFullRelay{dir: dir, up: &diskFullUpstream{}, fault: &diskFullFault{full: map[string]bool{}}}
	opt := queue.Options{
		Dir:      dir,
		Config:   h.get,
		Upstream: func(string) relay.Upstream { return r.up },
		Log:      slog.New(slog.DiscardHandler),
	}
	if fault {
		opt.SpoolFault = r.fault.fault
	}
	q, err := queue.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	q.Start()
	r.q = q
	s := New(h.get, q, slog.New(slog.DiscardHandler))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = l.Addr().String()
	go s.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		q.Close()
	})
	return r
}

func (r *diskFullRelay) dial(t *testing.T) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(r.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// diskFullMessage is a message of about size bytes naming marker.
func diskFullMessage(marker string, size int) string {
	line := strings.Repeat("x", 76) + "\r\n"
	return "From: a@example.com\r\nTo: b@example.com\r\nSubject: " + marker + "\r\n\r\n" +
		strings.Repeat(line, size/len(line)) + marker + "\r\n"
}

// diskFullRefused checks err is the temporary reply for a message that
// could not be spooled for want of space: 452 4.3.1 (RFC 5321 4.2.2
// "insufficient system storage"; RFC 3463 "mail system full").
func diskFullRefused(t *testing.T, err error) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("DATA = %v (%T), want a 452 reply", err, err)
	}
	if se.Code != 452 || se.EnhancedCode != (smtp.EnhancedCode{4, 3, 1}) {
		t.Fatalf("DATA reply %d %v %q, want 452 4.3.1", se.Code, se.EnhancedCode, se.Message)
	}
}

// diskFullLeftovers lists what a refused message left in the spool
// directory: temporary files and message files.
func diskFullLeftovers(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") || strings.HasSuffix(e.Name(), ".msg") {
			out = append(out, e.Name())
		}
	}
	return out
}

func diskFullWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDiskFullSpooling: over a real SMTP conversation with the real queue
// and spool, a full disk at each step of spooling (data written, file
// fsync, rename, directory fsync) answers 452 4.3.1, leaves no temporary
// or partial message file and nothing is delivered; the same connection
// stays usable, and once there is room the next message is accepted and
// delivered exactly once. A full disk for the states journal does not stop
// a message from being accepted and delivered.
func TestDiskFullSpooling(t *testing.T) {
	for _, tc := range []struct {
		step   string
		accept bool // the message is still accepted (250)
	}{
		{spool.StepWrite, false},
		{spool.StepFsync, false},
		{spool.StepRename, false},
		{spool.StepDirSync, false},
		{spool.StepState, true},
	} {
		t.Run(tc.step, func(t *testing.T) {
			r := diskFullStart(t, filepath.Join(t.TempDir(), "spool"), true)
			c := r.dial(t)
			r.fault.set(tc.step, true)
			refusedMsg := diskFullMessage("refused-"+tc.step, 300<<10)
			_, err := send(c, "a@example.com", []string{"b@example.com"}, refusedMsg)
			if tc.accept {
				if err != nil {
					t.Fatalf("DATA with a full states journal: %v", err)
				}
				diskFullWait(t, "delivery", func() bool { return r.up.count("refused-"+tc.step) == 1 && r.q.Len() == 0 })
				if r.fault.injected() == 0 {
					t.Fatalf("no fault injected at %s", tc.step)
				}
				return
			}
			if r.fault.injected() == 0 {
				t.Fatalf("no fault injected at %s", tc.step)
			}
			diskFullRefused(t, err)
			if left := diskFullLeftovers(t, r.dir); len(left) > 0 {
				t.Fatalf("left in the spool after 452: %v", left)
			}
			if n := r.q.Len(); n != 0 {
				t.Fatalf("queue holds %d messages after 452", n)
			}
			if err := c.Noop(); err != nil {
				t.Fatalf("connection unusable after 452: %v", err)
			}
			r.fault.set(tc.step, false)
			id, err := send(c, "a@example.com", []string{"b@example.com"}, diskFullMessage("accepted-"+tc.step, 300<<10))
			if err != nil {
				t.Fatalf("DATA once there is room: %v", err)
			}
			diskFullWait(t, "delivery", func() bool { return r.up.count("accepted-"+tc.step) == 1 && r.q.Len() == 0 })
			time.Sleep(20 * time.Millisecond)
			if n := r.up.count("refused-" + tc.step); n != 0 {
				t.Errorf("the refused message was delivered %d times", n)
			}
			if n := r.up.count("accepted-" + tc.step); n != 1 {
				t.Errorf("the accepted message (%s) was delivered %d times", id, n)
			}
		})
	}
}

// TestDiskFullTmpfs: the same on a real 1 MB tmpfs filled up by another
// file: the kernel's own ENOSPC gives 452, nothing is left behind, and
// once the file is removed the message is accepted and delivered. It needs
// the right to mount (root outside a restricted container).
func TestDiskFullTmpfs(t *testing.T) {
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
		t.Skipf("cannot mount a 1 MB tmpfs here (%v): the injected-fault test TestDiskFullSpooling covers this", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	r := diskFullStart(t, filepath.Join(mnt, "spool"), false)
	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("f"), 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	// Room for the envelope but not the message: the write fails part way.
	if err := os.Truncate(filler, diskFullSize(t, filler)-64<<10); err != nil {
		t.Fatal(err)
	}

	c := r.dial(t)
	_, err = send(c, "a@example.com", []string{"b@example.com"}, diskFullMessage("too-big-for-the-disk", 300<<10))
	diskFullRefused(t, err)
	if left := diskFullLeftovers(t, r.dir); len(left) > 0 {
		t.Fatalf("left in the spool after 452: %v", left)
	}
	if err := c.Noop(); err != nil {
		t.Fatalf("connection unusable after 452: %v", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if _, err := send(c, "a@example.com", []string{"b@example.com"}, diskFullMessage("room-again", 300<<10)); err != nil {
		t.Fatalf("DATA once there is room: %v", err)
	}
	diskFullWait(t, "delivery", func() bool { return r.up.count("room-again") == 1 && r.q.Len() == 0 })
	if n := r.up.count("too-big-for-the-disk"); n != 0 {
		t.Errorf("the refused message was delivered %d times", n)
	}
}

func diskFullSize(t *testing.T, name string) int64 {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
