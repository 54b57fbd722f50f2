package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"pixelrelay/internal/dovecottest"
	"pixelrelay/relay/smtptest"
)

const (
	annAddr = "ann@example.com"
	annPass = "app-password"
	sentBox = "[Gmail]/Sent Mail"
	allBox  = "[Gmail]/All Mail"
)

// gmailLike is an upstream that behaves as smtp.gmail.com does with what
// it accepts: a moment later (asynchronously) the message is filed in the
// signed-in user's Sent Mail and All Mail, and one to the user's own
// address in the inbox too.
type gmailLike struct {
	smtp  *smtptest.Server
	imap  *dovecottest.Server
	delay time.Duration
	wg    sync.WaitGroup
	mu    sync.Mutex
	errs  []error
}

func startGmailLike(t *testing.T, delay time.Duration) *gmailLike {
	t.Helper()
	g := &gmailLike{delay: delay,
		imap: dovecottest.Start(t, dovecottest.Options{Users: map[string]string{annAddr: annPass}, Mailboxes: dovecottest.GmailLike})}
	g.smtp = smtptest.Start(t, smtptest.Script{AuthUsers: map[string]string{annAddr: annPass},
		OnData: func(m smtptest.Message) *smtp.SMTPError {
			g.wg.Add(1)
			go g.file(m)
			return nil
		}})
	t.Cleanup(g.wg.Wait)
	return g
}

func (g *gmailLike) file(m smtptest.Message) {
	defer g.wg.Done()
	time.Sleep(g.delay)
	// All Mail first: on Gmail both are one message, visible at once.
	boxes := []string{allBox, sentBox}
	for _, to := range m.To {
		if strings.EqualFold(to, m.AuthUser) {
			boxes = append(boxes, "INBOX")
		}
	}
	for _, box := range boxes {
		if err := g.imap.Append(m.AuthUser, annPass, box, nil, time.Now(), m.Data); err != nil {
			g.mu.Lock()
			g.errs = append(g.errs, err)
			g.mu.Unlock()
		}
	}
}

// config is the relay's [upstream] for ann's Gmail-like account.
func (g *gmailLike) config(imapURL string) string {
	return fmt.Sprintf(`
[upstream]
url = "smtp://%s"
tls = "none"
username = %q
password = %q
sent_folder = "on"
imap_url = %q
`, g.smtp.Addr, annAddr, annPass, imapURL)
}

// annMessage is what Ann's client submits: a Bcc header, its own
// Message-ID and Date, an HTML part with a link.
func annMessage(id string) string {
	return "From: Ann <" + annAddr + ">\r\nTo: bob@example.org, cy@example.net\r\nCc: " + annAddr + "\r\n" +
		"Bcc: dee@example.org\r\nSubject: the plan\r\nDate: Fri, 04 Dec 2026 09:30:00 +0000\r\n" +
		"Message-ID: " + id + "\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" +
		"<html><body><p>See <a href=\"https://example.com/plan\">the plan</a>.</p></body></html>\r\n"
}

// sentFolderOf returns the MESSAGE sent_folder values of message id's
// copies, from the admin API.
func sentFolderOf(in *instance, id string) []string {
	var resp struct {
		Messages []struct {
			MessageID  string `json:"message_id"`
			SentFolder string `json:"sent_folder"`
		}
	}
	in.api("/api/messages?limit=500", &resp)
	var out []string
	for _, m := range resp.Messages {
		if m.MessageID == id {
			out = append(out, m.SentFolder)
		}
	}
	return out
}

// waitSentFolder waits until every copy of message id says want.
func waitSentFolder(t *testing.T, in *instance, id, want string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		got := sentFolderOf(in, id)
		ok := len(got) > 0
		for _, s := range got {
			ok = ok && strings.HasPrefix(s, want)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sent_folder of %s: %v, want %q", id, got, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestSentFolderGmailLoop: through the real binary, Ann sends to three
// people (one of them Bcc) and herself through a Gmail-like upstream that
// files every copy in Sent Mail and All Mail. Afterwards Sent Mail holds
// exactly one copy of the message, byte for byte as submitted (Bcc kept),
// \Seen, with its own Date; no copy with a pixel or a rewritten link is
// left in any mailbox; her own copy was never tracked.
func TestSentFolderGmailLoop(t *testing.T) {
	g := startGmailLike(t, 300*time.Millisecond)
	in := newInstance(t, g.config("imap://"+g.imap.IMAPAddr))
	in.start()
	id := "<plan-1@ann.example>"
	to := []string{"bob@example.org", "cy@example.net", "dee@example.org", annAddr}
	if _, err := sendMail(t, in.smtpAddr, annAddr, to, annMessage(id)); err != nil {
		t.Fatal(err)
	}
	waitSentFolder(t, in, id, "replaced")
	g.wg.Wait()
	if len(g.errs) > 0 {
		t.Fatalf("filing: %v", g.errs)
	}
	if n := len(g.smtp.Messages()); n != 4 {
		t.Errorf("upstream took %d copies, want 4 (three tracked, one untracked)", n)
	}

	sent := g.imap.Messages(t, annAddr, annPass, sentBox)
	if len(sent) != 1 {
		t.Fatalf("Sent Mail holds %d messages, want 1", len(sent))
	}
	if got := string(sent[0].Raw); got != annMessage(id) {
		t.Errorf("Sent Mail's copy is not the message as submitted:\n%s", got)
	}
	date := time.Date(2026, 12, 4, 9, 30, 0, 0, time.UTC)
	if !sent[0].Seen() || !sent[0].InternalDate.Equal(date) {
		t.Errorf("Sent Mail's copy: flags %v, internal date %v; want \\Seen and %v", sent[0].Flags, sent[0].InternalDate, date)
	}
	base := "http://" + in.httpAddr
	for _, box := range []string{sentBox, allBox, "[Gmail]/Trash", "INBOX"} {
		for _, m := range g.imap.Messages(t, annAddr, annPass, box) {
			if bytes.Contains(m.Raw, []byte(base+"/o/")) || bytes.Contains(m.Raw, []byte(base+"/c/")) {
				t.Errorf("%s still holds a tracked copy:\n%s", box, m.Raw)
			}
		}
	}
	if n := len(g.imap.Messages(t, annAddr, annPass, "INBOX")); n != 1 {
		t.Errorf("Ann's inbox holds %d copies of her message to herself, want 1", n)
	}
	var ownResp struct {
		Messages []struct {
			Recipient       string
			UntrackedReason string `json:"untracked_reason"`
			Tracked         bool
		}
	}
	in.api("/api/messages?to="+annAddr, &ownResp)
	own := ownResp.Messages
	if len(own) != 1 || own[0].Tracked || own[0].UntrackedReason != "sender" {
		t.Errorf("Ann's own copy: %+v, want untracked (sender)", own)
	}
	if !logged(in.logs, "sent folder replaced") {
		t.Errorf("no 'sent folder replaced' log line")
	}
	out, _, _ := in.cli("messages")
	if !strings.Contains(out, "SENT FOLDER") || strings.Count(out, "replaced") != 4 {
		t.Errorf("messages does not show the Sent folder replaced for each copy:\n%s", out)
	}
	out, _, _ = in.cli("status")
	if !strings.Contains(out, "0 pending, 1 replaced, 0 failed since start") {
		t.Errorf("status does not count the replaced message:\n%s", out)
	}
	fams, _ := scrape(t, in)
	if n := sample(fams, "pixelrelay_sent_folder_total", "result", "replaced"); n != 1 {
		t.Errorf("pixelrelay_sent_folder_total{result=replaced} = %v, want 1", n)
	}
}

// TestSentFolderClientCopy: the mail client saved its own copy in Sent
// (as Thunderbird does): pixelrelay appends none and removes the copies
// the provider filed, so that copy is the only one.
func TestSentFolderClientCopy(t *testing.T) {
	g := startGmailLike(t, 0)
	in := newInstance(t, g.config("imap://"+g.imap.IMAPAddr))
	in.start()
	id := "<saved@ann.example>"
	own := annMessage(id)
	if err := g.imap.Append(annAddr, annPass, sentBox, []string{"\\Seen"}, time.Now(), []byte(own)); err != nil {
		t.Fatal(err)
	}
	if _, err := sendMail(t, in.smtpAddr, annAddr, []string{"bob@example.org", "cy@example.net"}, own); err != nil {
		t.Fatal(err)
	}
	waitSentFolder(t, in, id, "replaced")
	sent := g.imap.Messages(t, annAddr, annPass, sentBox)
	if len(sent) != 1 || string(sent[0].Raw) != own {
		t.Fatalf("Sent Mail holds %d messages, want only the client's own copy", len(sent))
	}
	if !logged(in.logs, `"appended":false`) {
		t.Errorf("the replacement does not say it appended nothing")
	}
}

// TestSentFolderFaults: when the account's IMAP side is down, refuses the
// login or has no Sent mailbox, delivery goes on, and the message's
// sent_folder says pending, then (after queue.max_age, here shorter than
// a day) failed with the reason.
func TestSentFolderFaults(t *testing.T) {
	tests := []struct {
		name     string
		imapPass string // Dovecot's password for Ann (the relay has annPass)
		boxes    []dovecottest.Mailbox
		down     bool
		want     string
	}{
		{"IMAP down", annPass, dovecottest.GmailLike, true, "failed: connecting to"},
		{"login refused", "another", dovecottest.GmailLike, false, "failed: IMAP login as " + annAddr + " refused"},
		{"no Sent mailbox", annPass, []dovecottest.Mailbox{{Name: "Archive"}}, false, "failed: no Sent mailbox found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := startGmailLike(t, 0)
			g.imap.Stop()
			g.imap = dovecottest.Start(t, dovecottest.Options{Users: map[string]string{annAddr: tt.imapPass}, Mailboxes: tt.boxes})
			url := "imap://" + g.imap.IMAPAddr
			if tt.down {
				g.imap.Stop()
			}
			in := newInstance(t, "max_age = \"4s\"\n"+g.config(url))
			in.start()
			id := "<fault@ann.example>"
			if _, err := sendMail(t, in.smtpAddr, annAddr, []string{"bob@example.org"}, annMessage(id)); err != nil {
				t.Fatal(err)
			}
			waitMessages(t, g.smtp, 1, 30*time.Second) // delivered regardless
			waitSentFolder(t, in, id, "pending")
			waitSentFolder(t, in, id, tt.want)
			if !logged(in.logs, "sent folder job failed; will retry") {
				t.Errorf("no retry logged")
			}
		})
	}
}

// TestSentFolderAcrossRestart: a job waiting for its IMAP server survives
// a restart of serve (kept in data_dir/sentfolder with the message) and
// finishes once the server is back, though the message's spool files
// were deleted long before.
func TestSentFolderAcrossRestart(t *testing.T) {
	g := startGmailLike(t, 0)
	deadAddr := g.imap.IMAPAddr
	g.imap.Stop() // down: nothing is filed, no job can sign in
	in := newInstance(t, g.config("imap://"+deadAddr))
	in.start()
	id := "<restart@ann.example>"
	if _, err := sendMail(t, in.smtpAddr, annAddr, []string{"bob@example.org", "cy@example.net"}, annMessage(id)); err != nil {
		t.Fatal(err)
	}
	copies := waitMessages(t, g.smtp, 2, 30*time.Second)
	if !logged(in.logs, "sent folder job failed; will retry") {
		t.Fatal("no failed attempt logged")
	}
	if err := in.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	jobs, _ := filepath.Glob(filepath.Join(in.dir, "sentfolder", "*.eml"))
	spooled, _ := filepath.Glob(filepath.Join(in.dir, "spool", "*.msg"))
	if len(jobs) != 1 || len(spooled) != 0 {
		t.Fatalf("after the stop: %d jobs with their message, %d spooled messages; want 1 and 0", len(jobs), len(spooled))
	}

	// The IMAP server is back (elsewhere), with the copies the provider
	// filed meanwhile.
	g.wg.Wait() // the filings that met the dead server
	g.imap = dovecottest.Start(t, dovecottest.Options{Users: map[string]string{annAddr: annPass}, Mailboxes: dovecottest.GmailLike})
	for _, c := range copies {
		for _, box := range []string{allBox, sentBox} {
			if err := g.imap.Append(annAddr, annPass, box, nil, time.Now(), c.Data); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfg, _ := os.ReadFile(in.cfgPath)
	cfg = bytes.Replace(cfg, []byte(deadAddr), []byte(g.imap.IMAPAddr), 1)
	if err := os.WriteFile(in.cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	in.start()
	waitSentFolder(t, in, id, "replaced")
	sent := g.imap.Messages(t, annAddr, annPass, sentBox)
	if len(sent) != 1 || string(sent[0].Raw) != annMessage(id) {
		t.Fatalf("Sent Mail holds %d messages, want the one as submitted", len(sent))
	}
	jobs, _ = filepath.Glob(filepath.Join(in.dir, "sentfolder", "*"))
	if len(jobs) != 0 {
		t.Errorf("the finished job left %v", jobs)
	}
}
