package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needTool finds a real client program; in CI a missing one fails.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil && os.Getenv("CI") != "" {
		t.Fatalf("%s not installed: .ci/run must install it", name)
	}
	if err != nil {
		t.Skipf("%s not installed (apt-get install -y %s)", name, name)
	}
	return p
}

// TestRealClients: swaks, msmtp and Python's smtplib each send one HTML
// message to two recipients and a Bcc through the real binary; each
// recipient's copy arrives with its own pixel, and Bcc never leaks.
func TestRealClients(t *testing.T) {
	body := "From: me@example.com\r\nTo: alice@example.org, bob@example.org\r\n" +
		"Bcc: carol@example.net\r\nSubject: from a real client\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>hello</p></body></html>\r\n"
	rcpts := []string{"alice@example.org", "bob@example.org", "carol@example.net"}
	clients := []struct {
		name string
		run  func(t *testing.T, host, port, file string) *exec.Cmd
	}{
		{"swaks", func(t *testing.T, host, port, file string) *exec.Cmd {
			return exec.Command(needTool(t, "swaks"), "--server", host, "--port", port,
				"--from", "me@example.com", "--to", strings.Join(rcpts, ","), "--data", file)
		}},
		{"msmtp", func(t *testing.T, host, port, file string) *exec.Cmd {
			cmd := exec.Command(needTool(t, "msmtp"), "--host="+host, "--port="+port,
				"--auth=off", "--tls=off", "--from=me@example.com")
			cmd.Args = append(cmd.Args, rcpts...)
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			cmd.Stdin = f
			return cmd
		}},
		{"python3 smtplib", func(t *testing.T, host, port, file string) *exec.Cmd {
			script := `import smtplib, sys
with smtplib.SMTP(sys.argv[1], int(sys.argv[2])) as s:
    s.sendmail("me@example.com", sys.argv[4:], open(sys.argv[3], "rb").read())`
			return exec.Command(needTool(t, "python3"), append([]string{"-c", script, host, port, file}, rcpts...)...)
		}},
	}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			in := newInstance(t, "")
			in.start()
			file := filepath.Join(t.TempDir(), "msg.eml")
			os.WriteFile(file, []byte(body), 0o600)
			host, port, _ := net.SplitHostPort(in.smtpAddr)
			cmd := c.run(t, host, port, file)
			cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", c.name, err, out)
			}
			copies := in.waitOutbox(3, 10*time.Second)
			got := deliveredTo(t, copies)
			pixels := map[string]bool{}
			for _, cp := range copies {
				if strings.Contains(strings.ToLower(cp), "\nbcc:") {
					t.Errorf("Bcc leaked:\n%s", cp)
				}
				urls := pixelURLs(cp)
				if len(urls) != 1 || pixels[urls[0]] {
					t.Errorf("copy has pixels %v (seen %v)", urls, pixels)
				}
				if len(urls) > 0 {
					pixels[urls[0]] = true
				}
			}
			for _, r := range rcpts {
				if got[r] != 1 {
					t.Errorf("%s got %d copies, want 1 (all: %v)", r, got[r], got)
				}
			}
		})
	}
}
