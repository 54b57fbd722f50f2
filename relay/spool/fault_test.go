package spool

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// diskFull fails chosen write steps with ENOSPC (Options.Fault).
type diskFull struct {
	mu    sync.Mutex
	steps map[string]bool // failing now
	hits  map[string]int  // faults injected per step
}

func newDiskFull() *diskFull {
	return &diskFull{steps: map[string]bool{}, hits: map[string]int{}}
}

func (d *diskFull) fault(step string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.steps[step] {
		d.hits[step]++
		return syscall.ENOSPC
	}
	return nil
}

func (d *diskFull) set(step string, full bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.steps[step] = full
}

func (d *diskFull) injected(step string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hits[step]
}

// dirNames lists dir, without an empty states journal.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if fi, err := e.Info(); e.Name() == journalName && err == nil && fi.Size() == 0 {
			continue
		}
		out = append(out, e.Name())
	}
	return out
}

// TestPutDiskFull: a full disk at any step of Put fails it with ENOSPC and
// leaves no file behind (no .tmp, no partial .msg); once there is room
// again the next Put works and Scan finds exactly that message.
func TestPutDiskFull(t *testing.T) {
	body := strings.Repeat("0123456789abcdef", 16<<10) // 256 KiB: several writes
	for _, step := range []string{StepWrite, StepFsync, StepRename, StepDirSync} {
		t.Run(step, func(t *testing.T) {
			d := newDiskFull()
			s := open(t, Options{Fault: d.fault})
			d.set(step, true)
			env := &Envelope{ID: NewID(time.Now()), To: []string{"b@y"}}
			if _, err := s.Put(env, strings.NewReader(body)); !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Put = %v, want ENOSPC", err)
			}
			if d.injected(step) == 0 {
				t.Fatalf("no fault injected at %s", step)
			}
			if names := dirNames(t, s.Dir()); len(names) != 0 {
				t.Fatalf("left behind: %v", names)
			}
			d.set(step, false)
			env2 := &Envelope{ID: NewID(time.Now()), To: []string{"b@y"}}
			off, err := s.Put(env2, strings.NewReader(body))
			if err != nil {
				t.Fatalf("Put after space returned: %v", err)
			}
			msgs, errs := s.Scan()
			if len(errs) > 0 || len(msgs) != 1 || msgs[0].ID != env2.ID {
				t.Fatalf("scan = %v, %v", msgs, errs)
			}
			b, err := s.Open(env2.ID, off)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			var got bytes.Buffer
			got.ReadFrom(b)
			if got.String() != body {
				t.Fatalf("body: %d bytes, want %d", got.Len(), len(body))
			}
		})
	}
}

// TestWriteStateDiskFull: an append to the journal that fails half way is
// cut off, so the records written after it (once there is room again)
// are read back; a failed compaction keeps the old journal in use.
func TestWriteStateDiskFull(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	d := newDiskFull()
	s, err := Open(dir, Options{Fault: d.fault})
	if err != nil {
		t.Fatal(err)
	}
	env := &Envelope{ID: NewID(time.Now()), To: []string{"b@y", "c@y"}}
	if _, err := s.Put(env, strings.NewReader("Subject: x\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	state := func(status string, attempts int) *State {
		return &State{Size: 20, Copies: []Copy{{Recipients: []string{"b@y"}, Status: status, Attempts: attempts}}}
	}
	if err := s.WriteState(env.ID, state(Queued, 0)); err != nil {
		t.Fatal(err)
	}
	d.set(StepState, true)
	if err := s.WriteState(env.ID, state(Sent, 1)); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("WriteState = %v, want ENOSPC", err)
	}
	d.set(StepState, false)
	if err := s.WriteState(env.ID, state(Deferred, 2)); err != nil {
		t.Fatal(err)
	}
	// What a crash now would read back: the record after the failed one.
	j, err := s.readJournal()
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := s.loadState(env.ID, j[env.ID]); st == nil || st.Copies[0].Attempts != 2 {
		t.Fatalf("journal after a failed append holds %s, want the record written after it", j[env.ID])
	}
	// A compaction that fails: the journal in use stays the old one.
	defer func(v int64) { compactAt = v }(compactAt)
	compactAt = 1024
	d.set(StepCompact, true)
	for i := 3; d.injected(StepCompact) == 0; i++ {
		if i > 100 {
			t.Fatal("no compaction was tried")
		}
		s.WriteState(env.ID, state(Deferred, i))
	}
	d.set(StepCompact, false)
	if err := s.WriteState(env.ID, state(Deferred, 1000)); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	msgs, errs := s.Scan()
	if len(errs) > 0 || len(msgs) != 1 || msgs[0].State == nil {
		t.Fatalf("scan = %+v, %v", msgs, errs)
	}
	if c := msgs[0].State.Copies[0]; c.Attempts != 1000 || c.Status != Deferred {
		t.Fatalf("state read back: %+v, want the last one written", c)
	}
	if names := dirNames(t, dir); len(names) != 2 {
		t.Fatalf("spool holds %v, want the message and the journal", names)
	}
}

// TestScanMovesDamaged: every kind of damaged entry is moved aside into
// DamagedDir with its bytes intact, reported once (not again at the next
// start), counted by Damaged, and the good messages are still found.
func TestScanMovesDamaged(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	good := &Envelope{ID: NewID(time.Now()), To: []string{"b@y"}}
	if _, err := s.Put(good, strings.NewReader("Subject: good\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	badState := &Envelope{ID: NewID(time.Now()), To: []string{"b@y"}}
	if _, err := s.Put(badState, strings.NewReader("Subject: s\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	truncated := &Envelope{ID: NewID(time.Now()), To: []string{"b@y"}}
	if _, err := s.Put(truncated, strings.NewReader("Subject: t\r\n\r\nthe whole body\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteState(truncated.ID, &State{Size: 32, Copies: []Copy{{Recipients: []string{"b@y"}, Status: Queued}}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	envLine := func(id string, to ...string) string {
		b, _ := json.Marshal(Envelope{ID: id, To: to})
		return string(b) + "\n"
	}
	damaged := map[string]string{ // file name -> content
		"empty.msg":     "",
		"noeol.msg":     `{"id":"noeol","to":["b@y"]`,
		"garbled.msg":   "\x00\xff garbage\nbody",
		"otherid.msg":   envLine("someone-else", "b@y") + "body",
		"nobody.msg":    envLine("nobody") + "body",
		"badstate1.msg": envLine("badstate1", "b@y") + "body",
	}
	for name, data := range damaged {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A directory where a message should be, a message cut short after
	// it was planned, a state record no queue writes, and a legacy state
	// file with a bad status.
	if err := os.Mkdir(filepath.Join(dir, "isdir.msg"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(dir, truncated.ID+".msg"), 60); err != nil {
		t.Fatal(err)
	}
	jf, err := os.OpenFile(filepath.Join(dir, journalName), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	jf.WriteString(`{"id":"` + badState.ID + `","state":{"copies":[{"rcpts":[],"status":"queued"}]}}` + "\n")
	jf.Close()
	os.WriteFile(filepath.Join(dir, "badstate1.state"), []byte(`{"copies":[{"rcpts":["b@y"],"status":"lost"}]}`), 0o600)

	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	msgs, errs := s.Scan()
	found := map[string]bool{}
	for _, m := range msgs {
		found[m.ID] = true
		if m.State != nil {
			t.Errorf("%s: kept state %+v", m.ID, m.State)
		}
	}
	// A bad state only: the message is planned again.
	if len(msgs) != 3 || !found[good.ID] || !found[badState.ID] || !found["badstate1"] {
		t.Errorf("scan found %v, want %s, %s and badstate1", found, good.ID, badState.ID)
	}
	reported := map[string]bool{}
	for _, err := range errs {
		var de *DamagedError
		if !errors.As(err, &de) || de.Err != nil {
			t.Errorf("error %v, want an entry moved aside", err)
			continue
		}
		reported[de.ID] = true
		if !strings.HasPrefix(de.Path, filepath.Join(dir, DamagedDir)+"/") {
			t.Errorf("%s moved to %s", de.ID, de.Path)
		}
		if de.StateOnly != (de.ID == badState.ID || de.ID == "badstate1") {
			t.Errorf("%s: StateOnly=%v (%s)", de.ID, de.StateOnly, de.Reason)
		}
	}
	for _, id := range []string{"empty", "noeol", "garbled", "otherid", "nobody", "isdir", truncated.ID, badState.ID, "badstate1"} {
		if !reported[id] {
			t.Errorf("%s not reported (errs %v)", id, errs)
		}
	}
	if len(errs) != 9 {
		t.Errorf("%d reports, want 9: %v", len(errs), errs)
	}
	for name, data := range damaged {
		if name == "badstate1.msg" {
			continue
		}
		got, err := os.ReadFile(filepath.Join(dir, DamagedDir, name))
		if err != nil || string(got) != data {
			t.Errorf("%s aside: %q, %v; want its bytes", name, got, err)
		}
	}
	if n, err := s.Damaged(); n != 9 || err != nil { // the truncated one's state goes with it
		t.Errorf("Damaged() = %d, %v; want 9", n, err)
	}
	s.Close()

	// The next start reports nothing again.
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	msgs, errs = s.Scan()
	if len(msgs) != 3 || len(errs) != 0 {
		t.Errorf("second scan: %d messages, errors %v", len(msgs), errs)
	}
}

// TestMoveAside: the queue's way to put a message it cannot read aside.
func TestMoveAside(t *testing.T) {
	s := open(t, Options{})
	env := &Envelope{ID: NewID(time.Now()), To: []string{"b@y"}}
	if _, err := s.Put(env, strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteState(env.ID, &State{Copies: []Copy{{Recipients: []string{"b@y"}, Status: Queued}}}); err != nil {
		t.Fatal(err)
	}
	de := s.MoveAside(env.ID, "unreadable")
	if de.Err != nil || de.Path != filepath.Join(s.Dir(), DamagedDir, env.ID+".msg") {
		t.Fatalf("MoveAside = %+v", de)
	}
	if msgs, errs := s.Scan(); len(msgs) != 0 || len(errs) != 0 {
		t.Errorf("scan after MoveAside: %v %v", msgs, errs)
	}
	if n, _ := s.Damaged(); n != 1 {
		t.Errorf("Damaged() = %d, want 1 (the message and its state are one entry)", n)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), DamagedDir, env.ID+".state")); err != nil {
		t.Errorf("the state did not go with its message: %v", err)
	}
	if de := s.MoveAside(env.ID, "again"); !errors.Is(de.Err, os.ErrNotExist) {
		t.Errorf("moving a message that is gone: %v", de.Err)
	}
}
