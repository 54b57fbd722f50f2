package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"pixelrelay/internal/dovecottest"
	"pixelrelay/internal/oauthtest"
	"pixelrelay/relay/smtptest"
)

// initServers are a mail account's SMTP server (go-smtp, STARTTLS and
// AUTH) and IMAP server (Dovecot), and a CA file trusting both.
func initServers(t *testing.T, user, pass string) (up *smtptest.Server, imap *dovecottest.Server, caFile string) {
	t.Helper()
	up = smtptest.Start(t, smtptest.Script{RequireTLS: true, AuthUsers: map[string]string{user: pass}})
	imap = dovecottest.Start(t, dovecottest.Options{Users: map[string]string{user: pass}, Mailboxes: dovecottest.GmailLike})
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	a, _ := os.ReadFile(up.CAFile)
	b, _ := os.ReadFile(imap.CAFile)
	if err := os.WriteFile(caFile, slices.Concat(a, b), 0o644); err != nil {
		t.Fatal(err)
	}
	return up, imap, caFile
}

// initCmd is the real binary's init with its own home.
func initCmd(t *testing.T, args ...string) (*exec.Cmd, string) {
	dir := t.TempDir()
	cmd := exec.Command(binPath, append([]string{"init"}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"XDG_STATE_HOME="+filepath.Join(dir, "state"), "PIXELRELAY_CONFIG=", "PIXELRELAY_UPSTREAM_PASSWORD=")
	cmd.Dir = dir
	return cmd, dir
}

// TestInitAtTerminal answers init's questions on a terminal (a pty): the
// password is read with echo off, the config lands at the default place,
// and the checks sign in to the real servers.
func TestInitAtTerminal(t *testing.T) {
	const user, pass = "me@example.org", "s3cret-app-password"
	up, imap, caFile := initServers(t, user, pass)
	cmd, dir := initCmd(t, "--ca-file", caFile)
	pt := startPTY(t, cmd)
	answer, term := pt.answer, pt.out
	answer("Provider (gmail, microsoft, icloud, smtp, outbox): ", "smtp")
	answer("SMTP server URL: ", up.URL("smtp"))
	answer("IMAP server URL (empty: none): ", "imap://"+imap.IMAPAddr)
	answer("Login name (empty: none): ", user)
	pt.waitNoEcho("Password (not shown): ")
	pt.ptmx.WriteString(pass + "\r")
	answer("Tracker URL [http://127.0.0.1:8025]: ", "https://track.example.com")
	select {
	case err := <-pt.done:
		if err != nil {
			t.Fatalf("init: %v\n%s", err, term.String())
		}
	case <-time.After(3 * time.Minute):
		t.Fatalf("init did not finish:\n%s", term.String())
	}
	// The last lines may still be on their way through the terminal.
	waitFor(t, func() bool { return strings.Contains(term.String(), "pixelrelay serve\r\n") })
	out := term.String()
	if strings.Contains(out, pass) {
		t.Errorf("the password was echoed:\n%s", out)
	}
	path := filepath.Join(dir, "config", "pixelrelay", "config.toml")
	for _, w := range []string{"Wrote " + path, "Checking the SMTP login (" + user + " at " + up.Addr + ")... ok",
		"Checking the Sent folder (IMAP at " + imap.IMAPAddr + ")... ok ([Gmail]/Sent Mail)", "2525", "pixelrelay serve\r\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("%q missing from:\n%s", w, out)
		}
	}
	pw := filepath.Join(dir, "config", "pixelrelay", "config.password")
	if st, err := os.Stat(pw); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("password file: %v %v", st, err)
	}
	check, _ := initCmd(t, "--config", path)
	check.Args = []string{binPath, "config", "check", "--config", path}
	if b, err := check.CombinedOutput(); err != nil {
		t.Errorf("config check: %v\n%s", err, b)
	}
}

// ptyRun is a command on a pseudo-terminal.
type ptyRun struct {
	t         *testing.T
	ptmx, tty *os.File
	out       *syncBuffer // what the command wrote to the terminal
	done      chan error
}

// startPTY starts cmd with a new terminal as its stdin, stdout and stderr.
func startPTY(t *testing.T, cmd *exec.Cmd) *ptyRun {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ptmx.Close(); tty.Close() })
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pt := &ptyRun{t: t, ptmx: ptmx, tty: tty, out: &syncBuffer{}, done: make(chan error, 1)}
	go func() { pt.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-pt.done
		}
	})
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			pt.out.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	return pt
}

// answer types line once prompt is on the terminal.
func (pt *ptyRun) answer(prompt, line string) {
	pt.t.Helper()
	waitFor(pt.t, func() bool { return strings.Contains(pt.out.String(), prompt) })
	pt.ptmx.WriteString(line + "\r")
}

// waitNoEcho waits for prompt and for the terminal to stop echoing.
func (pt *ptyRun) waitNoEcho(prompt string) {
	pt.t.Helper()
	waitFor(pt.t, func() bool { return strings.Contains(pt.out.String(), prompt) })
	waitFor(pt.t, func() bool { return !pt.echo() })
}

func (pt *ptyRun) echo() bool {
	st, err := unix.IoctlGetTermios(int(pt.tty.Fd()), unix.TCGETS)
	return err != nil || st.Lflag&unix.ECHO != 0
}

// TestInitInterrupted: Ctrl-C at the password gives the terminal its echo
// back, and nothing is written.
func TestInitInterrupted(t *testing.T) {
	cmd, dir := initCmd(t)
	pt := startPTY(t, cmd)
	pt.answer("Provider (gmail, microsoft, icloud, smtp, outbox): ", "icloud")
	pt.answer("Your address: ", "me@icloud.com")
	pt.waitNoEcho("App-specific password (not shown): ")
	pt.ptmx.WriteString("\x03")
	select {
	case err := <-pt.done:
		if exitCode(err) != 130 {
			t.Errorf("exit %v, want 130\n%s", err, pt.out.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("init did not stop at Ctrl-C:\n%s", pt.out.String())
	}
	if !pt.echo() {
		t.Errorf("the terminal was left without echo")
	}
	if _, err := os.Stat(filepath.Join(dir, "config", "pixelrelay")); err == nil {
		t.Errorf("something was written")
	}
}

// TestInitScripted runs init from a script: the password on stdin, a
// wrong one failing the check (exit 1, one line), --force fixing it.
func TestInitScripted(t *testing.T) {
	const user, pass = "me@example.org", "right"
	up, imap, caFile := initServers(t, user, pass)
	args := []string{"--provider", "smtp", "--upstream", up.URL("smtp"), "--imap-url", "imaps://" + imap.TLSAddr,
		"--ca-file", caFile, "--address", user, "--password-stdin", "--base-url", "https://track.example.com"}

	cmd, dir := initCmd(t, args...)
	cmd.Stdin = strings.NewReader("wrong\n")
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if code := exitCode(err); code != 1 || strings.Count(stderr.String(), "\n") != 1 ||
		!strings.Contains(stderr.String(), "the SMTP login check failed: the SMTP server refused the login (535") {
		t.Fatalf("wrong password: exit %d, stderr %q\n%s", code, stderr.String(), stdout.String())
	}
	again := exec.Command(binPath, append([]string{"init"}, args...)...)
	again.Env, again.Dir = cmd.Env, dir
	again.Stdin = strings.NewReader(pass + "\n")
	if b, err := again.CombinedOutput(); exitCode(err) != 1 || !strings.Contains(string(b), "already exists: pass --force") {
		t.Fatalf("without --force: %v\n%s", err, b)
	}
	again = exec.Command(binPath, append([]string{"init", "--force"}, args...)...)
	again.Env, again.Dir = cmd.Env, dir
	again.Stdin = strings.NewReader(pass + "\n")
	b, err := again.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "... ok ([Gmail]/Sent Mail)") {
		t.Fatalf("--force with the right password: %v\n%s", err, b)
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// TestInitSignsInAtTerminal: with OAuth, init offers the sign-in at once
// (the browser opens the provider's consent page), then checks the login
// with XOAUTH2.
func TestInitSignsInAtTerminal(t *testing.T) {
	p := oauthtest.Start(t, oauthtest.Options{})
	up := smtptest.Start(t, smtptest.Script{RequireTLS: true, XOAUTH2: func(_, tok string) bool { return p.Live(tok) }})
	cmd, dir := initCmd(t, "--provider", "smtp", "--upstream", up.URL("smtp"), "--imap-url=", "--ca-file", up.CAFile,
		"--address", "me@example.com", "--oauth", "--client-id", p.ClientID, "--oauth-auth-url", p.AuthURL, "--oauth-token-url", p.TokenURL)
	// The "browser": an xdg-open that notes the URL it was given.
	bin := t.TempDir()
	opened := filepath.Join(bin, "opened")
	os.WriteFile(filepath.Join(bin, "xdg-open"), []byte("#!/bin/sh\nprintf '%s\\n' \"$1\" > "+opened+".tmp && mv "+opened+".tmp "+opened+"\n"), 0o755)
	cmd.Env = append(cmd.Env, "PATH="+bin+":"+os.Getenv("PATH"))
	pt := startPTY(t, cmd)
	pt.answer("Tracker URL [http://127.0.0.1:8025]: ", "https://track.example.com")
	pt.answer("Sign in now (yes, no) [yes]: ", "")
	var consent []byte
	waitFor(t, func() bool { consent, _ = os.ReadFile(opened); return len(consent) > 0 })
	oauthtest.Browser(t)(strings.TrimSpace(string(consent)))
	select {
	case err := <-pt.done:
		if err != nil {
			t.Fatalf("init: %v\n%s", err, pt.out.String())
		}
	case <-time.After(3 * time.Minute):
		t.Fatalf("init did not finish:\n%s", pt.out.String())
	}
	waitFor(t, func() bool { return strings.Contains(pt.out.String(), "pixelrelay serve\r\n") })
	out := pt.out.String()
	for _, w := range []string{"Signed in account default", "Checking the SMTP login (me@example.com at " + up.Addr + ")... ok"} {
		if !strings.Contains(out, w) {
			t.Errorf("%q missing from:\n%s", w, out)
		}
	}
	if strings.Contains(out, "pixelrelay auth login\r\n") {
		t.Errorf("still tells to sign in:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "pixelrelay", "oauth", "token-default.json")); err != nil {
		t.Errorf("no refresh token stored: %v", err)
	}
}

// TestInitConfigServes: serve runs on the file init wrote (only the
// listen addresses and data_dir changed for the test) and delivers with
// its password file, STARTTLS and AUTH.
func TestInitConfigServes(t *testing.T) {
	const user, pass = "me@example.org", "app password 1"
	up := smtptest.Start(t, smtptest.Script{RequireTLS: true, AuthUsers: map[string]string{user: pass}})
	cmd, dir := initCmd(t, "--provider", "smtp", "--upstream", up.URL("smtp"), "--ca-file", up.CAFile,
		"--address", user, "--password-stdin", "--base-url", "https://track.example.com")
	cmd.Stdin = strings.NewReader(pass + "\n")
	if b, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(b), "... ok") {
		t.Fatalf("init: %v\n%s", err, b)
	}
	path := filepath.Join(dir, "config", "pixelrelay", "config.toml")
	in := &instance{t: t, dir: filepath.Join(dir, "data"), cfgPath: path, smtpAddr: freePort(t), httpAddr: freePort(t),
		env: append(cmd.Env, "PIXELRELAY_ADMIN_KEY=test-admin-key")}
	written := readOrFail(t, path)
	cfg := fmt.Sprintf("data_dir = %q\n%s\n[smtp]\nlisten = %q\n[http]\nlisten = %q\n", in.dir, written, in.smtpAddr, in.httpAddr)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	in.start()
	to := []string{"ann@example.net", "bob@example.net"}
	if _, err := sendMail(t, in.smtpAddr, user, to, htmlMessage(user, to, "written by init")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(up.Messages()) == 2 })
	for _, m := range up.Messages() {
		if m.AuthUser != user || !m.TLS || !strings.Contains(string(m.Data), "https://track.example.com/o/") {
			t.Errorf("copy to %v: auth %q, TLS %v, pixel %v", m.To, m.AuthUser, m.TLS, strings.Contains(string(m.Data), "/o/"))
		}
	}
}

func readOrFail(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
