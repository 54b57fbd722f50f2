package sentfolder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap"

	"pixelrelay/internal/dovecottest"
)

const (
	testUser = "ann@example.com"
	testPass = "secret"
	testBase = "https://t.example"
	testID   = "<m1@client.example>"
)

var testDate = time.Date(2026, 12, 4, 9, 30, 0, 0, time.UTC)

// submitted is the message as Ann's client sent it (Bcc included).
func submitted() []byte {
	return []byte("From: Ann <ann@example.com>\r\nTo: bob@example.net, cy@example.org\r\n" +
		"Bcc: dee@example.com\r\nSubject: plans\r\nDate: Fri, 04 Dec 2026 09:30:00 +0000\r\n" +
		"Message-ID: " + testID + "\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" +
		"<p>See <a href=\"https://example.com/plan\">the plan</a></p>\r\n")
}

const trace = "Received: from client (client [127.0.0.1])\r\n\tby relay.test (pixelrelay) with ESMTPA;\r\n\tFri, 04 Dec 2026 09:30:01 +0000\r\n"

// relayedCopy is a tracked copy as the provider files it: the trace, no
// Bcc, the pixel and a rewritten link.
func relayedCopy(n int) []byte {
	return []byte(trace + "From: Ann <ann@example.com>\r\nTo: bob@example.net, cy@example.org\r\n" +
		"Subject: plans\r\nDate: Fri, 04 Dec 2026 09:30:00 +0000\r\nMessage-ID: " + testID + "\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" +
		fmt.Sprintf("<p>See <a href=\"%s/c/link%d\">the plan</a></p><img src=\"%s/o/tok%d.gif\">\r\n", testBase, n, testBase, n))
}

// untrackedCopy is the untracked recipients' shared copy: the trace, no
// Bcc, no pixel.
func untrackedCopy() []byte {
	return append([]byte(trace), bytes.Replace(submitted(), []byte("Bcc: dee@example.com\r\n"), nil, 1)...)
}

func testMessage() Message {
	return Message{MessageID: testID, Raw: Submitted(append([]byte(trace), submitted()...), testID),
		Date: testDate, Marks: Marks(testBase)}
}

func account(s *dovecottest.Server, pass string) Account {
	return Account{Name: "default", URL: "imap://" + s.IMAPAddr, TLS: "none", Username: testUser, Password: pass}
}

// TestReplace: each case files messages in the account's mailboxes as a
// provider (and a client) would, replaces, and checks what is left.
func TestReplace(t *testing.T) {
	type filed struct {
		box string
		raw []byte
	}
	gmailSent, gmailAll := "[Gmail]/Sent Mail", "[Gmail]/All Mail"
	tests := []struct {
		name      string
		boxes     []dovecottest.Mailbox
		filed     []filed
		sent      string // the Sent mailbox
		wantFound int
		appended  bool
		wantSent  [][]byte // exactly these in Sent afterwards
	}{{
		name:  "gmail: three tracked copies and the untracked one in Sent and All Mail",
		boxes: dovecottest.GmailLike,
		filed: []filed{
			{gmailSent, relayedCopy(1)}, {gmailSent, relayedCopy(2)}, {gmailSent, relayedCopy(3)}, {gmailSent, untrackedCopy()},
			{gmailAll, relayedCopy(1)}, {gmailAll, relayedCopy(2)}, {gmailAll, relayedCopy(3)}, {gmailAll, untrackedCopy()},
		},
		sent: gmailSent, wantFound: 4, appended: true, wantSent: [][]byte{testMessage().Raw},
	}, {
		name:  "the client saved its own copy: none appended",
		boxes: dovecottest.Default,
		filed: []filed{{"Sent", submitted()}, {"Sent", relayedCopy(1)}, {"Sent", relayedCopy(2)}},
		sent:  "Sent", wantFound: 2, appended: false, wantSent: [][]byte{submitted()},
	}, {
		name:  "nothing filed yet: the clean copy goes in anyway",
		boxes: dovecottest.Default,
		sent:  "Sent", wantFound: 0, appended: true, wantSent: [][]byte{testMessage().Raw},
	}, {
		name:  "no special-use attributes: Sent Items by name",
		boxes: []dovecottest.Mailbox{{Name: "Sent Items"}, {Name: "Deleted Items"}},
		filed: []filed{{"Sent Items", relayedCopy(1)}},
		sent:  "Sent Items", wantFound: 1, appended: true, wantSent: [][]byte{testMessage().Raw},
	}, {
		name:  "other messages in Sent stay",
		boxes: dovecottest.Default,
		filed: []filed{{"Sent", bytes.Replace(submitted(), []byte(testID), []byte("<other@x>"), 1)}, {"Sent", relayedCopy(1)}},
		sent:  "Sent", wantFound: 1, appended: true,
		wantSent: [][]byte{bytes.Replace(submitted(), []byte(testID), []byte("<other@x>"), 1), testMessage().Raw},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{testUser: testPass}, Mailboxes: tt.boxes})
			for _, f := range tt.filed {
				if err := s.Append(testUser, testPass, f.box, nil, testDate, f.raw); err != nil {
					t.Fatalf("filing in %s: %v\n%s", f.box, err, s.Log())
				}
			}
			ctx := context.Background()
			res, err := Replace(ctx, account(s, testPass), testMessage())
			if err != nil {
				t.Fatalf("Replace: %v\n%s", err, s.Log())
			}
			if res.Found != tt.wantFound || res.Appended != tt.appended || res.Mailbox != tt.sent {
				t.Errorf("result %+v, want found %d appended %v in %s", res, tt.wantFound, tt.appended, tt.sent)
			}
			checkSent(t, s, tt.sent, tt.wantSent, tt.appended)
			checkNoRelayed(t, s, tt.boxes)
			// Again: nothing more appended or removed.
			res, err = Replace(ctx, account(s, testPass), testMessage())
			if err != nil || res.Appended || res.Removed != 0 {
				t.Errorf("second run: %+v, %v; want nothing done", res, err)
			}
			checkSent(t, s, tt.sent, tt.wantSent, tt.appended)
		})
	}
}

// checkSent: Sent holds exactly want, byte for byte; the appended copy
// is \Seen with the message's own Date.
func checkSent(t *testing.T, s *dovecottest.Server, box string, want [][]byte, appended bool) {
	t.Helper()
	got := s.Messages(t, testUser, testPass, box)
	if len(got) != len(want) {
		t.Fatalf("%s holds %d messages, want %d", box, len(got), len(want))
	}
	for i, m := range got {
		if !bytes.Equal(m.Raw, want[i]) {
			t.Errorf("%s message %d:\n%s\nwant:\n%s", box, i, m.Raw, want[i])
		}
		if appended && bytes.Equal(m.Raw, testMessage().Raw) && (!m.Seen() || !m.InternalDate.Equal(testDate)) {
			t.Errorf("appended copy: flags %v, date %v; want \\Seen, %v", m.Flags, m.InternalDate, testDate)
		}
	}
}

// checkNoRelayed: no mailbox holds a tracked copy.
func checkNoRelayed(t *testing.T, s *dovecottest.Server, boxes []dovecottest.Mailbox) {
	t.Helper()
	for _, b := range append(boxes, dovecottest.Mailbox{Name: "INBOX"}) {
		for _, m := range s.Messages(t, testUser, testPass, b.Name) {
			if classify(m.Raw, Marks(testBase)) == tracked {
				t.Errorf("%s still holds a tracked copy:\n%s", b.Name, m.Raw)
			}
		}
	}
}

// TestReplaceFailures: the reasons a replacement fails with.
func TestReplaceFailures(t *testing.T) {
	s := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{testUser: testPass},
		Mailboxes: []dovecottest.Mailbox{{Name: "Archive"}}})
	down := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{testUser: testPass}})
	downAddr := down.IMAPAddr
	down.Stop()
	tests := []struct {
		name  string
		acct  Account
		want  string
		setup bool
	}{
		{"no Sent mailbox", account(s, testPass), "no Sent mailbox found", false},
		{"wrong password", account(s, "nope"), "IMAP login as ann@example.com refused", true},
		{"server down", Account{URL: "imap://" + downAddr, TLS: "none", Username: testUser, Password: testPass}, "connection refused", false},
		{"plain IMAP to a remote host", Account{URL: "imap://192.0.2.1:143", TLS: "none"}, "loopback", true},
		{"bad URL", Account{URL: "pop3://" + s.IMAPAddr}, "unknown scheme", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := Replace(ctx, tt.acct, testMessage())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
			var se *SetupError
			if errors.As(err, &se) != tt.setup {
				t.Errorf("setup error %v, want %v", errors.As(err, &se), tt.setup)
			}
		})
	}
}

// TestReplaceTLS: imaps:// and imap:// with STARTTLS, verified against
// ca_file.
func TestReplaceTLS(t *testing.T) {
	s := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{testUser: testPass}})
	for _, url := range []string{"imaps://" + s.TLSAddr, "imap://" + s.IMAPAddr} {
		a := Account{URL: url, CAFile: s.CAFile, Username: testUser, Password: testPass}
		if _, err := Replace(context.Background(), a, testMessage()); err != nil {
			t.Errorf("%s: %v", url, err)
		}
		a.CAFile = ""
		if _, err := Replace(context.Background(), a, testMessage()); err == nil {
			t.Errorf("%s: an untrusted certificate was accepted", url)
		}
	}
	if n := len(s.Messages(t, testUser, testPass, "Sent")); n != 1 {
		t.Errorf("Sent holds %d copies, want 1", n)
	}
	_ = imap.SeenFlag
}
