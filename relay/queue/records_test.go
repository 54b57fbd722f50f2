package queue

import (
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"pixelrelay/tracker/record"
)

// Messages for TestUntrackedReasons: each keeps every recipient untracked
// for one reason (the real rewrite.Inspect decides).
const (
	headerNoMsg = "From: a@example.com\r\nSubject: no\r\nX-Pixelrelay-Track: no\r\n" +
		"Content-Type: text/html\r\n\r\n<p>hi</p>\r\n"
	dkimMsg = "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s; b=abc\r\nFrom: a@example.com\r\n" +
		"Subject: dkim\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n"
	signedMsg = "From: a@example.com\r\nSubject: signed\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"b\"\r\n\r\n" +
		"--b\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n--b\r\nContent-Type: application/pkcs7-signature\r\n\r\nAAAA\r\n--b--\r\n"
	encryptedMsg = "From: a@example.com\r\nSubject: enc\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n"
	malformedMsg = "From: a@example.com\r\nSubject: cut\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n"
)

// TestUntrackedReasons: every recipient of every message gets a record;
// one that gets no pixel has the reason in CONTRACT.md's words, and the
// log says so once per message, with the queue id.
func TestUntrackedReasons(t *testing.T) {
	tests := []struct {
		name   string
		optIn  bool
		from   string
		rcpts  []string
		msg    string
		reason map[string]string // rcpt -> reason; missing: tracked
	}{
		{name: "tracked", rcpts: []string{"a@ex.test"}, msg: htmlMsg},
		{name: "excluded domain", rcpts: []string{"a@ex.test", "x@untracked.test"}, msg: htmlMsg,
			reason: map[string]string{"x@untracked.test": "excluded"}},
		{name: "sender's own address", from: "Alice@Example.com", rcpts: []string{"a@ex.test", "<alice@example.com>"}, msg: htmlMsg,
			reason: map[string]string{"<alice@example.com>": "sender"}},
		{name: "no HTML part", rcpts: []string{"a@ex.test", "b@ex.test"}, msg: textMsg,
			reason: map[string]string{"a@ex.test": "no HTML part", "b@ex.test": "no HTML part"}},
		{name: "opt-in", optIn: true, rcpts: []string{"a@ex.test"}, msg: htmlMsg, reason: map[string]string{"a@ex.test": "policy opt-in"}},
		{name: "header no", rcpts: []string{"a@ex.test"}, msg: headerNoMsg, reason: map[string]string{"a@ex.test": "header no"}},
		{name: "dkim", rcpts: []string{"a@ex.test"}, msg: dkimMsg, reason: map[string]string{"a@ex.test": "dkim"}},
		{name: "signed", rcpts: []string{"a@ex.test"}, msg: signedMsg, reason: map[string]string{"a@ex.test": "signed"}},
		{name: "encrypted", rcpts: []string{"a@ex.test"}, msg: encryptedMsg, reason: map[string]string{"a@ex.test": "encrypted"}},
		{name: "malformed", rcpts: []string{"a@ex.test"}, msg: malformedMsg, reason: map[string]string{"a@ex.test": "malformed: "}},
	}
	for _, tc := range tests {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			cfg := testConfig()
			if tc.optIn {
				cfg.Tracking.Policy = "opt-in"
			}
			h := newHarness(t, cfg)
			var logs faultLogs
			h.openWith(func(o *Options) { o.Log = logs.logger() }, true)
			from := tc.from
			if from == "" {
				from = "s@x.test"
			}
			id := h.spool(from, tc.rcpts, tc.msg)
			waitFor(t, "delivery", func() bool { return h.q.Len() == 0 })

			h.rec.mu.Lock()
			copies := h.rec.copies
			h.rec.mu.Unlock()
			if len(copies) != len(tc.rcpts) {
				t.Fatalf("%d records for %d recipients: %+v", len(copies), len(tc.rcpts), copies)
			}
			for key, c := range copies {
				want := tc.reason[c.Recipient]
				if c.Tracked() != (want == "") || !strings.HasPrefix(c.UntrackedReason, want) || c.QueueID != id || c.ID() != key {
					t.Errorf("record of %s: %+v, want reason %q", c.Recipient, c, want)
				}
				if st := h.rec.statuses(key); !slices.Equal(st, []string{record.StatusSent}) {
					t.Errorf("updates of %s: %v, want [sent]", c.Recipient, st)
				}
			}
			notes := logs.records("INFO", "not tracked")
			if len(tc.reason) == 0 {
				if len(notes) != 0 {
					t.Errorf("logged %v for a tracked message", notes)
				}
				return
			}
			if len(notes) != 1 || notes[0]["queue_id"] != id || notes[0]["untracked"] != float64(len(tc.reason)) {
				t.Fatalf("log records %v, want one for %s with %d untracked", notes, id, len(tc.reason))
			}
			for rcpt, why := range tc.reason {
				if !strings.Contains(notes[0]["reasons"].(string), rcpt+": "+why) {
					t.Errorf("log reasons %q lack %q", notes[0]["reasons"], rcpt+": "+why)
				}
			}
		})
	}
}

// TestUntrackedSharedCopyStates: the untracked recipients share one copy,
// but each record follows its own recipient: accepted, deferred then
// accepted, refused.
func TestUntrackedSharedCopyStates(t *testing.T) {
	h := newHarness(t, testConfig())
	h.up.script["y@untracked.test"] = []error{temporary("mailbox busy")}
	h.up.always["z@untracked.test"] = permanent(550, smtp.EnhancedCode{5, 1, 1}, "No such user")
	h.open(true)
	id := h.spool("s@x.test", []string{"x@untracked.test", "y@untracked.test", "z@untracked.test"}, textMsg)
	waitFor(t, "delivery", func() bool { return h.q.Len() == 0 })
	want := map[string][]string{
		"x@untracked.test": {record.StatusSent},
		"y@untracked.test": {record.StatusDeferred, record.StatusSent},
		"z@untracked.test": {record.StatusFailed},
	}
	for rcpt, w := range want {
		key := record.UntrackedID(id, rcpt)
		if got := h.rec.statuses(key); !slices.Equal(got, w) {
			t.Errorf("%s: updates %v, want %v", rcpt, got, w)
		}
	}
	for _, e := range h.rec.updates {
		switch {
		case e.tid == record.UntrackedID(id, "z@untracked.test") && !strings.Contains(e.lastErr, "550 5.1.1 No such user"),
			e.tid == record.UntrackedID(id, "y@untracked.test") && e.status == record.StatusDeferred && !strings.Contains(e.lastErr, "mailbox busy"),
			e.tid == record.UntrackedID(id, "x@untracked.test") && e.lastErr != "":
			t.Errorf("update %+v: wrong last_error for its recipient", e)
		}
	}
}
