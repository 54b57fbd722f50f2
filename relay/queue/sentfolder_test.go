package queue

import (
	"bytes"
	"errors"
	"slices"
	"sync"
	"testing"

	"pixelrelay/tracker/record"
)

// TestSentFolderHandOver: a finished message goes to Options.SentFolder
// with what the Sent folder job needs (its raw bytes, the copies accepted,
// its records), its files stay while the hand-over fails and go once it
// worked; a message none of whose copies was accepted is not handed over.
func TestSentFolderHandOver(t *testing.T) {
	h := newHarness(t, testConfig())
	var mu sync.Mutex
	var got []Finished
	failures := 2
	h.openWith(func(o *Options) {
		o.SentFolder = func(f Finished) error {
			mu.Lock()
			defer mu.Unlock()
			if failures > 0 {
				failures--
				return errors.New("disk full")
			}
			got = append(got, f)
			return nil
		}
	}, true)
	id := h.spool("s@x.test", []string{"a@ex.test", "b@ex.test", "z@untracked.test"}, htmlMsg)
	waitFor(t, "the message handed over", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 })
	waitFor(t, "its spool files deleted", func() bool { return len(spoolFiles(t, h.dir)) <= 1 })
	f := got[0]
	if f.QueueID != id || f.From != "s@x.test" || f.Sent != 3 || !f.Tracked || f.MessageID == "" {
		t.Errorf("handed over %+v", f)
	}
	if !bytes.Contains(f.Raw, []byte(htmlMsg[:40])) {
		t.Errorf("raw message %q", f.Raw)
	}
	want := []string{record.UntrackedID(id, "z@untracked.test")}
	for _, c := range h.rec.copiesSnapshot() {
		if c.Tracked() {
			want = append(want, c.TrackingID)
		}
	}
	slices.Sort(want)
	recs := slices.Sorted(slices.Values(f.Records))
	if !slices.Equal(recs, want) {
		t.Errorf("records %v, want %v", recs, want)
	}
}
