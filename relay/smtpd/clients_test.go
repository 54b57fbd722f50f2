package smtpd

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Real mail clients submitting through the server. CI installs them with
// apt-get (swaks, msmtp; python3 is there); a missing one skips its test
// on a developer's machine and fails it in CI (CI set).

func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil && os.Getenv("CI") != "" {
		t.Fatalf("%s not installed: .ci/run must install it (apt-get install -y %s)", name, name)
	}
	if err != nil {
		t.Skipf("%s not installed (apt-get install -y %s): skipping the real-client test", name, name)
	}
	return p
}

// clientEnv is a server with STARTTLS and one user, alice/wonder.
func clientEnv(t *testing.T) (e *env, host, port, caFile string) {
	cert, key, _ := makeCert(t, t.TempDir())
	cfg := baseConfig()
	cfg.SMTP.TLSCert, cfg.SMTP.TLSKey = cert, key
	cfg.SMTP.Users = users(t, "alice", "wonder")
	e = start(t, cfg, nil)
	host, port, _ = net.SplitHostPort(e.addr)
	return e, host, port, cert
}

func run(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd.Args[0], err, out)
	}
	return string(out)
}

func wantOne(t *testing.T, e *env, from, to, bodyPart string) {
	t.Helper()
	msgs := e.sp.messages()
	if len(msgs) != 1 {
		t.Fatalf("spooled %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if m.from != from || len(m.to) != 1 || m.to[0] != to {
		t.Errorf("envelope %q → %q, want %q → %q", m.from, m.to, from, to)
	}
	if !strings.HasPrefix(m.body, "Received: from ") || !strings.Contains(m.body, bodyPart) {
		t.Errorf("body:\n%s", m.body)
	}
}

func TestSwaks(t *testing.T) {
	swaks := lookPath(t, "swaks")
	for _, tc := range []struct{ name, auth string }{{"plain", "PLAIN"}, {"login", "LOGIN"}} {
		t.Run(tc.name, func(t *testing.T) {
			e, host, port, _ := clientEnv(t)
			out := run(t, exec.Command(swaks, "--server", host, "--port", port, "--tls",
				"--auth", tc.auth, "--auth-user", "alice", "--auth-password", "wonder",
				"--from", "a@example.com", "--to", "b@example.com",
				"--header", "Subject: from swaks", "--body", "swaks body line"))
			if !strings.Contains(out, "250 2.0.0 OK: queued as Q0001") {
				t.Errorf("swaks transcript lacks the queue id:\n%s", out)
			}
			wantOne(t, e, "a@example.com", "b@example.com", "swaks body line")
			if !strings.Contains(e.sp.messages()[0].body, "with ESMTPSA;") {
				t.Error("Received header does not record TLS and AUTH")
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		e, host, port, _ := clientEnv(t)
		out, err := exec.Command(swaks, "--server", host, "--port", port, "--tls",
			"--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "nope",
			"--from", "a@example.com", "--to", "b@example.com").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "535 5.7.8") {
			t.Fatalf("swaks with a wrong password: %v\n%s", err, out)
		}
		if len(e.sp.messages()) != 0 {
			t.Fatal("message spooled without authentication")
		}
	})
}

func TestMsmtp(t *testing.T) {
	msmtp := lookPath(t, "msmtp")
	e, host, port, ca := clientEnv(t)
	dir := t.TempDir()
	rc := filepath.Join(dir, "msmtprc")
	os.WriteFile(rc, []byte(strings.Join([]string{
		"account default",
		"host " + host,
		"port " + port,
		"tls on",
		"tls_starttls on",
		"tls_trust_file " + ca,
		"auth plain",
		"user alice",
		"password wonder",
		"from a@example.com",
		"",
	}, "\n")), 0o600)
	cmd := exec.Command(msmtp, "--file="+rc, "b@example.com")
	cmd.Stdin = strings.NewReader("Subject: from msmtp\n\nmsmtp body line\n.single dot start\n")
	run(t, cmd)
	wantOne(t, e, "a@example.com", "b@example.com", "msmtp body line\r\n.single dot start\r\n")
}

const pyClient = `
import smtplib, sys
port = int(sys.argv[1])
s = smtplib.SMTP("127.0.0.1", port, timeout=10)
s.ehlo("py.test")
assert s.has_extn("smtputf8"), "no SMTPUTF8"
assert s.has_extn("pipelining"), "no PIPELINING"
s.login("alice", "wonder")
msg = "Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\n\r\nGrüße, python body\r\n".encode("utf-8")
code, resp = s.mail("a@example.com", ["SMTPUTF8", "BODY=8BITMIME"])
assert code == 250, (code, resp)
code, resp = s.rcpt("björn@exämple.com")
assert code == 250, (code, resp)
code, resp = s.data(msg)
print(code, resp.decode())
s.quit()
`

func TestPythonSmtplib(t *testing.T) {
	py := lookPath(t, "python3")
	e, _, port, _ := clientEnv(t)
	out := run(t, exec.Command(py, "-c", pyClient, port))
	if !strings.Contains(out, "250 2.0.0 OK: queued as Q0001") {
		t.Errorf("python output: %s", out)
	}
	wantOne(t, e, "a@example.com", "björn@exämple.com", "Grüße, python body\r\n")
}
