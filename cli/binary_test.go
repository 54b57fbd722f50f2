package cli

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// buildBinary builds the real pixelrelay binary (the module root's main
// package) into a temp dir and returns its path.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pixelrelay")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	cmd := exec.Command("go", "build", "-o", bin, "-ldflags", "-X pixelrelay/cli.Version=9.8.7-test", ".")
	cmd.Dir = ".." // the module root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runBinary runs bin with args in a clean environment (no config file to
// be found, the given extra variables) and returns its exit code and
// output.
func runBinary(t *testing.T, bin string, env []string, args ...string) (int, string, string) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(bin, args...)
	cmd.Dir = home
	cmd.Env = append([]string{
		"HOME=" + home, "XDG_CONFIG_HOME=" + home, "XDG_STATE_HOME=" + home,
		"PATH=" + os.Getenv("PATH"),
	}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%v did not finish", args)
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

func TestBinary(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[smtp]\nlisten = \"127.0.0.1:2525\"\nmax_recipeints = 5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	down := filepath.Join(dir, "down.toml")
	downAddr := closedAddr(t)
	if err := os.WriteFile(down, []byte("data_dir = \""+filepath.Join(dir, "data")+"\"\n[http]\nlisten = \""+downAddr+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	notRunning := "pixelrelay is not running at " + downAddr + " — start it with `pixelrelay serve`\n"

	tests := []struct {
		name       string
		env        []string
		args       []string
		wantCode   int
		wantOut    string // substring of stdout
		wantErr    string // exact stderr when wantExact, else substring
		wantExact  bool
		oneErrLine bool
	}{
		{name: "version", args: []string{"version"}, wantOut: "pixelrelay 9.8.7-test\n"},
		{name: "config check names the bad key", args: []string{"config", "check", "--config", bad},
			wantCode: 1, wantOut: "smtp.max_recipeints: ", oneErrLine: true},
		{name: "defaults are valid", args: []string{"config", "check"},
			wantOut: "no config file found; built-in defaults are valid"},
		{name: "unknown command", args: []string{"nonsense"}, wantCode: 2,
			wantErr: `unknown command "nonsense"`, oneErrLine: true},
		{name: "opens, nothing running, no key", args: []string{"opens", "--config", down},
			wantCode: 1, wantErr: notRunning, wantExact: true},
		{name: "opens, nothing running, key set", env: []string{"PIXELRELAY_ADMIN_KEY=k"},
			args: []string{"opens", "--json", "--config", down}, wantCode: 1, wantErr: notRunning, wantExact: true},
		{name: "bad since", args: []string{"messages", "--since", "tomorrow", "--config", down},
			wantCode: 2, wantErr: "see pixelrelay messages --help", oneErrLine: true},
		{name: "help", args: []string{"help"}, wantOut: "Commands:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runBinary(t, bin, tt.env, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.wantCode, errOut)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("stdout %q lacks %q", out, tt.wantOut)
			}
			switch {
			case tt.wantExact && errOut != tt.wantErr:
				t.Errorf("stderr %q, want %q", errOut, tt.wantErr)
			case !tt.wantExact && !strings.Contains(errOut, tt.wantErr):
				t.Errorf("stderr %q lacks %q", errOut, tt.wantErr)
			}
			if tt.oneErrLine && (strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "pixelrelay: ")) {
				t.Errorf("stderr %q is not one \"pixelrelay: \" line", errOut)
			}
		})
	}
}
