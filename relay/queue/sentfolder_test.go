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

// TestSentFolderRawOnlyWhenOn: the spool file is read back for the hand
// over only when the Sent folder of the message's account is on and a
// copy was tracked; otherwise the job gets no raw bytes (it needs none).
func TestSentFolderRawOnlyWhenOn(t *testing.T) {
	for _, tc := range []struct {
		name    string
		on      bool
		to      []string
		wantRaw bool
	}{
		{"on, tracked", true, []string{"a@ex.test"}, true},
		{"off, tracked", false, []string{"a@ex.test"}, false},
		{"on, untracked", true, []string{"z@untracked.test"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, testConfig())
			got := make(chan Finished, 1)
			h.openWith(func(o *Options) {
				o.SentFolderOn = func(string, string) bool { return tc.on }
				o.SentFolder = func(f Finished) error { got <- f; return nil }
			}, true)
			h.spool("s@x.test", tc.to, htmlMsg)
			f := <-got
			if hasRaw := bytes.Contains(f.Raw, []byte(htmlMsg[:40])); hasRaw != tc.wantRaw || !tc.wantRaw && f.Raw != nil {
				t.Errorf("raw %d bytes, want them: %v", len(f.Raw), tc.wantRaw)
			}
		})
	}
}
