package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"pixelrelay/config"
	"pixelrelay/internal/dovecottest"
	"pixelrelay/internal/oauthtest"
	"pixelrelay/internal/testport"
	"pixelrelay/relay/oauth"
	"pixelrelay/relay/smtptest"
)

// TestInitChecks runs init's checks against a real SMTP server (go-smtp,
// STARTTLS, AUTH) and a real IMAP server (Dovecot).
func TestInitChecks(t *testing.T) {
	const user, pass = "me@example.org", "right password"
	// other@ has another password at the IMAP server.
	up := smtptest.Start(t, smtptest.Script{RequireTLS: true, AuthUsers: map[string]string{user: pass, "other@example.org": "smtp password"}})
	imap := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{user: pass, "other@example.org": "imap password"}})
	bare := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{user: pass}, Mailboxes: []dovecottest.Mailbox{}})
	cas := filepath.Join(t.TempDir(), "cas.pem")
	os.WriteFile(cas, slices.Concat(readBytes(t, up.CAFile), readBytes(t, imap.CAFile), readBytes(t, bare.CAFile)), 0o644)
	cases := []struct {
		name     string
		user     string
		smtpURL  string
		imapURL  string
		password string
		code     int
		say      []string // on stdout, in order
		stderr   string
	}{
		{name: "ok", smtpURL: up.URL("smtp"), imapURL: "imap://" + imap.IMAPAddr, password: pass,
			say: []string{"Checking the SMTP login (me@example.org at " + up.Addr + ")... ok", "Checking the Sent folder (IMAP at " + imap.IMAPAddr + ")... ok (Sent)", "port            2525"}},
		{name: "ok over imaps", smtpURL: up.URL("smtp"), imapURL: "imaps://" + imap.TLSAddr, password: pass,
			say: []string{"... ok", "... ok (Sent)"}},
		{name: "wrong password", smtpURL: up.URL("smtp"), imapURL: "imap://" + imap.IMAPAddr, password: "wrong", code: 1,
			say:    []string{"Checking the SMTP login", "failed:", "the SMTP server refused the login (535 5.7.8 Authentication credentials invalid)", "Point your mail client"},
			stderr: "is written, but the SMTP login check failed: the SMTP server refused the login (535 5.7.8"},
		{name: "IMAP refuses", user: "other@example.org", smtpURL: up.URL("smtp"), imapURL: "imap://" + imap.IMAPAddr, password: "smtp password", code: 1,
			say: []string{"... ok", "failed:", "the IMAP server refused the login (IMAP login as other@example.org refused"}, stderr: "the Sent folder check failed: the IMAP server refused the login"},
		{name: "no Sent mailbox", smtpURL: up.URL("smtp"), imapURL: "imap://" + bare.IMAPAddr, password: pass, code: 1,
			say: []string{"... ok", "Checking the Sent folder", "failed:", "no Sent mailbox found"}, stderr: "the Sent folder check failed: no Sent mailbox found"},
		{name: "SMTP down", smtpURL: "smtp://" + testport.Addr(t), imapURL: "imap://" + imap.IMAPAddr, password: pass, code: 1,
			say: []string{"failed:", "could not reach the SMTP server"}, stderr: "could not reach the SMTP server"},
		{name: "IMAP down", smtpURL: up.URL("smtp"), imapURL: "imap://" + testport.Addr(t), password: pass, code: 1,
			say: []string{"... ok", "failed:", "could not reach the IMAP server"}, stderr: "the Sent folder check failed: could not reach the IMAP server"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := initEnv(t)
			path := filepath.Join(dir, "c.toml")
			if tc.user == "" {
				tc.user = user
			}
			code, out, errOut := runStdin(tc.password+"\n", "init", "--config", path, "--provider", "smtp", "--upstream", tc.smtpURL,
				"--imap-url", tc.imapURL, "--ca-file", cas, "--address", tc.user, "--password-stdin")
			if code != tc.code || !strings.Contains(errOut, tc.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, tc.code, tc.stderr)
			}
			if tc.code != 0 && strings.Count(errOut, "pixelrelay: ") != 1+strings.Count(errOut, "note:") {
				t.Errorf("stderr is not one line: %q", errOut)
			}
			inOrder(t, out, tc.say)
			if _, err := config.LoadValid(path); err != nil {
				t.Errorf("the config is not written or not valid: %v", err)
			}
		})
	}
}

// TestInitCheckOAuth: an OAuth account is not checked before its sign-in.
func TestInitCheckOAuth(t *testing.T) {
	dir := initEnv(t)
	code, out, errOut := runStdin("", "init", "--config", filepath.Join(dir, "c.toml"), "--provider", "microsoft",
		"--address", "a@example.com", "--oauth", "--client-id", "id-1", "--base-url", "https://t.example.com")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	inOrder(t, out, []string{"Not checked yet", "pixelrelay auth login"})
}

// TestLoginWords: each provider's refusal in plain words, from the
// error a real delivery gets.
func TestLoginWords(t *testing.T) {
	cases := []struct {
		provider string
		oauth    bool
		reply    *smtp.SMTPError
		want     string
	}{
		{"gmail", false, smtptest.Reply(535, 5, 7, 8, "Username and Password not accepted."), "Gmail refused the app password (535 5.7.8 Username and Password not accepted.): use a 16-letter app password"},
		{"gmail", false, smtptest.Reply(534, 5, 7, 9, "Application-specific password required."), "Gmail wants an app password (534 5.7.9 Application-specific password required.)"},
		{"microsoft", false, smtptest.Reply(535, 5, 7, 139, "Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant."), "Microsoft 365 refused the password (535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.): SMTP AUTH"},
		{"icloud", false, smtptest.Reply(535, 5, 7, 8, "Authentication failed"), "iCloud refused the app-specific password (535 5.7.8 Authentication failed)"},
		{"smtp", false, smtptest.Reply(535, 5, 7, 8, "no"), "the SMTP server refused the login (535 5.7.8 no)"},
		{"gmail", true, smtptest.Reply(535, 5, 7, 8, "Username and Password not accepted."), "Gmail refused the OAuth sign-in (535 5.7.8"},
		{"gmail", false, smtptest.Reply(454, 4, 7, 0, "Too many login attempts"), "454 4.7.0 Too many login attempts"},
		{"microsoft", true, smtptest.Reply(535, 5, 7, 139, "Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox."), "Microsoft 365 refused the OAuth sign-in (535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox.): the address must be the one that signed in, and SMTP AUTH must be on"},
	}
	for _, tc := range cases {
		t.Run(tc.provider+" "+tc.reply.Message, func(t *testing.T) {
			up := smtptest.Start(t, smtptest.Script{AuthUsers: map[string]string{"a": "b"}, AuthFail: tc.reply})
			cfg := config.Default()
			cfg.Upstream.URL, cfg.Upstream.TLS, cfg.Upstream.Username, cfg.Upstream.Password = up.URL("smtp"), "none", "a", "b"
			p, _ := presetOf(tc.provider)
			err := checkLogin(cfg, p)
			if tc.oauth {
				// The token part of an OAuth login is relay/oauth's; the words are ours.
				err = smtpFailure(p, true, errOf(tc.reply))
			}
			if !strings.Contains(err, tc.want) {
				t.Errorf("got %q\nwant %q", err, tc.want)
			}
		})
	}
}

func errOf(se *smtp.SMTPError) error { return se }

func readBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// inOrder checks that out holds each of want, in that order.
func inOrder(t *testing.T, out string, want []string) {
	t.Helper()
	rest := out
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Errorf("%q missing (in this order) from:\n%s", w, out)
			return
		}
		rest = rest[i+len(w):]
	}
}

// TestInitJSON: --json prints the files, the checks and the next commands.
func TestInitJSON(t *testing.T) {
	up := smtptest.Start(t, smtptest.Script{StartTLS: true, AuthUsers: map[string]string{"me": "pw"}})
	dir := initEnv(t)
	path := filepath.Join(dir, "c.toml")
	code, out, errOut := runStdin("pw\n", "init", "--json", "--config", path, "--provider", "smtp", "--upstream", up.URL("smtp"),
		"--ca-file", up.CAFile, "--address", "me", "--password-stdin", "--base-url", "https://t.example.com")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var r InitResponse
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	want := InitResponse{ConfigFile: path, PasswordFile: filepath.Join(dir, "c.password"),
		Checks: []InitCheck{{"smtp_login", "ok", ""}}, SMTPListen: "127.0.0.1:2525", Next: []string{"pixelrelay serve --config " + path}}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got  %+v\nwant %+v", r, want)
	}
}

// TestInitCheckOnly: init --check checks the config in use and writes
// nothing; for OAuth after the sign-in.
func TestInitCheckOnly(t *testing.T) {
	dir := initEnv(t)
	up := smtptest.Start(t, smtptest.Script{StartTLS: true, AuthUsers: map[string]string{"me": "right"}})
	path := filepath.Join(dir, "c.toml")
	if code, _, errOut := runStdin("wrong\n", "init", "--no-check", "--config", path, "--provider", "smtp", "--upstream", up.URL("smtp"),
		"--ca-file", up.CAFile, "--address", "me", "--password-stdin"); code != 0 {
		t.Fatal(errOut)
	}
	before := readFile(t, path)
	code, out, errOut := runStdin("", "init", "--check", "--config", path)
	if code != 1 || !strings.Contains(errOut, "c.toml: the SMTP login check failed: the SMTP server refused the login (535") {
		t.Errorf("wrong password: exit %d, stderr %q\n%s", code, errOut, out)
	}
	os.WriteFile(filepath.Join(dir, "c.password"), []byte("right\n"), 0o600)
	if code, out, errOut := runStdin("", "init", "--check", "--config", path); code != 0 || !strings.Contains(out, "... ok") {
		t.Errorf("right password: exit %d, stderr %q\n%s", code, errOut, out)
	}
	if readFile(t, path) != before {
		t.Errorf("--check changed the config")
	}
	if code, _, errOut := runStdin("", "init", "--check", "--config", path, "--provider", "gmail"); code != 2 {
		t.Errorf("--check with --provider: exit %d, %s", code, errOut)
	}

	// OAuth: not checked before the sign-in, checked with XOAUTH2 after.
	p := oauthtest.Start(t, oauthtest.Options{})
	xo := smtptest.Start(t, smtptest.Script{StartTLS: true, XOAUTH2: func(_, tok string) bool { return p.Live(tok) }})
	op := filepath.Join(dir, "oauth.toml")
	os.WriteFile(op, []byte(fmt.Sprintf("data_dir = %q\n[upstream]\nurl = %q\nca_file = %q\nusername = \"me@example.com\"\nauth = \"oauth\"\n"+
		"oauth_client_id = %q\noauth_auth_url = %q\noauth_token_url = %q\n", filepath.Join(dir, "data"), xo.URL("smtp"), xo.CAFile,
		p.ClientID, p.AuthURL, p.TokenURL)), 0o600)
	if code, out, errOut := runStdin("", "init", "--check", "--config", op); code != 1 || !strings.Contains(errOut, "not signed in with OAuth: run pixelrelay auth login") {
		t.Errorf("before the sign-in: exit %d, stderr %q\n%s", code, errOut, out)
	}
	cfg, err := config.LoadValid(op)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := cfg.Account(config.DefaultAccount)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := oauth.Login(ctx, oauth.FromConfig(cfg.DataDir, a), oauthtest.Browser(t)); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runStdin("", "init", "--check", "--json", "--config", op)
	var r InitResponse
	json.Unmarshal([]byte(out), &r)
	if code != 0 || len(r.Checks) != 1 || r.Checks[0] != (InitCheck{"smtp_login", "ok", ""}) {
		t.Errorf("after the sign-in: exit %d, stderr %q\n%s", code, errOut, out)
	}
}
