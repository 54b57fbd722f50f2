package store

import (
	"testing"
	"time"

	"pixelrelay/tracker/record"
)

// TestSetSentFolder: the status set for a message's copies is in their
// MESSAGE, tracked or not, and survives a reopen; other copies and unknown
// ids are left alone.
func TestSetSentFolder(t *testing.T) {
	path := t.TempDir() + "/db"
	s, err := OpenStore(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	copies := []record.Copy{
		{TrackingID: "tida", QueueID: "Q1", Recipient: "a@x", QueuedAt: now, Status: record.StatusSent, SentFolder: "pending"},
		{QueueID: "Q1", Recipient: "u@x", QueuedAt: now, Status: record.StatusSent, UntrackedReason: "excluded", SentFolder: "pending"},
		{TrackingID: "tidb", QueueID: "Q2", Recipient: "b@x", QueuedAt: now, Status: record.StatusSent, SentFolder: "pending"},
	}
	if err := s.Add(copies); err != nil {
		t.Fatal(err)
	}
	ids := []string{copies[0].ID(), copies[1].ID(), "nosuchid"}
	for _, st := range []string{"failed: IMAP login as a@x refused", "replaced", "replaced"} {
		if err := s.SetSentFolder(ids, st); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s, err = OpenStore(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	msgs, err := s.Messages(MessageQuery{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a@x": "replaced", "u@x": "replaced", "b@x": "pending"}
	for _, m := range msgs {
		if m.SentFolder != want[m.Recipient] {
			t.Errorf("%s: sent_folder %q, want %q", m.Recipient, m.SentFolder, want[m.Recipient])
		}
	}
	if len(msgs) != 3 {
		t.Errorf("%d messages", len(msgs))
	}
}
