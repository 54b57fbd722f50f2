package main

// Issue 7, tracker side, through the real binary: secrets file permissions
// at start, and the tracker's timeouts and refusals as `serve` wires them.

import (
	"bufio"
	"errors"
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
)

// hostileHTTPServeOnce runs serve and returns its output and exit code if
// it exits within 15s; ok is false if it was still running (then killed).
func hostileHTTPServeOnce(t *testing.T, in *instance) (out string, code int, exited bool) {
	t.Helper()
	cmd := exec.Command(binPath, "serve", "--config", in.cfgPath)
	cmd.Env = in.env
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return logs.String(), ee.ExitCode(), true
		}
		return logs.String(), 0, true
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
		return logs.String(), -1, false
	}
}

// TestHostileHTTPSecretsFileMode: serve fixes a group/world-readable
// secrets file to 0600 with a warning naming it and its old mode, and
// refuses to start on one writable by group or others.
func TestHostileHTTPSecretsFileMode(t *testing.T) {
	in := newInstance(t, "")
	in.start()
	if err := in.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("first run: %v", err)
	}
	secrets := filepath.Join(in.dir, "secrets.json")
	assertMode(t, secrets, 0o600)

	if err := os.Chmod(secrets, 0o644); err != nil {
		t.Fatal(err)
	}
	in.start()
	if err := in.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("run with 0644: %v", err)
	}
	logs := in.logs.String()
	if !strings.Contains(logs, `"level":"WARN"`) || !strings.Contains(logs, secrets) || !strings.Contains(logs, `"old_mode":"0644"`) {
		t.Errorf("no warning naming %s and mode 0644:\n%s", secrets, logs)
	}
	assertMode(t, secrets, 0o600)

	for _, mode := range []os.FileMode{0o666, 0o620, 0o602} {
		if err := os.Chmod(secrets, mode); err != nil {
			t.Fatal(err)
		}
		out, code, exited := hostileHTTPServeOnce(t, in)
		if !exited || code != 1 || !strings.Contains(out, secrets) || !strings.Contains(out, "writable by group or others") {
			t.Errorf("mode %#o: exited %v, code %d, output:\n%s", mode, exited, code, out)
		}
		assertMode(t, secrets, mode) // left for its owner to check
	}
}

// TestHostileHTTPBinary: the running binary's tracker cuts off slow
// connections (ReadHeaderTimeout as serve configures it) while serving
// others, answers traversal paths with the pixel or 404, and refuses the
// admin key in a query string.
func TestHostileHTTPBinary(t *testing.T) {
	in := newInstance(t, "")
	in.start()
	base := "http://" + in.httpAddr

	const slow = 20
	var wg sync.WaitGroup
	closedAfter := make([]time.Duration, slow)
	for i := range slow {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", in.httpAddr)
			if err != nil {
				closedAfter[i] = time.Hour
				return
			}
			defer c.Close()
			began := time.Now()
			c.SetReadDeadline(began.Add(20 * time.Second))
			go func() {
				for _, b := range []byte("GET /o/abc.gif HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 2000)) {
					if _, err := c.Write([]byte{b}); err != nil {
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
			}()
			io.Copy(io.Discard, c)
			closedAfter[i] = time.Since(began)
		}()
	}
	time.Sleep(300 * time.Millisecond)
	for _, p := range []string{"/o/" + strings.Repeat("a", 48) + ".gif", "/o/..%2f..%2fsecrets.json.gif", "/o/../api/status"} {
		t0 := time.Now()
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatalf("%s during the slow connections: %v", p, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/gif" || len(body) != 43 || time.Since(t0) > 2*time.Second {
			t.Errorf("%s: %d %q %d bytes in %v", p, resp.StatusCode, resp.Header.Get("Content-Type"), len(body), time.Since(t0))
		}
	}
	c, err := net.Dial("tcp", in.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /%2e%2e/%2e%2e/secrets.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	c.Close()
	if err != nil || resp.StatusCode != 404 {
		t.Errorf("traversal outside /o/: %v %v", resp, err)
	}
	for _, q := range []string{"key", "admin_key", "token"} {
		resp, err := http.Get(base + "/api/status?" + q + "=test-admin-key")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("?%s= with the right key: %d", q, resp.StatusCode)
		}
	}
	wg.Wait()
	for i, d := range closedAfter {
		if d > 10*time.Second {
			t.Errorf("slow connection %d open for %v: the header timeout did not fire", i, d)
		}
	}
}
