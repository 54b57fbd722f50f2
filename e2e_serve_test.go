package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// sendMail submits one message through the relay with go-smtp's client and
// returns the text of the 250 reply.
func sendMail(t *testing.T, addr, from string, to []string, msg string) (string, error) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if err := c.Hello("e2e.test"); err != nil {
		return "", err
	}
	if err := c.Mail(from, nil); err != nil {
		return "", err
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt, nil); err != nil {
			return "", err
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	c.Quit()
	return resp.StatusText, nil
}

// TestServeDefaults starts the real binary with no config file anywhere in
// an empty HOME: both listeners come up on the built-in addresses, /healthz
// answers, data_dir and the secrets file are private, SIGTERM exits cleanly.
func TestServeDefaults(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:2525", "127.0.0.1:8025"} {
		if dialable(addr) {
			t.Skipf("%s is taken on this machine; the defaults test needs it free", addr)
		}
	}
	home := t.TempDir()
	cmd := exec.Command(binPath, "serve", "--log-format", "json")
	cmd.Dir = home
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	}()
	deadline := time.Now().Add(15 * time.Second)
	for !(dialable("127.0.0.1:2525") && dialable("127.0.0.1:8025")) {
		if time.Now().After(deadline) {
			t.Fatalf("default listeners not up\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := http.Get("http://127.0.0.1:8025/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 100)
	n, _ := resp.Body.Read(body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(body[:n])) != `{"status":"ok"}` {
		t.Fatalf("healthz: %d %q", resp.StatusCode, body[:n])
	}
	dataDir := filepath.Join(home, ".local", "state", "pixelrelay")
	assertMode(t, dataDir, 0o700)
	assertMode(t, filepath.Join(dataDir, "secrets.json"), 0o600)
	for _, want := range []string{"127.0.0.1:2525", "outbox", "pixelrelay opens"} {
		if !logged(logs, want) {
			t.Errorf("start-up log does not mention %q:\n%s", want, logs.String())
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit within 30s of SIGTERM")
	}
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != want {
		t.Errorf("%s: mode %v, want %v", path, st.Mode().Perm(), want)
	}
}

// TestServeRefusesOpenRelay: a non-loopback SMTP listener without users.
func TestServeRefusesOpenRelay(t *testing.T) {
	in := newInstance(t, "")
	cfg, _ := os.ReadFile(in.cfgPath)
	bad := strings.Replace(string(cfg), in.smtpAddr, "0.0.0.0:0", 1)
	os.WriteFile(in.cfgPath, []byte(bad), 0o600)
	// Should the refusal break, serve would run: stop it after a while
	// rather than at the suite's timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "serve", "--config", in.cfgPath)
	cmd.Env = in.env
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("serve started on a non-loopback address without smtp.users (killed after 20s): %s", out)
	}
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("want exit 1, got %v: %s", err, out)
	}
	if !strings.Contains(string(out), "smtp.listen") || !strings.Contains(string(out), "smtp.users") {
		t.Fatalf("refusal should name smtp.listen and smtp.users: %s", out)
	}
}

// TestEndToEndTrackedCopies: one message to three recipients (one in Bcc)
// arrives as three tracked copies, each with its own pixel; fetching a
// pixel shows up in `pixelrelay opens`.
func TestEndToEndTrackedCopies(t *testing.T) {
	in := newInstance(t, "")
	in.start()
	msg := "Bcc: carol@example.net\r\n" + htmlMessage("me@example.com", []string{"alice@example.org", "bob@example.org"}, "quarterly numbers")
	reply, err := sendMail(t, in.smtpAddr, "me@example.com", []string{"alice@example.org", "bob@example.org", "carol@example.net"}, msg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(reply, "queued as") {
		t.Errorf("250 reply should name the queue id: %q", reply)
	}
	copies := in.waitOutbox(3, 10*time.Second)
	seen := map[string]bool{}
	for _, c := range copies {
		if strings.Contains(strings.ToLower(c), "\nbcc:") || strings.HasPrefix(strings.ToLower(c), "bcc:") {
			t.Errorf("Bcc leaked into a copy:\n%s", c)
		}
		urls := pixelURLs(c)
		if len(urls) != 1 {
			t.Fatalf("copy has %d pixels, want 1:\n%s", len(urls), c)
		}
		if seen[urls[0]] {
			t.Fatalf("two copies share pixel %s", urls[0])
		}
		seen[urls[0]] = true
	}
	var pixel string
	for u := range seen {
		pixel = u
	}
	req, _ := http.NewRequest("GET", pixel, nil)
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.4.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/gif" {
		t.Fatalf("pixel: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var opens struct {
		Opens []struct {
			TrackingID string `json:"tracking_id"`
			Recipient  string `json:"recipient"`
			Subject    string `json:"subject"`
		} `json:"opens"`
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(opens.Opens) == 0 && time.Now().Before(deadline) {
		in.api("/api/opens", &opens)
		time.Sleep(100 * time.Millisecond)
	}
	if len(opens.Opens) != 1 || opens.Opens[0].Subject != "quarterly numbers" {
		t.Fatalf("opens after one fetch: %+v", opens.Opens)
	}
	out, errOut, code := in.cli("opens", "--to", strings.ToUpper(opens.Opens[0].Recipient))
	if code != 0 || !strings.Contains(out, "quarterly numbers") {
		t.Fatalf("pixelrelay opens --to: exit %d\n%s%s", code, out, errOut)
	}
	if err := in.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}

// TestClientGoneMidDataQueuesNothing: a client that closes the connection
// before the final dot has not sent a message; nothing may be delivered.
func TestClientGoneMidDataQueuesNothing(t *testing.T) {
	in := newInstance(t, "")
	in.start()
	c, err := net.Dial("tcp", in.smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	expect := func(code string) {
		t.Helper()
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(line, code) {
				t.Fatalf("got %q, want %s", line, code)
			}
			if len(line) > 3 && line[3] == ' ' {
				return
			}
		}
	}
	expect("220")
	for _, step := range []struct{ cmd, code string }{
		{"EHLO cut.test", "250"}, {"MAIL FROM:<me@example.com>", "250"},
		{"RCPT TO:<alice@example.org>", "250"}, {"DATA", "354"},
	} {
		fmt.Fprintf(c, "%s\r\n", step.cmd)
		expect(step.code)
	}
	fmt.Fprintf(c, "Subject: half\r\nContent-Type: text/html\r\n\r\n<p>half a mess")
	c.Close()
	time.Sleep(time.Second)
	if n := len(in.outbox()); n != 0 {
		t.Fatalf("%d copies of a message the client never finished", n)
	}
	if out, _, _ := in.cli("queue"); !strings.Contains(out, "empty") {
		t.Fatalf("queue after an abandoned DATA:\n%s", out)
	}
}

// TestSecondServeOnSameDataDir: the second instance says why it cannot
// start instead of a bare timeout.
func TestSecondServeOnSameDataDir(t *testing.T) {
	in := newInstance(t, "")
	in.start()
	other := newInstance(t, "")
	cfg, _ := os.ReadFile(other.cfgPath)
	os.WriteFile(other.cfgPath, []byte(strings.Replace(string(cfg), other.dir, in.dir, 1)), 0o600)
	cmd := exec.Command(binPath, "serve", "--config", other.cfgPath)
	cmd.Env = other.env
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("want exit 1, got %v: %s", err, out)
	}
	if !strings.Contains(string(out), "another pixelrelay serve") {
		t.Fatalf("no hint about the other instance: %s", out)
	}
}
