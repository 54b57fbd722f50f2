package cli

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pixelrelay/tracker/token"
)

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(good, []byte("data_dir = \""+dir+"\"\n[http]\nlisten = \"127.0.0.1:8025\"\n"), 0o600)
	os.WriteFile(bad, []byte("data_dir = \""+dir+"\"\nfrobnicate = 1\n[smtp]\nmax_recipients = \"many\"\n[tracking]\npolicy = \"sometimes\"\n"), 0o600)

	code, out, errOut := run(0, "config", "check", "--config", good)
	if code != 0 || out != "config OK: "+good+"\n" || errOut != "" {
		t.Errorf("good: exit %d, out %q, stderr %q", code, out, errOut)
	}

	// Allowed but probably wrong: a loopback pixel URL with a real upstream.
	warn := filepath.Join(dir, "warn.toml")
	os.WriteFile(warn, []byte("data_dir = \""+dir+"\"\n[upstream]\nurl = \"smtp://127.0.0.1:2526\"\ntls = \"none\"\n"), 0o600)
	code, out, errOut = run(0, "config", "check", "--config", warn)
	if code != 0 || out != "config OK: "+warn+"\n" || !strings.HasPrefix(errOut, "warning: tracking.base_url: ") {
		t.Errorf("warn: exit %d, out %q, stderr %q", code, out, errOut)
	}

	code, out, errOut = run(0, "config", "--config", bad, "check")
	if code != 1 {
		t.Errorf("bad: exit %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, key := range []string{"frobnicate", "smtp.max_recipients", "tracking.policy"} {
		found := false
		for _, l := range lines {
			if strings.HasPrefix(l, key+": ") {
				found = true
			}
		}
		if !found {
			t.Errorf("bad: no line \"%s: reason\" in:\n%s", key, out)
		}
	}
	if !strings.HasPrefix(errOut, "pixelrelay: ") || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "problems") {
		t.Errorf("bad: stderr %q, want one line counting the problems", errOut)
	}

	// No file anywhere: the built-in defaults.
	empty := t.TempDir()
	t.Chdir(empty)
	t.Setenv("PIXELRELAY_CONFIG", "")
	t.Setenv("XDG_CONFIG_HOME", empty)
	t.Setenv("XDG_STATE_HOME", empty)
	code, out, _ = run(0, "config", "check")
	if code != 0 || out != "no config file found; built-in defaults are valid\n" {
		t.Errorf("none: exit %d, out %q", code, out)
	}

	// $PIXELRELAY_CONFIG is honoured.
	t.Setenv("PIXELRELAY_CONFIG", bad)
	if code, _, _ := run(0, "config", "check"); code != 1 {
		t.Errorf("$PIXELRELAY_CONFIG=bad: exit %d, want 1", code)
	}
}

// A query command with a broken config (serve keeps running on its last
// good one) warns in one line and still reaches the server at the
// http.listen it can read from the file.
func TestQueryWithBadConfig(t *testing.T) {
	f := sampleAPI()
	good := startAPI(t, f) // sets the admin key
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name, extra, warn string
	}{
		{"typo", "[smtp]\nmax_recipeints = 5\n", "smtp.max_recipeints: unknown key"},
		{"wrong type", "[tracking]\nip_hourly_limit = \"lots\"\n", "tracking.ip_hourly_limit: must be an integer"},
		{"syntax", "[tracking]\nbase_url = \"https://t.example\n", "TOML syntax error at line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := filepath.Join(dir, tc.name+".toml")
			os.WriteFile(bad, append(append([]byte{}, data...), tc.extra...), 0o600)
			for _, args := range [][]string{{"status"}, {"opens"}, {"messages", "--json"}, {"queue"}} {
				code, out, errOut := run(0, append(args, "--config", bad)...)
				if code != 0 || out == "" {
					t.Errorf("%v: exit %d, stdout %q, stderr %q; want the answer", args, code, out, errOut)
				}
				if strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "pixelrelay: warning: config "+bad+": ") ||
					!strings.Contains(errOut, tc.warn) || !strings.Contains(errOut, "config check") {
					t.Errorf("%v: stderr %q, want one warning naming %q and config check", args, errOut, tc.warn)
				}
			}
		})
	}
	// Nothing readable: the defaults, so "not running" names the default address.
	junk := filepath.Join(dir, "junk.toml")
	os.WriteFile(junk, []byte("\x00\x01 not toml at all [[[\n"), 0o600)
	t.Setenv("XDG_STATE_HOME", dir)
	code, _, errOut := run(0, "opens", "--config", junk)
	if code != 1 || !strings.Contains(errOut, "warning: config") || !strings.Contains(errOut, "127.0.0.1:8025") {
		t.Errorf("junk: exit %d, stderr %q", code, errOut)
	}
}

// The admin key is read from data_dir's secrets file when
// $PIXELRELAY_ADMIN_KEY is not set.
func TestAdminKeyFromSecretsFile(t *testing.T) {
	f := sampleAPI()
	srv := httptest.NewServer(f)
	defer srv.Close()
	t.Setenv("PIXELRELAY_ADMIN_KEY", "")
	cfg := writeConfig(t, srv.Listener.Addr().String())
	dataDir := filepath.Join(filepath.Dir(cfg), "data")

	// No secrets file yet: a clear reason, exit 1.
	code, _, errOut := run(0, "status", "--config", cfg)
	if code != 1 || !strings.Contains(errOut, "secrets") {
		t.Errorf("no secrets: exit %d, stderr %q", code, errOut)
	}

	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	k, err := token.OpenKeyring(filepath.Join(dataDir, "secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The server's key is the file's: accepted.
	f.mu.Lock()
	f.key = k.AdminKey()
	f.mu.Unlock()
	code, out, errOut := run(0, "status", "--config", cfg)
	if code != 0 || !strings.Contains(out, "version         9.9.9") {
		t.Errorf("with secrets: exit %d, out %q, stderr %q", code, out, errOut)
	}
}
