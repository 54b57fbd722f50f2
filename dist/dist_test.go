// Package dist holds the files that run pixelrelay as a service (systemd
// units, a launchd agent, a Caddyfile); its tests check them with the
// tools that read them: systemd-analyze, Python's plistlib and Caddy.
package dist

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pixelrelay/config"
	"pixelrelay/internal/testport"
	"pixelrelay/tracker/httpd"
	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
	"pixelrelay/tracker/token"
)

// need returns a tool's path; it fails under CI (.ci/run installs them)
// and skips elsewhere.
func need(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil && os.Getenv("CI") != "" {
		t.Fatalf("%s not installed: .ci/run must install %s", name, pkg)
	}
	if err != nil {
		t.Skipf("%s not installed (apt-get install -y %s)", name, pkg)
	}
	return p
}

// verifyUnit runs systemd-analyze verify on a copy of unit whose program
// is an executable that exists here (verify checks that), and returns
// what it printed: nothing, for a unit without problems.
func verifyUnit(t *testing.T, unit []byte, name string, user bool) string {
	t.Helper()
	analyze := need(t, "systemd-analyze", "systemd")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, prog := range []string{"/usr/local/bin/pixelrelay", "%h/.local/bin/pixelrelay"} {
		unit = bytes.ReplaceAll(unit, []byte(prog), []byte(self))
	}
	dir := t.TempDir()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, unit, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"verify", path}
	cmd := exec.Command(analyze, args...)
	if user {
		runtime := filepath.Join(dir, "run")
		os.Mkdir(runtime, 0o700)
		cmd = exec.Command(analyze, append([]string{"--user"}, args...)...)
		cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+runtime)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Sprintf("%v: %s", err, out)
	}
	return string(out)
}

func TestSystemdUnits(t *testing.T) {
	for _, u := range []struct {
		file string
		user bool
		want []string
	}{
		{"pixelrelay.service", false, []string{"StateDirectory=pixelrelay", "ProtectSystem=strict", "NoNewPrivileges=yes",
			"User=pixelrelay", "ProtectHome=yes", "CapabilityBoundingSet=\n", "SystemCallFilter=@system-service", "MemoryDenyWriteExecute=yes"}},
		{"pixelrelay-user.service", true, []string{"StateDirectory=pixelrelay", "ProtectSystem=strict", "NoNewPrivileges=yes",
			"ReadWritePaths=%S/pixelrelay", "SystemCallFilter=@system-service"}},
	} {
		t.Run(u.file, func(t *testing.T) {
			unit, err := os.ReadFile(u.file)
			if err != nil {
				t.Fatal(err)
			}
			if out := verifyUnit(t, unit, u.file, u.user); out != "" {
				t.Errorf("systemd-analyze verify:\n%s", out)
			}
			for _, w := range u.want {
				if !bytes.Contains(unit, []byte(w)) {
					t.Errorf("%s lacks %q", u.file, w)
				}
			}
			// The check can fail: a unit with a mistyped key is reported.
			bad := bytes.Replace(unit, []byte("NoNewPrivileges=yes"), []byte("NoNewPrivilege=yes"), 1)
			if out := verifyUnit(t, bad, u.file, u.user); !strings.Contains(out, "NoNewPrivilege") {
				t.Errorf("a unit with a wrong key passed verify: %q", out)
			}
		})
	}
}

func TestLaunchdPlist(t *testing.T) {
	py := need(t, "python3", "python3")
	out, err := exec.Command(py, "-c", `import json, plistlib, sys
with open(sys.argv[1], "rb") as f:
    print(json.dumps(plistlib.load(f)))`, "dev.pixelrelay.plist").CombinedOutput()
	if err != nil {
		t.Fatalf("plistlib cannot read dev.pixelrelay.plist: %v\n%s", err, out)
	}
	var p struct {
		Label             string
		ProgramArguments  []string
		RunAtLoad         bool
		KeepAlive         map[string]bool
		StandardErrorPath string
		Umask             int
	}
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	if p.Label != "dev.pixelrelay" || len(p.ProgramArguments) < 2 || p.ProgramArguments[1] != "serve" ||
		!filepath.IsAbs(p.ProgramArguments[0]) || !p.RunAtLoad || p.KeepAlive["SuccessfulExit"] || p.Umask != 0o77 ||
		!filepath.IsAbs(p.StandardErrorPath) {
		t.Errorf("plist = %+v", p)
	}
}

// TestCaddyfileExposesOnlyThePublicRoutes runs Caddy with dist/Caddyfile,
// dist/Caddyfile.team (several processes on PostgreSQL) and
// dist/Caddyfile.tracker (the split deployment's public tracker; their
// site address and upstream pointed at this test) in front of the real
// tracker: the pixel goes through, with the client's address, and on the
// split tracker the relay API too; the dashboard, the admin API, /metrics
// and /healthz do not.
func TestCaddyfileExposesOnlyThePublicRoutes(t *testing.T) {
	for _, tt := range []struct {
		file  string
		relay bool // /relay/ is public
	}{{"Caddyfile", false}, {"Caddyfile.tracker", true}, {"Caddyfile.team", false}} {
		t.Run(tt.file, func(t *testing.T) { caddyPublicRoutes(t, tt.file, tt.relay) })
	}
}

func caddyPublicRoutes(t *testing.T, file string, relay bool) {
	caddy := need(t, "caddy", "caddy")
	backend, st, tok := tracker(t)
	front := freeAddr(t)
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cf := strings.Replace(string(src), "track.example.com {", "{\n\tadmin off\n\tauto_https off\n}\n\nhttp://"+front+" {", 1)
	for _, port := range []string{"8025", "8026", "8027"} { // Caddyfile.team: every upstream is the test's
		cf = strings.ReplaceAll(cf, "127.0.0.1:"+port, backend)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(cf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(caddy, "validate", "--config", path, "--adapter", "caddyfile").CombinedOutput(); err != nil {
		t.Fatalf("caddy validate: %v\n%s", err, out)
	}
	cmd := exec.Command(caddy, "run", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(15 * time.Second)
	for !dialable(front) {
		if time.Now().After(deadline) {
			t.Fatalf("caddy did not listen on %s:\n%s", front, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	for _, c := range []struct {
		path   string
		code   int  // 0: whatever pixelrelay answers
		public bool // reaches pixelrelay (Caddy's own 404 has no body)
	}{
		{"/o/" + tok + ".gif", 200, true},
		{"/o/forged.gif", 200, true},
		{"/c/anything", 0, true},
		{"/ui/", 404, false}, {"/ui/login", 404, false}, {"/api/status", 404, false}, {"/metrics", 404, false},
		{"/healthz", 404, false}, {"/", 404, false},
		{"/relay/v1/opens", 0, relay}, {"/api/relays", 404, false},
	} {
		req, _ := http.NewRequest("GET", "http://"+front+c.path, nil)
		req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.0")
		req.Header.Set("Authorization", "Bearer admin") // even with a key, the private routes are not reached
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if c.code != 0 && resp.StatusCode != c.code {
			t.Errorf("%s through Caddy: %d, want %d", c.path, resp.StatusCode, c.code)
		}
		if reached := len(body) > 0; reached != c.public {
			t.Errorf("%s reached pixelrelay: %v, want %v (%d %q)", c.path, reached, c.public, resp.StatusCode, body)
		}
		if strings.HasPrefix(c.path, "/o/") && (resp.Header.Get("Content-Type") != "image/gif" || len(body) != 43) {
			t.Errorf("%s: not the pixel: %q %d bytes", c.path, resp.Header.Get("Content-Type"), len(body))
		}
	}
	if err := st.Flush(); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		opens, err := st.Opens(store.OpenQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(opens) == 1 {
			if opens[0].IP != "127.0.0.1" {
				t.Errorf("open from %s", opens[0].IP)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d opens stored through Caddy, want 1", len(opens))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tracker runs the real HTTP tracker (trusting a proxy on loopback) with
// one sent copy; it returns its address, the store and the copy's token.
func tracker(t *testing.T) (addr string, st *store.Store, tok string) {
	t.Helper()
	dir := t.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	keys, err := token.OpenKeyring(filepath.Join(dir, "secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	st, err = store.OpenStore(filepath.Join(dir, "db"), store.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	id, tok, err := keys.Mint()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := st.Add([]record.Copy{{TrackingID: id, Recipient: "bob@example.com", QueuedAt: now.Add(-time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if err := st.Update(id, record.StatusSent, "", now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.HTTP.TrustedProxies = []string{"127.0.0.1/32"}
	srv := httpd.New(httpd.Options{Config: func() *config.Config { return cfg }, Store: st, Keys: keys, Log: quiet})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { l.Close() })
	return l.Addr().String(), st, tok
}

// freeAddr is a loopback address kept free for caddy (internal/testport:
// a port from :0 could go to another process before caddy binds it).
func freeAddr(t *testing.T) string {
	t.Helper()
	return testport.Addr(t)
}

func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
