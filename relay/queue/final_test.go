package queue

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"pixelrelay/relay/spool"
	"pixelrelay/tracker/record"
)

// TestFinalStateReachesRecorder: a finished message's spool files stay
// until the recorder has its copies' final states (tracked and untracked); a crash before that
// (here: the files copied while the recorder hangs, then opened by a new
// queue) reports the states at the next start, without sending any copy
// again. (Events for webhooks come with those states: none may be lost.)
func TestFinalStateReachesRecorder(t *testing.T) {
	h := newHarness(t, testConfig())
	hang := make(chan struct{})
	entered := make(chan struct{}, 8)
	h.rec.before = func(status string) {
		if status == record.StatusSent {
			entered <- struct{}{}
			<-hang // the store never answers
		}
	}
	h.open(true)
	t.Cleanup(func() { close(hang) }) // before the queue's Close, which waits for the recorder
	h.spool("s@x.test", []string{"a@ex.test", "b@ex.test", "z@untracked.test"}, htmlMsg)
	waitFor(t, "the three copies delivered", func() bool { return len(h.up.deliveries()) == 3 })
	<-entered
	<-entered
	<-entered
	time.Sleep(50 * time.Millisecond) // a delete would have happened by now
	if files := spoolFiles(t, h.dir); len(files) < 2 {
		t.Fatalf("the spool was emptied before the recorder was told: %v", files)
	}

	// The crash: what is on disk now is what the next start sees.
	crashed := filepath.Join(t.TempDir(), "spool")
	copyDir(t, h.dir, crashed)
	h2 := newHarness(t, testConfig())
	h2.dir = crashed
	for tid, c := range h.rec.copiesSnapshot() {
		h2.rec.copies[tid] = c
	}
	h2.open(true)
	waitFor(t, "the resumed message finished", func() bool { return len(spoolFiles(t, crashed)) <= 1 })
	ids := h2.rec.copiesSnapshot()
	if len(ids) != 3 {
		t.Fatalf("%d records, want 3 (two tracked, one untracked)", len(ids))
	}
	for id := range ids {
		if got := h2.rec.statuses(id); !slices.Equal(got, []string{record.StatusSent}) {
			t.Errorf("copy %s: recorder told %v after the restart, want [sent]", id, got)
		}
	}
	if n := len(h2.up.deliveries()); n != 0 {
		t.Errorf("%d copies sent again after the restart", n)
	}
}

func (r *fakeRecorder) copiesSnapshot() map[string]record.Copy {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]record.Copy{}
	for k, v := range r.copies {
		out[k] = v
	}
	return out
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestFinalStates: what a restart reports for each kind of final copy, and
// nothing for copies still waiting or for a bounce message.
func TestFinalStates(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	t1, t2 := t0.Add(time.Minute), t0.Add(2*time.Minute)
	m := &message{env: spool.Envelope{ID: "Q1"}, st: &spool.State{
		Copies: []spool.Copy{
			{TrackingID: "ta", Recipients: []string{"a@x"}, Status: spool.Sent, SentAt: t1},
			{TrackingID: "tb", Recipients: []string{"b@x"}, Status: spool.Failed, LastError: "550 b"},
			{TrackingID: "tc", Recipients: []string{"c@x"}, Status: spool.Deferred, LastError: "451 c"},
			{Recipients: []string{"u1@x", "u2@x"}, Status: spool.Sent, SentAt: t2},
		},
		Failures: []spool.Failure{
			{Recipient: "b@x", Diagnostic: "550 b", At: t1},
			{Recipient: "u2@x", Diagnostic: "550 u2", At: t2},
			{Recipient: "u3@x", Diagnostic: "550 u3", At: t0}, // failed in an earlier attempt of the shared copy
		},
	}}
	type got struct {
		id, status, lastErr string
		at                  time.Time
	}
	var out []got
	for _, u := range finalStates(m) {
		for _, s := range u.states {
			out = append(out, got{s.id, s.status, s.lastErr, u.at})
		}
	}
	want := []got{
		{"ta", spool.Sent, "", t1},
		{"tb", spool.Failed, "550 b", t1},
		{record.UntrackedID("Q1", "u2@x"), spool.Failed, "550 u2", t2},
		{record.UntrackedID("Q1", "u3@x"), spool.Failed, "550 u3", t0},
		{record.UntrackedID("Q1", "u1@x"), spool.Sent, "", t2},
	}
	if !slices.Equal(out, want) {
		t.Errorf("finalStates =\n%v\nwant\n%v", out, want)
	}
	m.env.DSN = true
	if ups := finalStates(m); len(ups) != 0 {
		t.Errorf("a bounce message reported %v", ups)
	}
}
