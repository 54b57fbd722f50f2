package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"pixelrelay/tracker/record"
)

// untracked is the record of an untracked recipient of queue id q.
func untracked(q, rcpt, reason string, queued time.Time) record.Copy {
	return record.Copy{QueueID: q, Recipient: rcpt, From: "me@example.com", Subject: "s " + q,
		MessageID: "<" + q + "@example.com>", QueuedAt: queued, UntrackedReason: reason}
}

// ids lists the messages' ids (tracking id, or the untracked record id).
func ids(ms []Message) []string {
	var out []string
	for _, m := range ms {
		if m.Tracked {
			out = append(out, m.TrackingID)
		} else {
			out = append(out, "untracked:"+m.Recipient+":"+m.UntrackedReason)
		}
	}
	return out
}

func mustMessages(t *testing.T, s *Store, q MessageQuery) []Message {
	t.Helper()
	ms, err := s.Messages(q)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// TestUntrackedCopies: every recipient has a record; an untracked one is
// listed with its reason, can be updated, is never unopened, never takes
// an open and is never reachable by a tracking id.
func TestUntrackedCopies(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	q := clk.Now()
	addCopy(t, s, "trk1", "bob@example.org", q)
	cs := []record.Copy{
		untracked("q-trk1", "Me@Example.com", "sender", q),
		untracked("q-trk1", "<x@corp.example>", "excluded", q),
		untracked("q2", "bob@example.org", "no HTML part", q.Add(time.Minute)),
	}
	for range 2 { // again: already stored, nothing changes
		if err := s.Add(cs); err != nil {
			t.Fatal(err)
		}
	}
	if st := mustStats(t, s); st.Copies != 4 || st.Untracked != 3 {
		t.Fatalf("Stats = %+v, want 4 copies of which 3 untracked", st)
	}
	all := mustMessages(t, s, MessageQuery{})
	want := []string{"untracked:bob@example.org:no HTML part", "trk1", "untracked:<x@corp.example>:excluded", "untracked:Me@Example.com:sender"}
	got := ids(all)
	// trk1 and the two untracked copies of its message share a queued
	// time; among equals the order is by id.
	slices.Sort(got[1:])
	slices.Sort(want[1:])
	if !slices.Equal(got, want) {
		t.Fatalf("Messages = %v, want %v", got, want)
	}
	for _, m := range all {
		if !m.Tracked && (m.TrackingID != "" || m.UntrackedReason == "" || m.Status != record.StatusQueued) {
			t.Errorf("untracked message %+v", m)
		}
		if m.Tracked && m.UntrackedReason != "" {
			t.Errorf("tracked message with a reason: %+v", m)
		}
	}
	if got := ids(mustMessages(t, s, MessageQuery{To: "BOB@example.org"})); !slices.Equal(got, []string{"untracked:bob@example.org:no HTML part", "trk1"}) {
		t.Errorf("Messages(to bob) = %v", got)
	}
	if got := ids(mustMessages(t, s, MessageQuery{Unopened: true})); !slices.Equal(got, []string{"trk1"}) {
		t.Errorf("Messages(unopened) = %v, want only the tracked copy", got)
	}

	uid := record.UntrackedID("q-trk1", "me@example.com")
	if err := s.Update(uid, record.StatusSent, "", clk.Now()); err != nil {
		t.Fatal(err)
	}
	ms := mustMessages(t, s, MessageQuery{To: "me@example.com"})
	if len(ms) != 1 || ms[0].Status != record.StatusSent || ms[0].SentAt == nil {
		t.Errorf("after Update(%s, sent): %+v", uid, ms)
	}
	if _, ok, err := s.Copy(uid); ok || err != nil {
		t.Errorf("Copy(%q) = %v, %v: an untracked copy has no tracking id", uid, ok, err)
	}
	if ms := mustMessages(t, s, MessageQuery{ID: uid}); len(ms) != 0 {
		t.Errorf("Messages(ID %q) = %+v", uid, ms)
	}
	if mustRecord(t, s, Hit{TrackingID: uid, IP: "192.0.2.1"}) {
		t.Error("an untracked copy took an open")
	}
	if !mustRecord(t, s, Hit{TrackingID: "trk1", IP: "192.0.2.1"}) {
		t.Error("the tracked copy took no open")
	}
	if err := s.Update(record.UntrackedID("q9", "nobody@example.org"), record.StatusSent, "", clk.Now()); !errors.Is(err, record.ErrNotFound) {
		t.Errorf("Update(unknown untracked) = %v, want record.ErrNotFound", err)
	}
	for _, bad := range []record.Copy{
		{UntrackedReason: "excluded", Recipient: "a@b"}, // no queue id
		{UntrackedReason: "excluded", QueueID: "q"},     // no recipient
		{TrackingID: "a/b"},                             // a tracking id that reads as untracked
		{TrackingID: ""},                                // tracked without an id
	} {
		if err := s.Add([]record.Copy{bad}); err == nil {
			t.Errorf("Add(%+v) accepted", bad)
		}
	}
	checkConsistent(t, s)
}

// TestVersion1Database: a database written before untracked copies were
// recorded (testdata/v1.db, made by that version: a sent, a failed and a
// deferred copy, three opens) reads as it was, takes new records, and its
// done copies are purged by the time they were done.
func TestVersion1Database(t *testing.T) {
	b, err := os.ReadFile("testdata/v1.db")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pixelrelay.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	s, err := OpenStore(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q := time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC)
	all := mustMessages(t, s, MessageQuery{})
	type row struct {
		id, status string
		opens      int
	}
	var got []row
	for _, m := range all {
		if !m.Tracked || m.UntrackedReason != "" {
			t.Errorf("version 1 copy %s not tracked: %+v", m.TrackingID, m)
		}
		got = append(got, row{m.TrackingID, m.Status, m.OpensTotal})
	}
	want := []row{{"cccccccccccccccc", "deferred", 1}, {"bbbbbbbbbbbbbbbb", "failed", 0}, {"aaaaaaaaaaaaaaaa", "sent", 2}}
	if !slices.Equal(got, want) {
		t.Fatalf("version 1 messages %+v, want %+v", got, want)
	}
	if st := mustStats(t, s); st.Copies != 3 || st.Untracked != 0 || st.Opens != 3 || st.OpensHuman != 2 {
		t.Fatalf("Stats = %+v", st)
	}
	if err := s.Add([]record.Copy{untracked("q3", "new@example.org", "dkim", q)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update("cccccccccccccccc", record.StatusSent, "", q.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, s)
	// The v1 sent copy was done at its SentAt (q+1m), the failed one at its
	// QueuedAt (q): a cutoff of q+1m takes the failed one only.
	res, err := s.Purge(context.Background(), q.Add(time.Minute), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.DeletedCopies != 1 || res.Deleted != 0 {
		t.Errorf("purge at q+1m: %+v, want the failed copy and no open", res)
	}
	res, err = s.Purge(context.Background(), q.Add(24*time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.DeletedCopies != 1 || res.Deleted != 2+1 {
		t.Errorf("purge at q+24h: %+v, want the sent copy with its 2 opens, and c's open", res)
	}
	got = got[:0]
	for _, m := range mustMessages(t, s, MessageQuery{}) {
		got = append(got, row{m.TrackingID, m.Status, m.OpensTotal})
	}
	if want := []row{{"cccccccccccccccc", "sent", 1}, {"", "queued", 0}}; !slices.Equal(got, want) {
		t.Errorf("after the purges: %+v, want %+v", got, want)
	}
	checkConsistent(t, s)
}

// purgeCase is one copy of TestPurgeCopies: its state and opens, and
// whether the purge must take it.
type purgeCase struct {
	name    string
	rec     record.Copy
	status  string        // "" leaves it queued
	doneAge time.Duration // how long before the cutoff it was done (negative: after)
	opens   []time.Duration
	gone    bool
	kept    int // opens left when the copy stays
}

// TestPurgeCopies: a done copy (sent or failed) done before the cutoff
// goes with every one of its opens; a queued or deferred one never goes
// (only its opens older than the cutoff); index entries and counters
// stay right.
func TestPurgeCopies(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	cut := clk.Now().Add(-90 * 24 * time.Hour)
	old := cut.Add(-10 * 24 * time.Hour)
	tracked := func(id string) record.Copy {
		return record.Copy{TrackingID: id, QueueID: "q" + id, Recipient: id + "@example.org", QueuedAt: old}
	}
	day := 24 * time.Hour
	cases := []purgeCase{
		{name: "sent long ago", rec: tracked("sentold"), status: record.StatusSent, doneAge: 9 * day,
			opens: []time.Duration{8 * day, -30 * day}, gone: true},
		{name: "failed long ago", rec: tracked("failedold"), status: record.StatusFailed, doneAge: 5 * day, gone: true},
		{name: "sent 1ns before the cutoff", rec: tracked("sentjust"), status: record.StatusSent, doneAge: 1, gone: true},
		{name: "sent at the cutoff", rec: tracked("sentcut"), status: record.StatusSent, doneAge: 0,
			opens: []time.Duration{time.Nanosecond, 0, -day}, kept: 2},
		{name: "sent after the cutoff", rec: tracked("sentlate"), status: record.StatusSent, doneAge: -day,
			opens: []time.Duration{-2 * day}, kept: 1},
		{name: "deferred since long ago", rec: tracked("deferred"), status: record.StatusDeferred, doneAge: 9 * day,
			opens: []time.Duration{5 * day, -day}, kept: 1},
		{name: "queued since long ago", rec: tracked("queued")},
		{name: "untracked sent long ago", rec: untracked("qu", "u1@example.org", "excluded", old), status: record.StatusSent,
			doneAge: 9 * day, gone: true},
		{name: "untracked deferred", rec: untracked("qu", "u2@example.org", "no HTML part", old), status: record.StatusDeferred,
			doneAge: 9 * day},
		{name: "untracked failed after the cutoff", rec: untracked("qu", "u3@example.org", "signed", old), status: record.StatusFailed,
			doneAge: -day},
	}
	for _, c := range cases {
		setUpPurgeCase(t, s, c, cut)
	}
	checkConsistent(t, s)
	res, err := s.Purge(context.Background(), cut, nil)
	if err != nil {
		t.Fatal(err)
	}
	left := map[string]Message{}
	for _, m := range mustMessages(t, s, MessageQuery{Limit: 500}) {
		left[m.Recipient] = m
	}
	wantCopies, wantOpens := 0, 0
	for _, c := range cases {
		m, ok := left[c.rec.Recipient]
		if ok == c.gone {
			t.Errorf("%s: kept %v, want kept %v", c.name, ok, !c.gone)
			continue
		}
		if c.gone {
			wantCopies++
			wantOpens += len(c.opens)
			continue
		}
		wantOpens += len(c.opens) - c.kept
		if m.Tracked {
			opens, err := s.Opens(OpenQuery{ID: m.TrackingID})
			if err != nil || len(opens) != c.kept {
				t.Errorf("%s: %d opens left (%v), want %d", c.name, len(opens), err, c.kept)
			}
		}
	}
	if res.DeletedCopies != wantCopies || res.Deleted != wantOpens {
		t.Errorf("purge result %+v, want %d copies and %d opens", res, wantCopies, wantOpens)
	}
	checkConsistent(t, s)
}

// setUpPurgeCase stores c: its record, its state done doneAge before cut,
// and its opens at the given ages before cut.
func setUpPurgeCase(t *testing.T, s *Store, c purgeCase, cut time.Time) {
	t.Helper()
	if err := s.Add([]record.Copy{c.rec}); err != nil {
		t.Fatal(err)
	}
	if c.status != "" {
		if err := s.Update(c.rec.ID(), c.status, "", cut.Add(-c.doneAge)); err != nil {
			t.Fatal(err)
		}
	}
	for i, age := range c.opens {
		h := Hit{TrackingID: c.rec.TrackingID, At: cut.Add(-age), IP: fmt.Sprintf("192.0.2.%d", i+1), Bot: i%2 == 1}
		if !mustRecord(t, s, h) {
			t.Fatalf("%s: open %d not stored", c.name, i)
		}
	}
}

// TestPurgeExactCutoff: the cutoff is exclusive. An open stamped exactly
// at the cutoff instant stays, one a nanosecond earlier goes; likewise a
// copy done exactly at the cutoff stays. (A ">=" turned into ">", or the
// reverse, in purge.go fails it.)
func TestPurgeExactCutoff(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	cut := clk.Now().Add(-90 * 24 * time.Hour)
	addCopy(t, s, "live", "bob@example.org", cut.Add(-time.Hour)) // queued: never purged
	for i, at := range []time.Time{cut.Add(-time.Nanosecond), cut, cut.Add(time.Nanosecond)} {
		mustRecord(t, s, Hit{TrackingID: "live", At: at, IP: fmt.Sprintf("192.0.2.%d", i+1)})
	}
	addCopy(t, s, "atcut", "carol@example.org", cut.Add(-time.Hour))
	addCopy(t, s, "beforecut", "dave@example.org", cut.Add(-time.Hour))
	for id, at := range map[string]time.Time{"atcut": cut, "beforecut": cut.Add(-time.Nanosecond)} {
		if err := s.Update(id, record.StatusSent, "", at); err != nil {
			t.Fatal(err)
		}
	}
	res, err := s.Purge(context.Background(), cut, nil)
	if err != nil {
		t.Fatal(err)
	}
	opens, err := s.Opens(OpenQuery{ID: "live"})
	if err != nil {
		t.Fatal(err)
	}
	var at []time.Time
	for _, o := range opens {
		at = append(at, o.OpenedAt)
	}
	if want := []time.Time{cut.Add(time.Nanosecond), cut}; !slices.EqualFunc(at, want, time.Time.Equal) {
		t.Errorf("opens left %v, want %v (the one at the cutoff stays)", at, want)
	}
	if got := ids(mustMessages(t, s, MessageQuery{})); !slices.Equal(got, []string{"live", "atcut"}) && !slices.Equal(got, []string{"atcut", "live"}) {
		t.Errorf("copies left %v, want live and atcut (done at the cutoff)", got)
	}
	if res.Deleted != 1 || res.DeletedCopies != 1 {
		t.Errorf("purge result %+v, want 1 open and 1 copy", res)
	}
	checkConsistent(t, s)
}

// TestPurgeManyCopies: more done copies than one transaction deletes
// (purgeChunk), interleaved by queued time with copies that stay: every
// done one goes over several transactions, progress only grows, and the
// rest stays.
func TestPurgeManyCopies(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	cut := clk.Now().Add(-24 * time.Hour)
	n := purgeChunk + purgeChunk/2
	var cs []record.Copy
	kept := 0
	for i := range n {
		c := record.Copy{TrackingID: fmt.Sprintf("c%06d", i), QueueID: "q", Recipient: fmt.Sprintf("r%d@example.org", i%7),
			QueuedAt: cut.Add(-time.Hour - time.Duration(n-i)*time.Millisecond), Status: record.StatusSent, SentAt: cut.Add(-time.Minute)}
		if i%5 == 0 {
			c.Status, c.SentAt = record.StatusDeferred, time.Time{} // stays
			kept++
		}
		cs = append(cs, c)
	}
	if err := s.Add(cs); err != nil {
		t.Fatal(err)
	}
	for i, c := range cs {
		if c.Status != record.StatusSent {
			continue
		}
		if err := s.Enqueue(Hit{TrackingID: c.TrackingID, At: cut.Add(time.Hour), IP: "192.0.2.9", UserAgent: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	last := 0
	res, err := s.Purge(context.Background(), cut, func(done int) {
		if done <= last {
			t.Errorf("progress went from %d to %d", last, done)
		}
		last = done
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.DeletedCopies != n-kept || res.Deleted != n-kept || last != res.Deleted {
		t.Errorf("purge result %+v (last progress %d), want %d copies and as many opens", res, last, n-kept)
	}
	if st := mustStats(t, s); st.Copies != kept || st.Opens != 0 {
		t.Errorf("after the purge: %+v, want %d copies and no open", st, kept)
	}
	checkConsistent(t, s)
}

// checkConsistent recounts every bucket and checks that the counters and
// indexes agree with the records: each index entry points at a record,
// each record has its index entries, and the unopened index holds exactly
// the tracked copies without a human open.
func checkConsistent(t *testing.T, s *Store) {
	t.Helper()
	err := s.view(func(tx *bolt.Tx) error {
		copies := map[string]copyRec{}
		var untracked int64
		err := tx.Bucket(bCopies).ForEach(func(k, v []byte) error {
			c, err := decodeCopy(v)
			if err != nil {
				return fmt.Errorf("copy %q: %w", k, err)
			}
			if c.ID() != string(k) {
				return fmt.Errorf("copy %+v stored under %q", c.Copy, k)
			}
			if !c.Tracked() {
				untracked++
			}
			copies[string(k)] = c
			return nil
		})
		if err != nil {
			return err
		}
		want := map[string][][]byte{} // bucket -> keys the records imply
		for _, c := range copies {
			want["byTime"] = append(want["byTime"], copyTimeKey(&c.Copy))
			want["byRcpt"] = append(want["byRcpt"], copyRcptKey(&c.Copy))
			if c.Tracked() && c.OpensHuman == 0 {
				want["unopened"] = append(want["unopened"], copyTimeKey(&c.Copy))
			}
		}
		var opens, human int64
		err = tx.Bucket(bOpens).ForEach(func(k, v []byte) error {
			i := bytes.IndexByte(k, 0)
			c, ok := copies[string(k[:max(i, 0)])]
			if i < 0 || len(k)-i-1 != 16 || !ok {
				return fmt.Errorf("open %q has no copy", k)
			}
			o, err := decodeOpen(v)
			if err != nil {
				return err
			}
			tsq := k[i+1:]
			if got := tx.Bucket(bOpensByTime).Get(tsq); !bytes.Equal(got, timeIndexValue(o.Flags, c.ID(), normAddr(c.Recipient))) {
				return fmt.Errorf("open %q: time index %q", k, got)
			}
			want["opensByRcpt"] = append(want["opensByRcpt"], prefixed(normAddr(c.Recipient), tsq))
			opens++
			if o.Flags&flagBot == 0 {
				human++
			}
			return nil
		})
		if err != nil {
			return err
		}
		for name, b := range map[string][]byte{"byTime": bCopiesByTime, "byRcpt": bCopiesByRcpt, "unopened": bUnopened, "opensByRcpt": bOpensByRcpt} {
			var keys [][]byte
			tx.Bucket(b).ForEach(func(k, _ []byte) error { keys = append(keys, append([]byte(nil), k...)); return nil })
			w := want[name]
			slices.SortFunc(w, bytes.Compare)
			if !slices.EqualFunc(keys, w, bytes.Equal) {
				return fmt.Errorf("index %s has %d keys, the records imply %d", name, len(keys), len(w))
			}
		}
		err = tx.Bucket(bEvents).ForEach(func(k, _ []byte) error {
			i := bytes.IndexByte(k, 0)
			if _, ok := copies[string(k[:max(i, 0)])]; i < 0 || !ok {
				return fmt.Errorf("event %q has no copy", k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if n := int64(tx.Bucket(bOpensByTime).Stats().KeyN); n != opens {
			return fmt.Errorf("opens_by_time has %d keys for %d opens", n, opens)
		}
		if err := checkClicksConsistent(tx, copies); err != nil {
			return err
		}
		meta := tx.Bucket(bMeta)
		for _, c := range []struct {
			name []byte
			want int64
		}{{mCopies, int64(len(copies))}, {mUntracked, untracked}, {mOpens, opens}, {mOpensHuman, human}} {
			if got := counter(meta, c.name); got != c.want {
				return fmt.Errorf("counter %s = %d, the records say %d", c.name, got, c.want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
