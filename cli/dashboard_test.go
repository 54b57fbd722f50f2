package cli

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"pixelrelay/config"
	"pixelrelay/tracker/httpd"
	"pixelrelay/tracker/store"
	"pixelrelay/tracker/token"
)

// dashboardServer is the real admin API and dashboard over a real store;
// it returns the config file that points at it.
func dashboardServer(t *testing.T) (cfgPath string) {
	t.Helper()
	dir := t.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	keys, err := token.OpenKeyring(filepath.Join(dir, "secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenStore(filepath.Join(dir, "pixelrelay.db"), store.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := config.Default()
	cfg.DataDir = dir
	srv := httpd.New(httpd.Options{Config: func() *config.Config { return cfg }, Store: st, Keys: keys, Version: "t", Log: quiet})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	cfgPath = filepath.Join(dir, "pixelrelay.toml")
	body := "data_dir = \"" + dir + "\"\n[http]\nlisten = \"" + ts.Listener.Addr().String() + "\"\n"
	if err := os.WriteFile(cfgPath, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PIXELRELAY_ADMIN_KEY", "")
	return cfgPath
}

func runReal(args ...string) (int, string, string) {
	var out, errb strings.Builder
	e := &env{stdout: &out, stderr: &errb, now: time.Now}
	code := e.main(args)
	return code, out.String(), errb.String()
}

var linkRE = regexp.MustCompile(`http://\S+/ui/login\?token=\S+`)

func TestDashboardCommand(t *testing.T) {
	cfgPath := dashboardServer(t)
	var opened []string
	defer func(f func(string) error) { openBrowser = f }(openBrowser)
	openBrowser = func(u string) error { opened = append(opened, u); return nil }

	code, out, errOut := runReal("dashboard", "--config", cfgPath)
	link := linkRE.FindString(out)
	if code != 0 || link == "" || errOut != "" || !strings.Contains(out, "within 5 minutes") {
		t.Fatalf("dashboard: exit %d\n%s\n%s", code, out, errOut)
	}
	if len(opened) != 1 || opened[0] != link {
		t.Errorf("opened %q, want the link %q", opened, link)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for i, want := range []int{200, 401} { // the link works once
		resp, err := client.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("use %d of the link: %d, want %d", i+1, resp.StatusCode, want)
		}
	}

	code, out, _ = runReal("dashboard", "--no-browser", "--config", cfgPath)
	if code != 0 || linkRE.FindString(out) == "" || linkRE.FindString(out) == link || len(opened) != 1 {
		t.Errorf("--no-browser: exit %d, opened %d times\n%s", code, len(opened), out)
	}

	code, out, _ = runReal("dashboard", "--json", "--no-browser", "--config", cfgPath)
	var j struct {
		URL       string    `json:"url"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(out), &j); code != 0 || err != nil || !linkRE.MatchString(j.URL) ||
		j.ExpiresAt.Sub(time.Now()) > 5*time.Minute || j.ExpiresAt.Before(time.Now()) {
		t.Errorf("--json: exit %d, %v: %s", code, err, out)
	}

	openBrowser = func(string) error { return errors.New("exec: \"xdg-open\": executable file not found in $PATH") }
	code, out, errOut = runReal("dashboard", "--config", cfgPath)
	if code != 0 || linkRE.FindString(out) == "" || !strings.Contains(errOut, "open the link above yourself") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("no browser: exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestDashboardCommandErrors(t *testing.T) {
	cfg := writeConfig(t, closedAddr(t))
	t.Setenv("PIXELRELAY_ADMIN_KEY", testKey)
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"dashboard", "--config", cfg}, 1, "is not running"},
		{[]string{"dashboard", "extra", "--config", cfg}, 2, "unexpected argument"},
		{[]string{"dashboard", "--browser", "--config", cfg}, 2, "unknown flag --browser"},
	} {
		code, out, errOut := runReal(tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.want) || strings.Count(errOut, "\n") != 1 || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", tt.args, code, out, errOut)
		}
	}
}
