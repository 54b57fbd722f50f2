package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pixelrelay/config"
	"pixelrelay/relay/smtptest"
)

// runStdin runs a command with stdin (not a terminal).
func runStdin(stdin string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, now: func() time.Time { return testNow }}
	code = e.main(args)
	return code, out.String(), errb.String()
}

// initEnv keeps init's files (and the default data_dir) under a temp dir.
func initEnv(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("XDG_STATE_HOME", filepath.Join(dir, "state"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	t.Setenv("PIXELRELAY_CONFIG", "")
	t.Setenv("PIXELRELAY_UPSTREAM_PASSWORD", "")
	t.Chdir(dir)
	return dir
}

func TestInitWritesConfig(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "client-secret")
	os.WriteFile(secret, []byte("GOCSPX-secret\n"), 0o600)
	ca := smtptest.Start(t, smtptest.Script{}).CAFile // a PEM certificate
	cases := []struct {
		name     string
		args     []string
		stdin    string
		want     []string // lines of the config file
		absent   []string
		password string // in config.password; "" = no such file
		oauthSec string // in config.oauth-secret
		say      []string
	}{
		{name: "gmail", args: []string{"--provider", "gmail", "--address", "you@gmail.com", "--base-url", "https://track.example.com", "--password-stdin"},
			stdin: "abcd efgh ijkl mnop\n",
			want: []string{`url = "smtp://smtp.gmail.com:587"`, `username = "you@gmail.com"`, `imap_url = "imaps://imap.gmail.com:993"`,
				`sent_folder = "auto"`, `base_url = "https://track.example.com"`, `password_file = "`},
			absent: []string{"auth =", "password ="}, password: "abcdefghijklmnop",
			say: []string{"server          127.0.0.1", "port            2525", "pixelrelay serve --config"}},
		{name: "gmail oauth", args: []string{"--provider", "gmail", "--address", "you@gmail.com", "--oauth", "--client-id", "123.apps.googleusercontent.com", "--client-secret-file", secret},
			want: []string{`auth = "oauth"`, `oauth_provider = "google"`, `oauth_client_id = "123.apps.googleusercontent.com"`, `oauth_client_secret_file = "`,
				`base_url = "http://127.0.0.1:8025"`},
			absent: []string{"password_file"}, oauthSec: "GOCSPX-secret",
			say: []string{"pixelrelay auth login"}},
		{name: "microsoft oauth, public client", args: []string{"--provider", "microsoft", "--address", "you@example.com", "--oauth", "--client-id", "0000-1111"},
			want:   []string{`url = "smtp://smtp.office365.com:587"`, `imap_url = "imaps://outlook.office365.com:993"`, `oauth_provider = "microsoft"`},
			absent: []string{"oauth_client_secret", "password_file"},
			say:    []string{"pixelrelay auth login"}},
		{name: "microsoft password", args: []string{"--provider", "microsoft", "--address", "you@example.com", "--password-stdin"}, stdin: "pw with spaces \n",
			want: []string{`url = "smtp://smtp.office365.com:587"`}, absent: []string{"auth ="}, password: "pw with spaces "},
		{name: "icloud", args: []string{"--provider", "icloud", "--address", "you@icloud.com", "--password-stdin"}, stdin: "abcd-efgh-ijkl-mnop",
			want: []string{`url = "smtp://smtp.mail.me.com:587"`, `imap_url = "imaps://imap.mail.me.com:993"`}, password: "abcd-efgh-ijkl-mnop"},
		{name: "smtp with imap", args: []string{"--provider", "smtp", "--upstream", "smtps://mail.example.org:465", "--imap-url", "imaps://mail.example.org",
			"--address", "me", "--password-stdin", "--ca-file", ca}, stdin: `p"w\`,
			want: []string{`url = "smtps://mail.example.org:465"`, `username = "me"`, `sent_folder = "on"`, `imap_url = "imaps://mail.example.org"`,
				`ca_file = "` + ca + `"`}, password: `p"w\`},
		{name: "smtp with a custom OAuth provider", args: []string{"--provider", "smtp", "--upstream", "smtp://mail.example.org:587", "--address", "me@example.org",
			"--oauth", "--client-id", "c1", "--oauth-auth-url", "https://id.example.org/auth", "--oauth-token-url", "https://id.example.org/token"},
			want:   []string{`auth = "oauth"`, `oauth_auth_url = "https://id.example.org/auth"`, `oauth_token_url = "https://id.example.org/token"`, `oauth_client_id = "c1"`},
			absent: []string{"oauth_provider", "password_file"}, say: []string{"pixelrelay auth login"}},
		{name: "smtp without login", args: []string{"--provider", "smtp", "--upstream", "smtp://relay.example.org:587", "--address", ""},
			want: []string{`url = "smtp://relay.example.org:587"`, `sent_folder = "auto"`}, absent: []string{"username", "password_file", "imap_url"}},
		{name: "smtp to a known provider", args: []string{"--provider", "smtp", "--upstream", "smtps://smtp.gmail.com:465", "--address", "a@gmail.com", "--password-stdin"},
			stdin: "pw", want: []string{`url = "smtps://smtp.gmail.com:465"`, `sent_folder = "auto"`, "# by one copy without pixels, over IMAP at imaps://imap.gmail.com:993"},
			absent: []string{"imap_url"}, password: "pw"},
		{name: "outbox", args: []string{"--provider", "outbox", "--base-url", "http://127.0.0.1:8025"},
			want: []string{`url = "outbox"`}, absent: []string{"username", "sent_folder", "imap_url"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := initEnv(t)
			path := filepath.Join(dir, "conf", "relay.toml")
			code, out, errOut := runStdin(tc.stdin, append([]string{"init", "--no-check", "--config", path}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			text := readFile(t, path)
			for _, w := range tc.want {
				if !hasLine(text, w) {
					t.Errorf("no line starting %q in\n%s", w, text)
				}
			}
			for _, a := range tc.absent {
				if hasLine(text, a) {
					t.Errorf("a line %q in\n%s", a, text)
				}
			}
			checkSecret(t, filepath.Join(dir, "conf", "relay.password"), tc.password)
			checkSecret(t, filepath.Join(dir, "conf", "relay.oauth-secret"), tc.oauthSec)
			for _, s := range tc.say {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			if code, out, _ := run(0, "config", "check", "--config", path); code != 0 {
				t.Errorf("config check of the written file: exit %d\n%s\n%s", code, out, text)
			}
			cfg, err := config.LoadValid(path)
			if err != nil {
				t.Fatal(err)
			}
			if tc.password != "" && cfg.Upstream.Password != strings.TrimRight(tc.password, "\n") {
				t.Errorf("upstream password read back %q, want %q", cfg.Upstream.Password, tc.password)
			}
		})
	}
}

// hasLine reports whether a line of text starts with prefix.
func hasLine(text, prefix string) bool {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkSecret checks that path holds want and is 0600, or is missing
// when want is "".
func checkSecret(t *testing.T, path, want string) {
	t.Helper()
	st, err := os.Stat(path)
	if want == "" {
		if err == nil {
			t.Errorf("%s exists", path)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, st.Mode().Perm())
	}
	if got := readFile(t, path); got != want+"\n" {
		t.Errorf("%s holds %q, want %q", path, got, want+"\n")
	}
}

func TestInitDefaultPlace(t *testing.T) {
	dir := initEnv(t)
	code, out, errOut := runStdin("", "init", "--provider", "outbox", "--no-check")
	want := filepath.Join(dir, "config", "pixelrelay", "config.toml")
	if code != 0 || !strings.Contains(out, "Wrote "+want) {
		t.Fatalf("exit %d, out %q, stderr %q", code, out, errOut)
	}
	if strings.Contains(out, "--config") {
		t.Errorf("the next commands name --config though the file is at the default place:\n%s", out)
	}
	// $PIXELRELAY_CONFIG names the place.
	env := filepath.Join(dir, "env.toml")
	t.Setenv("PIXELRELAY_CONFIG", env)
	if code, _, errOut := runStdin("", "init", "--provider", "outbox", "--no-check"); code != 0 {
		t.Fatalf("with $PIXELRELAY_CONFIG: exit %d, %s", code, errOut)
	}
	readFile(t, env)
}

func TestInitRefuses(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		stdin string
		code  int
		say   string
	}{
		{"no provider", nil, "", 2, "--provider is needed"},
		{"unknown provider", []string{"--provider", "yahoo"}, "", 2, `unknown provider "yahoo"`},
		{"no address", []string{"--provider", "gmail", "--password-stdin"}, "pw", 2, "--address is needed"},
		{"no password", []string{"--provider", "gmail", "--address", "a@gmail.com"}, "", 2, "--password-stdin or --oauth is needed"},
		{"no password (icloud)", []string{"--provider", "icloud", "--address", "a@icloud.com"}, "", 2, "--password-stdin is needed"},
		{"empty stdin", []string{"--provider", "gmail", "--address", "a@gmail.com", "--password-stdin"}, "", 2, "stdin holds no password"},
		{"bad address", []string{"--provider", "icloud", "--address", "me", "--password-stdin"}, "pw", 2, "not an address"},
		{"smtp without url", []string{"--provider", "smtp", "--address", ""}, "", 2, "--upstream is needed"},
		{"bad upstream", []string{"--provider", "smtp", "--upstream", "http://x", "--address", ""}, "", 2, "want smtp://host:587"},
		{"upstream with preset", []string{"--provider", "gmail", "--upstream", "smtp://x:587"}, "", 2, "--upstream is for --provider smtp"},
		{"oauth for icloud", []string{"--provider", "icloud", "--address", "a@icloud.com", "--oauth"}, "", 2, "--oauth is for gmail and microsoft"},
		{"oauth without id", []string{"--provider", "microsoft", "--address", "a@example.com", "--oauth"}, "", 2, "--client-id is needed"},
		{"google without secret", []string{"--provider", "gmail", "--address", "a@gmail.com", "--oauth", "--client-id", "x"}, "", 2, "--client-secret-file is needed"},
		{"custom OAuth URLs for gmail", []string{"--provider", "gmail", "--address", "a@gmail.com", "--oauth", "--client-id", "x", "--oauth-auth-url", "https://a/b"}, "", 2, "are for --provider smtp with --oauth"},
		{"smtp oauth without URLs", []string{"--provider", "smtp", "--upstream", "smtp://h:587", "--address", "a@h", "--oauth", "--client-id", "x"}, "", 2, "needs --oauth-auth-url and --oauth-token-url"},
		{"bad base url", []string{"--provider", "outbox", "--base-url", "track.example.com"}, "", 2, "want https://host"},
		{"argument", []string{"--provider", "outbox", "gmail"}, "", 2, "unexpected argument"},
		{"missing secret file", []string{"--provider", "gmail", "--client-secret-file", "/nonexistent/x"}, "", 1, "--client-secret-file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := initEnv(t)
			path := filepath.Join(dir, "c.toml")
			code, out, errOut := runStdin(tc.stdin, append([]string{"init", "--no-check", "--config", path}, tc.args...)...)
			if code != tc.code || !strings.Contains(errOut, tc.say) || strings.Count(errOut, "\n") != 1 {
				t.Errorf("exit %d, stderr %q; want exit %d and one line with %q (stdout %q)", code, errOut, tc.code, tc.say, out)
			}
			if _, err := os.Stat(path); err == nil {
				t.Errorf("a config was written")
			}
		})
	}
}

func TestInitForce(t *testing.T) {
	dir := initEnv(t)
	path := filepath.Join(dir, "c.toml")
	os.WriteFile(path, []byte("# mine\n"), 0o600)
	args := []string{"init", "--no-check", "--config", path, "--provider", "icloud", "--address", "a@icloud.com", "--password-stdin"}
	code, _, errOut := runStdin("pw1", args...)
	if code != 1 || !strings.Contains(errOut, "already exists: pass --force") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("without --force: exit %d, stderr %q", code, errOut)
	}
	if got := readFile(t, path); got != "# mine\n" {
		t.Errorf("the file was changed without --force: %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "c.password")); err == nil {
		t.Errorf("a password file was written without --force")
	}
	if code, _, errOut := runStdin("pw2", append(args, "--force")...); code != 0 {
		t.Fatalf("with --force: exit %d, %s", code, errOut)
	}
	if !strings.Contains(readFile(t, path), "smtp.mail.me.com") {
		t.Errorf("--force did not replace the file")
	}
	checkSecret(t, filepath.Join(dir, "c.password"), "pw2")
	// A setup without a password removes the earlier one's.
	if code, _, errOut := runStdin("", "init", "--no-check", "--config", path, "--provider", "outbox", "--force"); code != 0 {
		t.Fatalf("outbox with --force: exit %d, %s", code, errOut)
	}
	checkSecret(t, filepath.Join(dir, "c.password"), "")
}

// TestInitAsks answers init's questions as a person at a terminal would.
func TestInitAsks(t *testing.T) {
	cases := []struct {
		name   string
		set    map[string]bool
		given  answers
		input  string
		want   answers
		prompt []string // in the questions, in order
	}{
		{name: "gmail, app password", input: "gmial\ngmail\nyou\nyou@gmail.com\n\nabcd efgh ijkl mnop\nhttps://track.example.com\n",
			want: answers{provider: "gmail", address: "you@gmail.com", upstream: "smtp://smtp.gmail.com:587", imapURL: "imaps://imap.gmail.com:993",
				password: "abcdefghijklmnop", baseURL: "https://track.example.com"},
			prompt: []string{`unknown provider "gmial"`, "Your address", `"you" is not an address`, "Sign in with (password, oauth) [password]",
				"myaccount.google.com/apppasswords", "App password (not shown)", "Tracker URL [http://127.0.0.1:8025]"}},
		{name: "microsoft takes oauth by default", input: "microsoft\nyou@example.com\n\nclient-1\n\n\n",
			want: answers{provider: "microsoft", address: "you@example.com", upstream: "smtp://smtp.office365.com:587", imapURL: "imaps://outlook.office365.com:993",
				oauth: true, clientID: "client-1", baseURL: "http://127.0.0.1:8025"},
			prompt: []string{"December 2026", "Sign in with (password, oauth) [oauth]", "OAuth client id", "public client", "OAuth client secret"}},
		{name: "flags are not asked", set: map[string]bool{"provider": true, "address": true},
			given: answers{provider: "icloud", address: "a@icloud.com"}, input: "secret\n\n",
			want: answers{provider: "icloud", address: "a@icloud.com", upstream: "smtp://smtp.mail.me.com:587", imapURL: "imaps://imap.mail.me.com:993",
				password: "secret", baseURL: "http://127.0.0.1:8025"},
			prompt: []string{"account.apple.com", "App-specific password (not shown)"}},
		{name: "smtp", input: "smtp\nmail.example.org\nsmtp://mail.example.org:587\n\n\nhttp://track.example.org\n",
			want:   answers{provider: "smtp", upstream: "smtp://mail.example.org:587", baseURL: "http://track.example.org"},
			prompt: []string{"SMTP server URL", "want smtp://host:587", "IMAP server URL (empty: none)", "Login name (empty: none)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			q := &asker{in: strings.NewReader(tc.input), out: &out, interactive: true}
			a := tc.given
			set := tc.set
			if set == nil {
				set = map[string]bool{}
			}
			if err := gather(&a, set, q); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			if a != tc.want {
				t.Errorf("answers\n%+v\nwant\n%+v", a, tc.want)
			}
			rest := out.String()
			for _, p := range tc.prompt {
				i := strings.Index(rest, p)
				if i < 0 {
					t.Fatalf("%q not asked (in this order) in:\n%s", p, out.String())
				}
				rest = rest[i+len(p):]
			}
			if strings.Contains(out.String(), "Provider") == set["provider"] {
				t.Errorf("provider asked: %v, given as a flag: %v", strings.Contains(out.String(), "Provider"), set["provider"])
			}
		})
	}
}

// TestInitAskGivesUp: answers that never fit end with a usage error, and
// so does the end of the input.
func TestInitAskGivesUp(t *testing.T) {
	for _, input := range []string{strings.Repeat("nope\n", 10), "gmail\n"} {
		var out bytes.Buffer
		q := &asker{in: strings.NewReader(input), out: &out, interactive: true}
		var a answers
		if err := gather(&a, map[string]bool{}, q); err == nil {
			t.Errorf("input %q: no error; answers %+v", input, a)
		}
	}
}
