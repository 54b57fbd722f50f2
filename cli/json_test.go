package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// The API's bodies end in a newline (json.Encoder); --json output must end
// in exactly one, not an empty line.
func TestJSONEndsInOneNewline(t *testing.T) {
	cfg := startAPI(t, sampleAPI())
	for _, args := range [][]string{
		{"opens", "--json"},
		{"opens", "k7q2m4xwah3bdf5a", "--json"},
		{"messages", "--json"},
		{"queue", "--json"},
		{"status", "--json"},
		{"keys", "rotate", "--json"},
		{"purge", "--json"},
	} {
		code, out, errOut := run(0, append(args, "--config", cfg)...)
		if code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, code, errOut)
		}
		if !strings.HasSuffix(out, "}\n") || strings.HasSuffix(out, "\n\n") {
			t.Errorf("%v: output ends in %q, want one newline after the JSON", args, out[max(0, len(out)-8):])
		}
	}
}

// README: every command takes --json. Each one must accept it (no usage
// error); those that need the server get the fake API.
func TestEveryCommandTakesJSON(t *testing.T) {
	cfg := startAPI(t, sampleAPI())
	for _, c := range commands() {
		args := []string{c.name, "--json", "--config", cfg}
		switch c.name {
		case "keys":
			args = append(args, "rotate")
		case "config":
			args = append(args, "check")
		case "auth":
			args = append(args, "status")
		case "init": // a new file; nothing left to ask
			args = []string{"init", "--json", "--config", filepath.Join(t.TempDir(), "init.toml"), "--provider", "outbox",
				"--base-url", "http://127.0.0.1:8025"}
		case "store":
			args = append(args, "schema")
		case "serve":
			args = append(args, "--log-level", "nonsense") // stops before serving
		}
		code, out, errOut := run(0, args...)
		if strings.Contains(errOut, "unknown flag") {
			t.Errorf("%s does not take --json: %q", c.name, errOut)
			continue
		}
		if c.name == "serve" {
			if code != 2 || !strings.Contains(errOut, "--log-level") {
				t.Errorf("serve --json --log-level nonsense: exit %d, stderr %q", code, errOut)
			}
			continue
		}
		var v any
		if code != 0 || json.Unmarshal([]byte(out), &v) != nil {
			t.Errorf("%v: exit %d, stdout not JSON: %q (stderr %q)", args, code, out, errOut)
		}
	}
}

func TestVersionJSON(t *testing.T) {
	code, out, _ := run(0, "version", "--json")
	var v VersionResponse
	if err := json.Unmarshal([]byte(out), &v); err != nil || code != 0 {
		t.Fatalf("exit %d, %v: %q", code, err, out)
	}
	if v.Version != Version || v.Go != runtime.Version() {
		t.Errorf("got %+v, want version %s, go %s", v, Version, runtime.Version())
	}
}

func TestConfigCheckJSON(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.toml", "data_dir = \""+dir+"\"\n")
	bad := write("bad.toml", "data_dir = \""+dir+"\"\nfrobnicate = 1\n[tracking]\npolicy = \"sometimes\"\n")
	warn := write("warn.toml", "data_dir = \""+dir+"\"\n[upstream]\nurl = \"smtp://127.0.0.1:2526\"\ntls = \"none\"\n")
	syntax := write("syntax.toml", "[smtp\nlisten = 1\n")
	for _, tc := range []struct {
		name     string
		path     string
		wantCode int
		wantOK   bool
		problems []string // keys
		warnings []string // keys
	}{
		{"good", good, 0, true, nil, nil},
		{"bad", bad, 1, false, []string{"frobnicate", "tracking.policy"}, nil},
		{"warn", warn, 0, true, nil, []string{"tracking.base_url"}},
		{"syntax", syntax, 1, false, []string{""}, nil}, // no key: the file does not parse
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(0, "config", "check", "--json", "--config", tc.path)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.wantCode, errOut)
			}
			var r ConfigCheckResponse
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, out)
			}
			if !strings.Contains(out, `"problems": [`) || !strings.Contains(out, `"warnings": [`) {
				t.Errorf("problems and warnings must be lists, never null:\n%s", out)
			}
			if r.ConfigFile != tc.path || r.OK != tc.wantOK {
				t.Errorf("config_file %q ok %v, want %q %v", r.ConfigFile, r.OK, tc.path, tc.wantOK)
			}
			if got := keys(r.Problems); !slices.Equal(got, tc.problems) {
				t.Errorf("problem keys %q, want %q", got, tc.problems)
			}
			if got := keys(r.Warnings); !slices.Equal(got, tc.warnings) {
				t.Errorf("warning keys %q, want %q", got, tc.warnings)
			}
			for _, p := range append(r.Problems, r.Warnings...) {
				if p.Reason == "" {
					t.Errorf("%q has no reason", p.Key)
				}
			}
			if tc.wantCode == 0 && errOut != "" {
				t.Errorf("stderr %q, want nothing (warnings are in the JSON)", errOut)
			}
		})
	}
}

func keys(ps []ConfigProblem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Key)
	}
	return out
}
