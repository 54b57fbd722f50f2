package main

// End-to-end tests: the real binary, real listeners, real clients, real
// crashes. Each test builds its own data_dir and config on free loopback
// ports.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pixelrelay/internal/testport"
)

var binPath string

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.list"); f != nil && f.Value.String() != "" {
		os.Exit(m.Run()) // only listing tests: no binary needed
	}
	dir, err := os.MkdirTemp("", "pixelrelay-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "pixelrelay")
	build := exec.Command("go", "build", "-race", "-o", binPath, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building pixelrelay:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a loopback address nobody listens on, kept for the test
// across serve restarts (see internal/testport: a port taken from :0 and
// released could be handed to another process before serve binds it again).
func freePort(t *testing.T) string {
	t.Helper()
	return testport.Addr(t)
}

// instance is one running `pixelrelay serve`.
type instance struct {
	t        *testing.T
	dir      string // data_dir
	cfgPath  string
	smtpAddr string
	httpAddr string
	cmd      *exec.Cmd
	logs     *syncBuffer
	done     chan error
	env      []string
	args     []string // more serve flags (--tracker-only)
	noSMTP   bool     // serve --tracker-only: no SMTP listener to wait for
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newInstance writes a config (extra TOML appended after the basics) and
// returns an instance that is not started yet.
func newInstance(t *testing.T, extra string) *instance {
	t.Helper()
	return newInstanceTracking(t, "", extra)
}

// newInstanceTracking also adds lines to the [tracking] table.
func newInstanceTracking(t *testing.T, tracking, extra string) *instance {
	t.Helper()
	dir := t.TempDir()
	in := &instance{
		t:        t,
		dir:      filepath.Join(dir, "data"),
		cfgPath:  filepath.Join(dir, "pixelrelay.toml"),
		smtpAddr: freePort(t),
		httpAddr: freePort(t),
		env:      append(os.Environ(), "PIXELRELAY_ADMIN_KEY=test-admin-key", "HOME="+dir),
	}
	cfg := fmt.Sprintf(`data_dir = %q

[smtp]
listen = %q

[http]
listen = %q

[tracking]
base_url = "http://%s"
%s

[queue]
min_retry = "200ms"
max_retry = "1s"
%s
`, in.dir, in.smtpAddr, in.httpAddr, in.httpAddr, tracking, extra)
	if err := os.WriteFile(in.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return in
}

// start runs serve and waits until both listeners answer.
func (in *instance) start() {
	in.t.Helper()
	in.logs = &syncBuffer{}
	in.cmd = exec.Command(binPath, append([]string{"serve", "--config", in.cfgPath, "--log-format", "json"}, in.args...)...)
	in.cmd.Env = in.env
	in.cmd.Stdout, in.cmd.Stderr = in.logs, in.logs
	if err := in.cmd.Start(); err != nil {
		in.t.Fatal(err)
	}
	in.done = make(chan error, 1)
	go func() { in.done <- in.cmd.Wait() }()
	in.t.Cleanup(func() {
		if in.cmd.ProcessState == nil {
			in.cmd.Process.Kill()
			<-in.done
		}
		if in.t.Failed() {
			in.t.Logf("serve logs:\n%s", in.logs.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-in.done:
			in.t.Fatalf("serve exited early: %v\n%s", err, in.logs.String())
		default:
		}
		// HTTP first, then SMTP up to its greeting: every probe that
		// reached the SMTP listener has been taken in (and counted as a
		// session) by the time start returns.
		if dialable(in.httpAddr) && (in.noSMTP || smtpGreets(in.smtpAddr)) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	in.t.Fatalf("serve did not listen within 60s\n%s", in.logs.String())
}

func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// logged reports whether logs hold want, waiting up to 10s for it: serve
// writes some lines a moment after the state a test waited for shows (the
// start-up hints after the listeners, a problem's key after "config file is
// invalid").
func logged(logs *syncBuffer, want string) bool {
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), want); {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// smtpGreets reports whether an SMTP server at addr answers with its 220
// greeting.
func smtpGreets(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "220")
}

// stop sends sig and waits for the exit.
func (in *instance) stop(sig os.Signal) error {
	in.t.Helper()
	in.cmd.Process.Signal(sig)
	select {
	case err := <-in.done:
		return err
	case <-time.After(30 * time.Second):
		in.t.Fatalf("serve did not stop within 30s after %v", sig)
		return nil
	}
}

// cli runs a pixelrelay command against this instance's config.
func (in *instance) cli(args ...string) (stdout, stderr string, code int) {
	in.t.Helper()
	args = append(args, "--config", in.cfgPath)
	cmd := exec.Command(binPath, args...)
	cmd.Env = in.env
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		in.t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// outbox lists the delivered copies (outbox upstream).
func (in *instance) outbox() []string {
	in.t.Helper()
	files, _ := filepath.Glob(filepath.Join(in.dir, "outbox", "new", "*"))
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			in.t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// waitOutbox waits until the outbox holds n copies.
func (in *instance) waitOutbox(n int, within time.Duration) []string {
	in.t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := in.outbox()
		if len(got) >= n || time.Now().After(deadline) {
			if len(got) < n {
				in.t.Fatalf("outbox has %d copies, want %d", len(got), n)
			}
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (in *instance) api(path string, v any) {
	in.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+in.httpAddr+path, nil)
	req.Header.Set("Authorization", "Bearer test-admin-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		in.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		in.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		in.t.Fatalf("GET %s: %v: %s", path, err, body)
	}
}

// smtpSend submits one message with a minimal hand-driven conversation is
// avoided: tests use go-smtp's client (see sendMail in e2e_helpers_test.go).

func htmlMessage(from string, to []string, subject string) string {
	return "From: " + from + "\r\n" +
		"To: " + strings.Join(to, ", ") + "\r\n" +
		"Subject: " + subject + "\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/html; charset=utf-8\r\n" +
		"\r\n" +
		"<html><body><p>" + subject + "</p></body></html>\r\n"
}

// pixelURLs returns the pixel URLs found in a copy.
func pixelURLs(copy string) []string {
	var urls []string
	sc := bufio.NewScanner(strings.NewReader(copy))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for {
			i := strings.Index(line, "/o/")
			if i < 0 {
				break
			}
			start := strings.LastIndex(line[:i], "\"") + 1
			end := strings.Index(line[i:], ".gif")
			if end < 0 {
				break
			}
			urls = append(urls, line[start:i+end+4])
			line = line[i+end+4:]
		}
	}
	return urls
}

var _ = syscall.SIGTERM
