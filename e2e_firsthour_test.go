package main

// The first hour of a new user (issue 11): a config file that appears or
// breaks while serve runs, and the commands around it.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"pixelrelay/relay/smtptest"
)

// withoutAdminKeyEnv makes the instance (and its commands) use the admin
// key in data_dir's secrets file, so that a command must read data_dir.
func withoutAdminKeyEnv(in *instance) {
	in.env = slices.DeleteFunc(in.env, func(kv string) bool {
		return strings.HasPrefix(kv, "PIXELRELAY_ADMIN_KEY=")
	})
}

// TestQueryCommandsWithBrokenConfig: after an edit with a mistake, serve
// keeps its last good config, and the query commands still reach it,
// warning in one line.
func TestQueryCommandsWithBrokenConfig(t *testing.T) {
	in := newInstance(t, "")
	withoutAdminKeyEnv(in)
	in.start()
	good, err := os.ReadFile(in.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, edit, warn string }{
		{"typo", "[queue]\nmax_agee = \"1d\"\n", "queue.max_agee: unknown key"},
		{"syntax", "[queue]\nmax_age = \"1d\n", "TOML syntax error at line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mark := len(in.logs.String())
			edited := strings.Replace(string(good), "[queue]\n", tc.edit, 1)
			if err := os.WriteFile(in.cfgPath, []byte(edited), 0o600); err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool { return strings.Contains(in.logs.String()[mark:], "keeping the last good config") })
			for _, args := range [][]string{{"status"}, {"opens"}, {"messages"}, {"queue", "--json"}} {
				out, errOut, code := in.cli(args...)
				if code != 0 || out == "" {
					t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
				}
				if strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "pixelrelay: warning: config ") ||
					!strings.Contains(errOut, tc.warn) {
					t.Errorf("%v: stderr %q, want one warning naming %q", args, errOut, tc.warn)
				}
			}
		})
	}
}

// TestPixelWithControlCharactersEndToEnd: a user agent with control
// characters gets the GIF from the real binary (net/http alone answers 400
// text/plain) and the open is recorded.
func TestPixelWithControlCharactersEndToEnd(t *testing.T) {
	in := newInstanceTracking(t, `prefetch_window = "0s"`, "")
	in.start()
	to := []string{"carol@example.org"}
	if _, err := sendMail(t, in.smtpAddr, "me@example.com", to, htmlMessage("me@example.com", to, "escape")); err != nil {
		t.Fatal(err)
	}
	pixel := pixelURLs(in.waitOutbox(1, 10*time.Second)[0])[0]
	u, err := url.Parse(pixel)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: Thunderbird\x1b[2J\x01/128\r\n\r\n", u.Path, u.Host)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/gif" || len(body) != 43 {
		t.Fatalf("pixel with control characters: %d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	waitFor(t, func() bool {
		out, _, _ := in.cli("opens", "--to", "carol@example.org", "--json")
		return strings.Contains(out, `"user_agent": "Thunderbird [2J /128"`) // each control character a space
	})
}

// startServe runs `serve` with the given working directory and
// environment (no --config: the search path decides) and waits until addr
// answers. It returns the logs; the process is killed at the end of the test.
func startServe(t *testing.T, dir string, env []string, addrs ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(binPath, "serve", "--json")
	cmd.Dir = dir
	cmd.Env = env
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("serve logs:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for _, a := range addrs {
		for !dialable(a) {
			select {
			case err := <-done:
				t.Fatalf("serve exited: %v\n%s", err, logs.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not up\n%s", a, logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return cmd, logs
}

// apiStatus reads /api/status with the admin key.
func apiStatus(t *testing.T, httpAddr, key string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+httpAddr+"/api/status", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestConfigFileAppearsWhileServing is the README's first hour: `serve`
// starts with no config file, then the user writes
// ~/.config/pixelrelay/config.toml (its directory did not exist): the file
// is picked up, logged, shown by `status`, and mail goes to the configured
// upstream instead of the outbox.
func TestConfigFileAppearsWhileServing(t *testing.T) {
	const smtpAddr, httpAddr = "127.0.0.1:2525", "127.0.0.1:8025"
	for _, addr := range []string{smtpAddr, httpAddr} {
		if dialable(addr) {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is taken; this test needs the built-in addresses free", addr)
			}
			t.Skipf("%s is taken on this machine; the test needs the built-in addresses free", addr)
		}
	}
	home := t.TempDir()
	work := filepath.Join(home, "src")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "PIXELRELAY_ADMIN_KEY=first-hour-key"}
	_, logs := startServe(t, work, env, smtpAddr, httpAddr)
	status := func() (string, int) {
		out, errOut, code := runCLI(t, work, env, "status")
		return out + errOut, code
	}
	if out, code := status(); code != 0 || !strings.Contains(out, "none (built-in defaults)") {
		t.Fatalf("status before: exit %d\n%s", code, out)
	}

	upstream := smtptest.Start(t, smtptest.Script{})
	cfgPath := filepath.Join(home, ".config", "pixelrelay", "config.toml")
	if err := os.MkdirAll(filepath.Dir(cfgPath), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, []byte(upstreamConfig(upstream, "", "")), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(logs.String(), "config file is now "+cfgPath) })
	out, code := status()
	if code != 0 || !strings.Contains(out, "config file     "+cfgPath) || !strings.Contains(out, "smtp://"+upstream.Addr) {
		t.Errorf("status after the file appeared: exit %d\n%s", code, out)
	}
	to := []string{"alice@example.org"}
	if _, err := sendMail(t, smtpAddr, "me@example.com", to, htmlMessage("me@example.com", to, "configured")); err != nil {
		t.Fatal(err)
	}
	waitMessages(t, upstream, 1, 15*time.Second)
	if files, _ := filepath.Glob(filepath.Join(home, ".local", "state", "pixelrelay", "outbox", "new", "*")); len(files) != 0 {
		t.Errorf("the copy went to the outbox too: %v", files)
	}
}

// TestConfigSearchPathWhileServing: a config file at a place that takes
// precedence (./pixelrelay.toml over ~/.config/...) takes over as it
// appears; when it goes the next one is back in force; when none is left
// the last settings stay and status says so.
func TestConfigSearchPathWhileServing(t *testing.T) {
	home := t.TempDir()
	work := filepath.Join(home, "src")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	smtpAddr, httpAddr := freePort(t), freePort(t)
	base := fmt.Sprintf("data_dir = %q\n[smtp]\nlisten = %q\n[http]\nlisten = %q\n", filepath.Join(home, "data"), smtpAddr, httpAddr)
	xdg := filepath.Join(home, "xdg", "pixelrelay", "config.toml")
	local := filepath.Join(work, "pixelrelay.toml")
	write := func(path, extra string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(base+extra), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(xdg, "[tracking]\npolicy = \"all\"\n")
	const key = "search-path-key"
	env := []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, "xdg"), "PATH=" + os.Getenv("PATH"), "PIXELRELAY_ADMIN_KEY=" + key}
	_, logs := startServe(t, work, env, smtpAddr, httpAddr)
	waitStatus := func(file, problem string) {
		t.Helper()
		var st map[string]any
		deadline := time.Now().Add(10 * time.Second)
		for {
			st = apiStatus(t, httpAddr, key)
			p, _ := st["config_problem"].(string)
			if st["config_file"] == file && strings.Contains(p, problem) && (problem != "" || p == "") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("status %v, want config_file %q and a problem saying %q", st, file, problem)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitStatus(xdg, "")

	write(local, "[tracking]\npolicy = \"opt-in\"\n")
	waitStatus(local, "")
	if !logged(logs, "config file is now "+local) || !logged(logs, `"was":"`+xdg+`"`) {
		t.Errorf("the switch is not logged:\n%s", logs.String())
	}
	os.Remove(local)
	waitStatus(xdg, "")
	os.Remove(xdg)
	waitStatus(xdg, xdg+" is gone; its settings stay in force")
	// status says it in text too (the command reads its own config from
	// --config: none is left on the search path).
	cli := filepath.Join(home, "cli.toml")
	write(cli, "")
	out, errOut, code := runCLI(t, work, env, "status", "--config", cli)
	if code != 0 || !strings.Contains(out, "config warning  "+xdg+" is gone") {
		t.Errorf("status: exit %d\n%s%s", code, out, errOut)
	}
	write(xdg, "[tracking]\npolicy = \"all\"\n")
	waitStatus(xdg, "")
}

// runCLI runs a pixelrelay command in dir with env.
func runCLI(t *testing.T, dir string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Dir, cmd.Env = dir, env
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// readmeRunCommand is the first command of README's "Get going" block:
// how a new user starts pixelrelay.
func readmeRunCommand(t *testing.T) []string {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "## Get going")
	_, block, ok2 := strings.Cut(after, "```sh\n")
	if !ok || !ok2 {
		t.Fatal(`README has no "## Get going" sh block`)
	}
	line, _, _ := strings.Cut(block, "\n")
	line, _, _ = strings.Cut(line, "#")
	return strings.Fields(line)
}

// TestREADMERunCommandStopsWithItsSignal: README's "Get going" command
// (make run) leaves ./pixelrelay for the other README commands
// (`./pixelrelay status` answers while it runs), and stops with its
// signal: `kill PID` (SIGTERM) and Ctrl-C (SIGINT to the process group)
// both end the server, freeing its ports and its database for the next
// start. (`go run . serve`, the command before, did not: killing go run
// left the server running, and left no binary.)
func TestREADMERunCommandStopsWithItsSignal(t *testing.T) {
	run := readmeRunCommand(t)
	if _, err := exec.LookPath(run[0]); err != nil {
		t.Fatalf("README's run command needs %s: %v", run[0], err)
	}
	repo, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	// The binary goes into the clone as README says, under a name of its
	// own (make takes BIN from the environment).
	bin := fmt.Sprintf(".pixelrelay-runtest-%d", os.Getpid())
	t.Cleanup(func() { os.Remove(filepath.Join(repo, bin)) })
	for _, tc := range []struct {
		name  string
		group bool // the signal goes to the whole process group (a terminal's Ctrl-C)
		sig   syscall.Signal
	}{
		{"kill PID", false, syscall.SIGTERM},
		{"Ctrl-C", true, syscall.SIGINT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := newInstance(t, "")
			cmd := exec.Command(run[0], run[1:]...)
			cmd.Dir = repo
			// The real HOME: go build's caches live there.
			cmd.Env = append(os.Environ(), "BIN="+bin, "PIXELRELAY_ADMIN_KEY=test-admin-key", "PIXELRELAY_CONFIG="+in.cfgPath)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			logs := &syncBuffer{}
			cmd.Stdout, cmd.Stderr = logs, logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			t.Cleanup(func() {
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // whatever is left of this group
				if t.Failed() {
					t.Logf("%v output:\n%s", run, logs.String())
				}
			})
			deadline := time.Now().Add(3 * time.Minute) // it builds first
			for !dialable(in.httpAddr) {
				select {
				case err := <-done:
					t.Fatalf("%v ended: %v", run, err)
				case <-time.After(100 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatalf("%v did not start the server", run)
				}
			}
			status := exec.Command("./"+bin, "status", "--config", in.cfgPath)
			status.Dir, status.Env = repo, in.env
			if out, err := status.CombinedOutput(); err != nil || !strings.Contains(string(out), in.httpAddr) {
				t.Errorf("./%s status while %v serves: %v\n%s", bin, run, err, out)
			}
			target := cmd.Process.Pid
			if tc.group {
				target = -target
			}
			if err := syscall.Kill(target, tc.sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-done:
			case <-time.After(40 * time.Second):
				t.Fatalf("%v still running 40s after %v", run, tc.sig)
			}
			if dialable(in.httpAddr) || dialable(in.smtpAddr) {
				t.Fatalf("the server outlived %v's %v", run, tc.sig)
			}
			if !strings.Contains(logs.String(), "stopped") {
				t.Errorf("the server did not shut down gracefully")
			}
			// Its hints name the command as the user calls it from the clone.
			if !strings.Contains(logs.String(), "read opens with: ./"+bin+" opens") {
				t.Errorf("the start-up log does not say ./%s opens", bin)
			}
			opens := exec.Command("./"+bin, "opens", "--config", in.cfgPath)
			opens.Dir, opens.Env = repo, in.env
			if out, _ := opens.CombinedOutput(); !strings.Contains(string(out), "start it with `./"+bin+" serve`") {
				t.Errorf("./%s opens with the server stopped: %s", bin, out)
			}
			in.start() // the database lock is free: a new serve starts on the same data_dir
		})
	}
}
