// Package dovecottest starts a private Dovecot IMAP server for tests: the
// Debian package `dovecot-imapd` (which .ci/run installs), with its own
// configuration under a temporary directory, listening on loopback only:
// plain IMAP with STARTTLS on one port and IMAPS on another, a self-signed
// certificate for 127.0.0.1 (CAFile), users from a passwd-file, maildir
// mailboxes, and special-use mailboxes as the test asks (default: Sent,
// All Mail, Trash).
//
// Dovecot never runs as root here: when the tests run as root (CI) it runs
// as the unprivileged user "nobody" through setpriv, as internal/pgtest
// does, in a directory that user owns; otherwise as the test's own user.
//
// Without Dovecot a test that needs it is skipped with the reason, or fails
// when $CI or $PIXELRELAY_REQUIRE_DOVECOT is set.
package dovecottest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"pixelrelay/internal/testport"
)

// Binary is where Debian installs Dovecot.
const Binary = "/usr/sbin/dovecot"

// Mailbox is one mailbox every user has, made on first login.
type Mailbox struct {
	Name       string // "Sent", "[Gmail]/All Mail", ...
	SpecialUse string // "\\Sent", "\\All", "\\Trash", or "" for none
}

// GmailLike are the mailboxes of a Gmail account as IMAP shows them.
var GmailLike = []Mailbox{
	{Name: "[Gmail]/Sent Mail", SpecialUse: `\Sent`},
	{Name: "[Gmail]/All Mail", SpecialUse: `\All`},
	{Name: "[Gmail]/Trash", SpecialUse: `\Trash`},
}

// Default are the mailboxes when Options.Mailboxes is nil.
var Default = []Mailbox{
	{Name: "Sent", SpecialUse: `\Sent`},
	{Name: "All Mail", SpecialUse: `\All`},
	{Name: "Trash", SpecialUse: `\Trash`},
}

// Options configures a server.
type Options struct {
	// Users maps user names (addresses, as Gmail's) to passwords.
	Users map[string]string
	// Mailboxes every user has besides INBOX; nil means Default, an
	// empty non-nil slice none.
	Mailboxes []Mailbox
	// TokenInfoURL, when set, also signs users in with XOAUTH2 and
	// OAUTHBEARER: Dovecot GETs it with the access token appended and
	// takes a 200 JSON answer's "email" as the user (its oauth2 passdb).
	TokenInfoURL string
}

// Server is a running private Dovecot.
type Server struct {
	Dir      string // its configuration, state and mail
	IMAPAddr string // 127.0.0.1:PORT, plain IMAP with STARTTLS
	TLSAddr  string // 127.0.0.1:PORT, IMAPS
	CAFile   string // the PEM certificate both present (self-signed)
	cmd      *exec.Cmd
	done     chan struct{}
}

// required reports whether a missing Dovecot fails the test.
func required() bool {
	return os.Getenv("CI") != "" || os.Getenv("PIXELRELAY_REQUIRE_DOVECOT") != ""
}

// nobody is the user Dovecot runs as when the tests run as root.
const nobody = 65534

// Start starts a server that is stopped and removed when the test ends.
func Start(t testing.TB, opt Options) *Server {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		if required() {
			t.Fatalf("Dovecot is needed: no %s (apt-get install dovecot-imapd)", Binary)
		}
		t.Skipf("Dovecot not installed: no %s (apt-get install dovecot-imapd)", Binary)
	}
	if opt.Mailboxes == nil {
		opt.Mailboxes = Default
	}
	s := &Server{IMAPAddr: testport.Addr(t), TLSAddr: testport.Addr(t)}
	if err := s.start(opt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start(opt Options) error {
	root, err := os.MkdirTemp("", "pixelrelay-dovecot-")
	if err != nil {
		return err
	}
	s.Dir = root
	uid, gid := os.Getuid(), os.Getgid()
	var prefix []string
	if uid == 0 {
		uid, gid = nobody, nobody
		prefix = []string{"setpriv", "--reuid=" + strconv.Itoa(nobody), "--regid=" + strconv.Itoa(nobody), "--clear-groups", "--"}
	}
	if err := s.writeFiles(opt, uid, gid); err != nil {
		os.RemoveAll(root)
		return err
	}
	argv := append(prefix, Binary, "-F", "-c", filepath.Join(root, "dovecot.conf"))
	s.cmd = exec.Command(argv[0], argv[1:]...)
	s.cmd.Dir = "/"
	logf, err := os.Create(filepath.Join(root, "stderr.log"))
	if err != nil {
		return err
	}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(root)
		return fmt.Errorf("dovecot: %v", err)
	}
	s.done = make(chan struct{})
	go func() { s.cmd.Wait(); logf.Close(); close(s.done) }()
	return s.waitReady()
}

// waitReady waits until both listeners greet.
func (s *Server) waitReady() error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("dovecot exited at start:\n%s", s.Log())
		default:
		}
		if greets(s.IMAPAddr) && accepts(s.TLSAddr) { // IMAPS greets after TLS
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.Stop()
	return fmt.Errorf("dovecot did not listen within 60s:\n%s", s.Log())
}

// Log is what Dovecot logged.
func (s *Server) Log() string {
	a, _ := os.ReadFile(filepath.Join(s.Dir, "stderr.log"))
	b, _ := os.ReadFile(filepath.Join(s.Dir, "dovecot.log"))
	return string(a) + string(b)
}

// Stop stops the server and removes its files. A stopped server refuses
// connections (the port stays the test's).
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
	default:
		s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.done:
		case <-time.After(20 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
		}
	}
	os.RemoveAll(s.Dir)
	s.cmd = nil
}

func (s *Server) writeFiles(opt Options, uid, gid int) error {
	if err := os.Chmod(s.Dir, 0o755); err != nil {
		return err
	}
	certPEM, keyPEM, err := selfSigned()
	if err != nil {
		return err
	}
	s.CAFile = filepath.Join(s.Dir, "cert.pem")
	files := map[string][]byte{
		"cert.pem": certPEM, "key.pem": keyPEM,
		"passwd":       passwd(opt.Users),
		"oauth2.conf":  []byte("tokeninfo_url = " + opt.TokenInfoURL + "\nusername_attribute = email\n"),
		"dovecot.conf": []byte(s.config(opt, uid, gid)),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(s.Dir, name), data, 0o644); err != nil {
			return err
		}
	}
	for _, d := range []string{"run", "state", "mail"} {
		p := filepath.Join(s.Dir, d)
		if err := os.Mkdir(p, 0o755); err != nil {
			return err
		}
		if err := os.Chown(p, uid, gid); err != nil {
			return err
		}
	}
	return os.Chown(s.Dir, uid, gid)
}

func passwd(users map[string]string) []byte {
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	sort.Strings(names)
	var b bytes.Buffer
	for _, u := range names {
		fmt.Fprintf(&b, "%s:{PLAIN}%s::::::\n", u, users[u])
	}
	return b.Bytes()
}

func (s *Server) config(opt Options, uid, gid int) string {
	user := strconv.Itoa(uid)
	if name, err := userName(uid); err == nil {
		user = name
	}
	imapPort := s.IMAPAddr[strings.LastIndexByte(s.IMAPAddr, ':')+1:]
	tlsPort := s.TLSAddr[strings.LastIndexByte(s.TLSAddr, ':')+1:]
	var boxes strings.Builder
	for _, m := range opt.Mailboxes {
		fmt.Fprintf(&boxes, "  mailbox %q {\n    auto = create\n", m.Name)
		if m.SpecialUse != "" {
			fmt.Fprintf(&boxes, "    special_use = %s\n", m.SpecialUse)
		}
		boxes.WriteString("  }\n")
	}
	d := s.Dir
	mechs, oauthDB := "", ""
	if opt.TokenInfoURL != "" {
		mechs = " xoauth2 oauthbearer"
		oauthDB = "passdb {\n  driver = oauth2\n  args = " + d + "/oauth2.conf\n}\n"
	}
	return fmt.Sprintf(`# a private Dovecot for pixelrelay's tests
instance_name = pixelrelay-test-%[9]s
base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <%[1]s/cert.pem
ssl_key = <%[1]s/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login%[10]s
auth_failure_delay = 0
default_internal_user = %[2]s
default_internal_group = %[8]s
default_login_user = %[2]s
first_valid_uid = %[3]d
last_valid_uid = %[3]d
first_valid_gid = %[4]d
last_valid_gid = %[4]d
mail_location = maildir:%[1]s/mail/%%u
mail_uid = %[3]d
mail_gid = %[4]d
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[1]s/passwd
}
%[11]suserdb {
  driver = static
  args = uid=%[3]d gid=%[4]d home=%[1]s/mail/%%u
}
namespace inbox {
  inbox = yes
  separator = /
%[7]s}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = %[5]s
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = %[6]s
    ssl = yes
  }
}
service pop3-login {
  chroot =
}
service anvil {
  chroot =
}
service auth {
  user = %[2]s
}
service auth-worker {
  user = %[2]s
}
service stats {
  unix_listener stats-reader {
    user = %[2]s
  }
  unix_listener stats-writer {
    user = %[2]s
  }
}
`, d, user, uid, gid, imapPort, tlsPort, boxes.String(), groupName(gid), imapPort, mechs, oauthDB)
}
