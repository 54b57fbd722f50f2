package spool

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func open(t testing.TB, opt Options) *Spool {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "spool"), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRoundTrip(t *testing.T) {
	s := open(t, Options{})
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	bodies := map[string][]byte{
		"small": []byte("Subject: hi\r\n\r\nhello\r\n"),
		"empty": nil,
		"big":   bytes.Repeat([]byte("0123456789abcdef\r\n"), 20000), // > the 64 KB copy buffer
	}
	ids := map[string]string{}
	for name, body := range bodies {
		env := &Envelope{ID: NewID(now), From: "a@x", To: []string{"b@y", "c@z"}, Received: now, MessageID: "<m@h>"}
		off, err := s.Put(env, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		ids[env.ID] = name
		if fi, err := os.Stat(filepath.Join(s.Dir(), env.ID+".msg")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: message file %v (%v), want mode 0600", name, fi.Mode(), err)
		}
		b, err := s.Open(env.ID, off)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(b)
		b.Close()
		if !bytes.Equal(got, body) {
			t.Errorf("%s: read back %d bytes, want %d", name, len(got), len(body))
		}
	}
	var first string
	for id := range ids {
		first = id
		break
	}
	st := &State{Subject: "hi", Copies: []Copy{{Recipients: []string{"b@y"}, TrackingID: "t1", Status: Deferred, Attempts: 2, Next: now, LastError: "421"}}}
	if err := s.WriteState(first, st); err != nil {
		t.Fatal(err)
	}

	msgs, errs := s.Scan()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if len(msgs) != len(bodies) {
		t.Fatalf("scan found %d messages, want %d", len(msgs), len(bodies))
	}
	if !sort.SliceIsSorted(msgs, func(i, j int) bool { return msgs[i].ID < msgs[j].ID }) {
		t.Error("scan is not sorted by id")
	}
	for _, m := range msgs {
		name := ids[m.ID]
		if m.From != "a@x" || strings.Join(m.To, ",") != "b@y,c@z" || !m.Received.Equal(now) || m.MessageID != "<m@h>" {
			t.Errorf("%s: envelope %+v", name, m.Envelope)
		}
		b, err := s.Open(m.ID, m.Offset)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(b)
		b.Close()
		if !bytes.Equal(got, bodies[name]) {
			t.Errorf("%s: body differs after scan", name)
		}
		if (m.ID == first) != (m.State != nil) {
			t.Errorf("%s: state %v", name, m.State)
		}
		if m.State != nil {
			c := m.State.Copies[0]
			if c.TrackingID != "t1" || c.Status != Deferred || c.Attempts != 2 || !c.Next.Equal(now) || c.LastError != "421" {
				t.Errorf("state copy = %+v", c)
			}
		}
	}
	if err := s.Delete(first); err != nil {
		t.Fatal(err)
	}
	msgs, _ = s.Scan()
	if len(msgs) != len(bodies)-1 {
		t.Errorf("after delete: %d messages", len(msgs))
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), first+".state")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file survived delete: %v", err)
	}
}

type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("client went away")
	}
	r.n -= len(p)
	return len(p), nil
}

func TestPutFailureLeavesNothing(t *testing.T) {
	s := open(t, Options{})
	env := &Envelope{ID: NewID(time.Now()), To: []string{"b@y"}}
	if _, err := s.Put(env, &failingReader{n: 100000}); err == nil {
		t.Fatal("Put succeeded with a failing reader")
	}
	ents, _ := os.ReadDir(s.Dir())
	for _, e := range ents {
		if e.Name() != journalName {
			t.Errorf("left %s behind", e.Name())
		}
	}
}

func TestScanCleansUp(t *testing.T) {
	s := open(t, Options{})
	env := &Envelope{ID: NewID(time.Now()), To: []string{"b@y"}}
	if _, err := s.Put(env, strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(s.Dir(), name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(".tmp-half", "partial")
	write("orphan.state", `{"copies":[]}`)
	write("broken.msg", "not json\nbody")
	write(env.ID+".state", "{truncated")
	msgs, errs := s.Scan()
	if len(msgs) != 1 || msgs[0].ID != env.ID || msgs[0].State != nil {
		t.Fatalf("scan = %+v", msgs)
	}
	// The broken message and the bad state file went aside, reported.
	if len(errs) != 2 {
		t.Fatalf("errs = %v", errs)
	}
	for name, want := range map[string]bool{".tmp-half": false, "orphan.state": false, "broken.msg": false,
		env.ID + ".state": false, DamagedDir + "/broken.msg": true, DamagedDir + "/" + env.ID + ".state": true} {
		_, err := os.Stat(filepath.Join(s.Dir(), name))
		if (err == nil) != want {
			t.Errorf("%s exists=%v, want %v", name, err == nil, want)
		}
	}
	if msgs, errs := s.Scan(); len(msgs) != 1 || len(errs) != 0 {
		t.Errorf("second scan: %d messages, errs %v", len(msgs), errs)
	}
}

// TestGroupCommit: concurrent Puts share directory fsyncs, and each Put has
// its own file fsync.
func TestGroupCommit(t *testing.T) {
	var files, dirs atomic.Int64
	s := open(t, Options{OnSync: func(kind string) {
		if kind == "dir" {
			dirs.Add(1)
			time.Sleep(2 * time.Millisecond) // a slow disk: others queue up
		} else {
			files.Add(1)
		}
	}})
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			env := &Envelope{ID: NewID(time.Now()), To: []string{"b@y"}}
			_, err := s.Put(env, strings.NewReader("Subject: x\r\n\r\nbody\r\n"))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if files.Load() != n {
		t.Errorf("file fsyncs = %d, want %d", files.Load(), n)
	}
	if d := dirs.Load(); d < 1 || d > n/4 {
		t.Errorf("directory fsyncs = %d for %d concurrent messages, want between 1 and %d", d, n, n/4)
	}
	msgs, _ := s.Scan()
	if len(msgs) != n {
		t.Errorf("%d messages spooled, want %d", len(msgs), n)
	}
}

func TestNoFsync(t *testing.T) {
	var syncs atomic.Int64
	s := open(t, Options{NoFsync: true, OnSync: func(string) { syncs.Add(1) }})
	if _, err := s.Put(&Envelope{ID: NewID(time.Now())}, strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if syncs.Load() != 0 {
		t.Errorf("%d fsyncs with NoFsync", syncs.Load())
	}
}

func TestPutAfterClose(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.Put(&Envelope{ID: NewID(time.Now())}, strings.NewReader("x")); err == nil {
		t.Fatal("Put after Close succeeded")
	}
}

func TestNewIDSortedUnique(t *testing.T) {
	now := time.Now()
	prev := ""
	seen := map[string]bool{}
	for i := range 70000 { // more than the per-millisecond sequence
		id := NewID(now.Add(time.Duration(i/50000) * time.Millisecond))
		if len(id) != 16 || seen[id] || id <= prev {
			t.Fatalf("id %d = %q after %q (dup=%v)", i, id, prev, seen[id])
		}
		seen[id] = true
		prev = id
	}
}

var benchBody = bytes.Repeat([]byte("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n"), 860) // ~50 KB

func benchSpool(b *testing.B, opt Options, parallel bool) {
	s := open(b, opt)
	var dirs atomic.Int64
	s.opt.OnSync = func(kind string) {
		if kind == "dir" {
			dirs.Add(1)
		}
	}
	put := func() {
		env := &Envelope{ID: NewID(time.Now()), From: "a@x", To: []string{"b@y"}}
		if _, err := s.Put(env, bytes.NewReader(benchBody)); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(benchBody)))
	b.ResetTimer()
	if parallel {
		b.SetParallelism(16) // like 16 SMTP sessions per CPU
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				put()
			}
		})
	} else {
		for b.Loop() {
			put()
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if !opt.NoFsync {
		b.ReportMetric(float64(dirs.Load())/float64(b.N), "dirsyncs/msg")
	}
}

// BenchmarkSpool: one ~50 KB message at a time, durable.
func BenchmarkSpool(b *testing.B) { benchSpool(b, Options{}, false) }

// BenchmarkSpoolParallel: many concurrent Puts sharing directory fsyncs.
func BenchmarkSpoolParallel(b *testing.B) { benchSpool(b, Options{}, true) }

// BenchmarkSpoolNoFsync: the limit without the disk (benchmark only).
func BenchmarkSpoolNoFsync(b *testing.B) { benchSpool(b, Options{NoFsync: true}, true) }

// FuzzScan: whatever a damaged spool file holds, Scan neither panics nor
// deletes it (it is kept, or moved aside and reported), and a message it
// accepts opens at a sane offset.
func FuzzScan(f *testing.F) {
	f.Add([]byte(`{"id":"0abc","from":"a@x","to":["b@y"]}` + "\nSubject: x\r\n\r\nbody"))
	f.Add([]byte("\n"))
	f.Add([]byte(`{"id":"0abc","to":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Open(t.TempDir(), Options{NoFsync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		p := filepath.Join(s.Dir(), "0abc.msg")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		msgs, errs := s.Scan()
		if len(msgs)+len(errs) != 1 {
			t.Fatalf("%d messages and %d errors for one file", len(msgs), len(errs))
		}
		if len(errs) == 1 {
			var de *DamagedError
			if !errors.As(errs[0], &de) || de.ID != "0abc" || de.Err != nil {
				t.Fatalf("error %v, want a message moved aside", errs[0])
			}
			p = de.Path
		}
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("scan lost or changed a message file: %v", err)
		}
		for _, m := range msgs {
			if m.ID != "0abc" || m.Offset <= 0 || m.Offset > int64(len(data)) {
				t.Fatalf("message %+v from %q", m, data)
			}
			b, err := s.Open(m.ID, m.Offset)
			if err != nil {
				t.Fatal(err)
			}
			rest, _ := io.ReadAll(b)
			b.Close()
			if !bytes.Equal(rest, data[m.Offset:]) {
				t.Fatalf("body %q, want %q", rest, data[m.Offset:])
			}
		}
	})
}

// TestPutWaitsForDirSync: Put does not return before a directory fsync that
// ran after its rename.
func TestPutWaitsForDirSync(t *testing.T) {
	release := make(chan struct{})
	var sawFile atomic.Bool
	var s *Spool
	s = open(t, Options{OnSync: func(kind string) {
		if kind != "dir" {
			return
		}
		ents, _ := os.ReadDir(s.Dir())
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".msg") {
				sawFile.Store(true)
			}
		}
		<-release
	}})
	done := make(chan error, 1)
	go func() {
		_, err := s.Put(&Envelope{ID: NewID(time.Now())}, strings.NewReader("x"))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Put returned (%v) while the directory fsync was still running", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !sawFile.Load() {
		t.Error("the directory fsync ran before the message was renamed into place")
	}
}

// TestStateJournal: states survive a reopen, the last one written counts,
// a torn last line is ignored, a deleted message's state is gone, an old
// ID.state file is still read, and the journal is compacted.
func TestStateJournal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	put := func(s *Spool) string {
		env := &Envelope{ID: NewID(time.Now()), To: []string{"b@y"}}
		if _, err := s.Put(env, strings.NewReader("Subject: x\r\n\r\nbody\r\n")); err != nil {
			t.Fatal(err)
		}
		return env.ID
	}
	state := func(status string) *State {
		return &State{Copies: []Copy{{Recipients: []string{"b@y"}, Status: status}}}
	}
	a, b, c, old := put(s), put(s), put(s), put(s)
	for _, w := range []struct {
		id string
		st *State
	}{{a, state(Queued)}, {b, state(Queued)}, {a, state(Deferred)}, {c, state(Queued)}} {
		if err := s.WriteState(w.id, w.st); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(c); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A crash in the middle of a record for b, and a state file as an
	// earlier version wrote it.
	jf, err := os.OpenFile(filepath.Join(dir, journalName), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	jf.WriteString(`{"id":"` + b + `","state":{"copies":[{"rcpts":["b@y"],"status":"sent"`)
	jf.Close()
	if err := os.WriteFile(filepath.Join(dir, old+".state"), []byte(`{"copies":[{"rcpts":["b@y"],"status":"deferred"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	msgs, errs := s.Scan()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	got := map[string]string{}
	for _, m := range msgs {
		got[m.ID] = "none"
		if m.State != nil {
			got[m.ID] = m.State.Copies[0].Status
		}
	}
	want := map[string]string{a: Deferred, b: Queued, old: Deferred}
	if len(got) != len(want) {
		t.Errorf("scan found %v, want %v", got, want)
	}
	for id, st := range want {
		if got[id] != st {
			t.Errorf("%s: state %q, want %q", id, got[id], st)
		}
	}
	if err := s.Delete(old); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, old+".state")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old state file left after Delete: %v", err)
	}

	// Compaction: many rewrites of one state keep the journal small.
	defer func(v int64) { compactAt = v }(compactAt)
	compactAt = 4096
	for i := range 200 {
		st := state(Deferred)
		st.Copies[0].Attempts = i
		if err := s.WriteState(a, st); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, journalName))
	if err != nil || fi.Size() > 2*compactAt {
		t.Fatalf("journal %v bytes after compaction (%v)", fi.Size(), err)
	}
	msgs, _ = s.Scan()
	for _, m := range msgs {
		if m.ID == a && (m.State == nil || m.State.Copies[0].Attempts != 199) {
			t.Errorf("after compaction: %+v", m.State)
		}
	}
}

// BenchmarkWriteState: one state write per planned message.
func BenchmarkWriteState(b *testing.B) {
	s := open(b, Options{})
	st := &State{Subject: "hi", Copies: []Copy{{Recipients: []string{"b@y"}, TrackingID: "t1", Token: strings.Repeat("a", 48), Status: Queued}}}
	ids := make([]string, 64)
	for i := range ids {
		ids[i] = NewID(time.Now())
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := s.WriteState(ids[i%len(ids)], st); err != nil {
			b.Fatal(err)
		}
	}
}
