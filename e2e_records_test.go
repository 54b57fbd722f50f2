package main

import (
	"encoding/json"
	"maps"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"pixelrelay/relay/smtptest"
	"pixelrelay/tracker/httpd"
	"pixelrelay/tracker/store"
)

// TestMessagesListUntracked, through the real binary: every recipient's
// copy is listed, an untracked one with its reason (an excluded domain,
// the sender's own address, a plain-text message); the log says it once
// per message with the queue id; and a purge takes the delivered copies
// older than its cutoff, tracked or not, but never one still deferred.
func TestMessagesListUntracked(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Script{RcptReplies: map[string]*smtp.SMTPError{
		"later@example.org": smtptest.Reply(451, 4, 2, 1, "mailbox busy"),
	}})
	in := newInstanceTracking(t, `exclude = ["@corp.example"]`, upstreamConfig(srv, "", ""))
	in.start()
	to := []string{"alice@example.org", "x@corp.example", "me@example.com", "later@example.org"}
	htmlReply, err := sendMail(t, in.smtpAddr, "me@example.com", to, htmlMessage("me@example.com", to, "records"))
	if err != nil {
		t.Fatal(err)
	}
	plain := "From: me@example.com\r\nTo: bob@example.org\r\nSubject: plain\r\n\r\njust text\r\n"
	plainReply, err := sendMail(t, in.smtpAddr, "me@example.com", []string{"bob@example.org"}, plain)
	if err != nil {
		t.Fatal(err)
	}
	htmlID, plainID := queuedAs(t, htmlReply), queuedAs(t, plainReply)
	waitMessages(t, srv, 3, 15*time.Second) // alice; x and me together; bob

	want := map[string]string{ // recipient -> status, and the reason when untracked
		"alice@example.org": "sent",
		"later@example.org": "deferred",
		"x@corp.example":    "sent, not tracked: excluded",
		"me@example.com":    "sent, not tracked: sender",
		"bob@example.org":   "sent, not tracked: no HTML part",
	}
	got := map[string]string{}
	deadline := time.Now().Add(15 * time.Second)
	for !maps.Equal(got, want) && time.Now().Before(deadline) {
		got = recordsByRecipient(t, in, "")
		time.Sleep(100 * time.Millisecond)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("messages:\n got %v\nwant %v", got, want)
	}
	out, errOut, code := in.cli("messages")
	for _, w := range []string{"not tracked: excluded", "not tracked: sender", "not tracked: no HTML part", "alice@example.org"} {
		if code != 0 || !strings.Contains(out, w) {
			t.Errorf("messages table lacks %q: exit %d\n%s%s", w, code, out, errOut)
		}
	}
	if got := recordsByRecipient(t, in, "unopened=true"); !maps.Equal(got, map[string]string{"alice@example.org": "sent", "later@example.org": "deferred"}) {
		t.Errorf("messages --unopened: %v, want the tracked copies only", got)
	}
	notes := map[string]int{}
	for _, line := range strings.Split(in.logs.String(), "\n") {
		var r map[string]any
		if json.Unmarshal([]byte(line), &r) == nil && r["msg"] == "not tracked" {
			notes[r["queue_id"].(string)]++
		}
	}
	if !maps.Equal(notes, map[string]int{htmlID: 1, plainID: 1}) {
		t.Errorf("\"not tracked\" log lines per queue id %v, want one each for %s and %s", notes, htmlID, plainID)
	}

	time.Sleep(1100 * time.Millisecond)
	out, errOut, code = in.cli("purge", "--older-than", "1s")
	if code != 0 || !strings.Contains(out, "and 4 delivered copy records") {
		t.Errorf("purge: exit %d\n%s%s", code, out, errOut)
	}
	if got := recordsByRecipient(t, in, ""); !maps.Equal(got, map[string]string{"later@example.org": "deferred"}) {
		t.Errorf("after the purge: %v, want only the deferred copy", got)
	}
	var st httpd.StatusResponse
	in.api("/api/status", &st)
	if st.Database.Copies != 1 || st.Database.Untracked != 0 {
		t.Errorf("status after the purge: %+v", st.Database)
	}
	if err := in.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// recordsByRecipient asks GET /api/messages?query and returns each
// recipient's status, with ", not tracked: REASON" when untracked.
func recordsByRecipient(t *testing.T, in *instance, query string) map[string]string {
	t.Helper()
	var resp struct {
		Messages []store.Message `json:"messages"`
	}
	in.api("/api/messages?"+query, &resp)
	out := map[string]string{}
	for _, m := range resp.Messages {
		s := m.Status
		if !m.Tracked {
			s += ", not tracked: " + m.UntrackedReason
			if m.TrackingID != "" {
				t.Errorf("untracked copy with a tracking id: %+v", m)
			}
		}
		out[m.Recipient] = s
	}
	return out
}

// queuedAs is the queue id in a "250 ... queued as ID" reply.
func queuedAs(t *testing.T, reply string) string {
	t.Helper()
	_, id, ok := strings.Cut(reply, "queued as ")
	if !ok {
		t.Fatalf("reply %q names no queue id", reply)
	}
	return strings.TrimSpace(id)
}
