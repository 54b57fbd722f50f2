package store

import (
	"testing"
	"time"

	"pixelrelay/tracker/record"
)

// TestSetAccount: the copies named get the new account, with every other
// field as it was; unknown ids are skipped.
func TestSetAccount(t *testing.T) {
	s := openTest(t, Options{})
	at := time.Now().UTC().Truncate(time.Second)
	err := s.Add([]record.Copy{
		{TrackingID: "aaaaaaaaaaaaaaaa", QueueID: "q1", Recipient: "a@ex.test", Subject: "s", QueuedAt: at,
			Status: record.StatusDeferred, LastError: "451 later", Account: "work"},
		{QueueID: "q1", Recipient: "b@ex.test", QueuedAt: at, Status: record.StatusQueued, Account: "work",
			UntrackedReason: "excluded"},
		{TrackingID: "cccccccccccccccc", QueueID: "q2", Recipient: "c@ex.test", QueuedAt: at, Status: record.StatusQueued, Account: "work"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetAccount([]string{"aaaaaaaaaaaaaaaa", record.UntrackedID("q1", "b@ex.test"), "nosuchid"}, "default"); err != nil {
		t.Fatal(err)
	}
	msgs, err := s.Messages(MessageQuery{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a@ex.test": "default", "b@ex.test": "default", "c@ex.test": "work"}
	for _, m := range msgs {
		if m.Account != want[m.Recipient] {
			t.Errorf("%s: account %q, want %q", m.Recipient, m.Account, want[m.Recipient])
		}
		if m.Recipient == "a@ex.test" && (m.LastError != "451 later" || m.Status != record.StatusDeferred || m.Subject != "s") {
			t.Errorf("a's other fields changed: %+v", m)
		}
	}
}
