package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"pixelrelay/internal/oauthtest"
	"pixelrelay/relay/smtptest"
)

// authLogin runs `pixelrelay auth login --no-browser` like a user: it
// reads the printed URL and opens it in a "browser" (the fake provider
// redirects straight back to the loopback address the command listens
// on). It returns the command's output.
func authLogin(t *testing.T, in *instance, args ...string) string {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"auth", "login", "--no-browser", "--timeout", "60s", "--config", in.cfgPath}, args...)...)
	cmd.Env = in.env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		if u, ok := strings.CutPrefix(line, "  http"); ok {
			go follow(t, "http"+u)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("auth login: %v\n%s%s", err, out.String(), stderr.String())
	}
	return out.String()
}

func follow(t *testing.T, u string) {
	resp, err := http.Get(u)
	if err != nil {
		t.Errorf("browser: %v", err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "signed in") {
		t.Errorf("browser: %d %s", resp.StatusCode, body)
	}
}

func oauthConfig(srv *smtptest.Server, p *oauthtest.Provider) string {
	return fmt.Sprintf(`
[upstream]
url = "smtp://%s"
tls = "none"
auth = "oauth"
username = "me@example.com"
oauth_client_id = %q
oauth_auth_url = %q
oauth_token_url = %q
`, srv.Addr, p.ClientID, p.AuthURL, p.TokenURL)
}

func slowRetries(t *testing.T, in *instance) {
	t.Helper()
	b, err := os.ReadFile(in.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), `min_retry = "200ms"`, `min_retry = "10m"`, 1)
	s = strings.Replace(s, `max_retry = "1s"`, `max_retry = "1h"`, 1)
	if err := os.WriteFile(in.cfgPath, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

type authStatus struct {
	Accounts []struct {
		Account   string    `json:"account"`
		Method    string    `json:"method"`
		SignedIn  bool      `json:"signed_in"`
		Expiry    time.Time `json:"token_expiry"`
		LastError string    `json:"last_error"`
	} `json:"accounts"`
}

func readAuthStatus(t *testing.T, in *instance) authStatus {
	t.Helper()
	out, errOut, code := in.cli("auth", "status", "--json")
	var st authStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st.Accounts) != 1 {
		t.Fatalf("auth status --json: exit %d\n%s%s", code, out, errOut)
	}
	return st
}

// TestOAuthEndToEnd: sign in through the real binary, deliver with
// XOAUTH2 to an upstream that takes only live tokens, across token
// expiry; a revoked sign-in defers the copies (never bounced) with the
// command to run, auth status shows it, and a new sign-in sends them.
func TestOAuthEndToEnd(t *testing.T) {
	p := oauthtest.Start(t, oauthtest.Options{AccessTTL: 3 * time.Second, Rotate: true})
	srv := smtptest.Start(t, smtptest.Script{MaxPerConn: 1, // every copy signs in anew
		XOAUTH2: func(user, tok string) bool { return user == "me@example.com" && p.Live(tok) }})
	in := newInstance(t, oauthConfig(srv, p))
	// Copies that wait are retried only after 10 minutes: the new sign-in
	// below must send them at once.
	slowRetries(t, in)
	if st := readAuthStatus(t, in); st.Accounts[0].SignedIn || st.Accounts[0].Method != "oauth" {
		t.Fatalf("before sign-in: %+v", st)
	}
	in.start()
	if !logged(in.logs, "account default uses OAuth but is not signed in: run pixelrelay auth login") {
		t.Error("serve did not warn about the account nobody signed in")
	}
	// Signed in while serve runs.
	if out := authLogin(t, in); !strings.Contains(out, "Signed in account default") {
		t.Fatalf("auth login said:\n%s", out)
	}

	to := []string{"alice@example.org", "bob@example.org"}
	send := func(subject string) {
		t.Helper()
		if _, err := sendMail(t, in.smtpAddr, "me@example.com", to, htmlMessage("me@example.com", to, subject)); err != nil {
			t.Fatal(err)
		}
	}
	send("first")
	waitMessages(t, srv, 2, 30*time.Second)
	time.Sleep(3500 * time.Millisecond) // the access token expires
	send("after expiry")
	msgs := waitMessages(t, srv, 4, 30*time.Second)
	for _, m := range msgs {
		if m.AuthUser != "me@example.com" {
			t.Errorf("copy sent as %q", m.AuthUser)
		}
	}
	if n := p.Refreshes(); n < 2 {
		t.Errorf("refreshes = %d, want 2 or more (the token expired)", n)
	}

	p.Revoke()
	send("after revocation")
	want := "OAuth sign-in of account default has expired or was revoked: run pixelrelay auth login"
	waitQueue(t, in, func(out string) bool { return strings.Contains(out, "deferred") && strings.Contains(out, want) })
	if st := readAuthStatus(t, in); !strings.Contains(st.Accounts[0].LastError, want) {
		t.Errorf("auth status last_error %q, want %q", st.Accounts[0].LastError, want)
	}
	out, _, _ := in.cli("auth", "status")
	if !strings.Contains(out, "LAST ERROR") || !strings.Contains(out, "expired or was revoked") {
		t.Errorf("auth status:\n%s", out)
	}

	authLogin(t, in)
	waitMessages(t, srv, 6, 30*time.Second)
	if !logged(in.logs, "new OAuth sign-in: retrying deferred copies now") {
		t.Error("no log line for the new sign-in")
	}
	if st := readAuthStatus(t, in); st.Accounts[0].LastError != "" || !st.Accounts[0].SignedIn {
		t.Errorf("after the new sign-in: %+v", st)
	}
	if err := in.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// TestAuthCommandErrors: one-line errors and exit codes.
func TestAuthCommandErrors(t *testing.T) {
	in := newInstance(t, "")
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"auth"}, 2, "auth needs a subcommand"},
		{[]string{"auth", "logout"}, 2, "unknown auth subcommand"},
		{[]string{"auth", "login", "--account", "nope"}, 1, `no account "nope" in the config`},
		{[]string{"auth", "login"}, 1, "account default does not use OAuth"},
	}
	for _, tc := range tests {
		_, errOut, code := in.cli(tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q in one line", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}

// TestOAuthNamedAccount: an [[accounts]] block with OAuth is signed in by
// name, its mail goes out with its own token, and its revocation names
// the command with --account.
func TestOAuthNamedAccount(t *testing.T) {
	p := oauthtest.Start(t, oauthtest.Options{})
	srv := smtptest.Start(t, smtptest.Script{MaxPerConn: 1,
		XOAUTH2: func(user, tok string) bool { return user == "me@work.example" && p.Live(tok) }})
	in := newInstance(t, fmt.Sprintf(`
[[accounts]]
name = "work"
senders = ["@work.example"]
url = "smtp://%s"
tls = "none"
auth = "oauth"
username = "me@work.example"
oauth_client_id = %q
oauth_auth_url = %q
oauth_token_url = %q
`, srv.Addr, p.ClientID, p.AuthURL, p.TokenURL))
	if out := authLogin(t, in, "--account", "work"); !strings.Contains(out, "Signed in account work") {
		t.Fatalf("auth login said:\n%s", out)
	}
	in.start()
	to := []string{"alice@example.org"}
	if _, err := sendMail(t, in.smtpAddr, "me@work.example", to, htmlMessage("me@work.example", to, "work")); err != nil {
		t.Fatal(err)
	}
	if m := waitMessages(t, srv, 1, 30*time.Second); m[0].AuthUser != "me@work.example" {
		t.Errorf("sent as %q", m[0].AuthUser)
	}
	p.Revoke()
	if _, err := sendMail(t, in.smtpAddr, "me@work.example", to, htmlMessage("me@work.example", to, "revoked")); err != nil {
		t.Fatal(err)
	}
	waitQueue(t, in, func(out string) bool { return strings.Contains(out, "run pixelrelay auth login --account work") })
	out, _, code := in.cli("auth", "status")
	if code != 0 || !strings.Contains(out, "default") || !strings.Contains(out, "work") || !strings.Contains(out, "--account work") {
		t.Errorf("auth status:\n%s", out)
	}
	if err := in.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}
