package spool

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Scan reads every message in the spool, oldest first, with its state.
// Leftover temporary files and state files without a message are removed.
// A damaged entry is moved aside into DamagedDir (never deleted: it may be
// someone's mail) and reported once, as a *DamagedError in the error list:
// a .msg file whose envelope cannot be read, names no recipient or another
// id, or that is shorter or longer than when it was planned, goes there
// with its state; a state record that cannot be used is copied there and
// its message is returned unplanned (planned again: at-least-once).
func (s *Spool) Scan() ([]*Message, []error) {
	s.jmu.Lock()
	defer s.jmu.Unlock()
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, []error{fmt.Errorf("spool: %w", err)}
	}
	journal, err := s.readJournal()
	if err != nil {
		return nil, []error{fmt.Errorf("spool: reading the states journal: %w", err)}
	}
	var msgs []*Message
	var errs []error
	have := map[string]bool{}
	for _, e := range ents {
		if id, ok := strings.CutSuffix(e.Name(), ".msg"); ok && !strings.HasPrefix(id, ".") {
			have[id] = true
		}
	}
	live := map[string][]byte{}
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, ".tmp-"):
			os.Remove(filepath.Join(s.dir, name))
		case strings.HasSuffix(name, ".state"):
			id := strings.TrimSuffix(name, ".state")
			if !have[id] {
				os.Remove(filepath.Join(s.dir, name))
			} else {
				s.legacy[id] = true
			}
		case strings.HasSuffix(name, ".msg"):
			id := strings.TrimSuffix(name, ".msg")
			m, bad := s.load(id, journal[id])
			if bad.msg != "" {
				de := s.moveMessage(id, bad.msg, journal[id])
				if m != nil && de.Err == nil {
					de.Message = m
				}
				errs = append(errs, de)
				have[id] = false
				continue
			}
			if bad.state != "" {
				errs = append(errs, s.moveState(id, bad.state, journal[id]))
			} else if line := journal[id]; line != nil {
				live[id] = line
			}
			msgs = append(msgs, m)
		}
	}
	s.live, s.liveSize = live, 0
	for _, line := range live {
		s.liveSize += int64(len(line))
	}
	if err := s.compact(); err != nil {
		errs = append(errs, fmt.Errorf("spool: compacting the states journal: %w", err))
	}
	sort.Slice(msgs, func(i, j int) bool { return msgs[i].ID < msgs[j].ID })
	return msgs, errs
}

// damage says what is wrong with a spool entry: its message (it cannot be
// delivered) or only its state (it can be planned again).
type damage struct{ msg, state string }

// load reads id's envelope and its state: the journal's record, else a
// state file of an earlier version.
func (s *Spool) load(id string, rec []byte) (*Message, damage) {
	f, err := os.Open(s.msgPath(id))
	if err != nil {
		return nil, damage{msg: err.Error()}
	}
	defer f.Close()
	line, err := bufio.NewReaderSize(f, 4096).ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		line, err = readLongLine(f)
	}
	switch {
	case err == io.EOF:
		return nil, damage{msg: "truncated envelope (no end of line)"}
	case err != nil:
		return nil, damage{msg: "reading envelope: " + err.Error()}
	}
	m := &Message{Offset: int64(len(line))}
	if err := json.Unmarshal(line, &m.Envelope); err != nil {
		return nil, damage{msg: "bad envelope: " + err.Error()}
	}
	if m.ID != id {
		return nil, damage{msg: fmt.Sprintf("envelope names id %q", m.ID)}
	}
	if len(m.To) == 0 {
		return nil, damage{msg: "envelope names no recipient"}
	}
	st, bad := s.loadState(id, rec)
	if st == nil {
		return m, damage{state: bad}
	}
	if len(st.Copies) > 0 {
		m.State = st
	}
	if st.Size == 0 {
		return m, damage{}
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, damage{msg: err.Error()}
	}
	if size := fi.Size() - m.Offset; size != st.Size {
		return m, damage{msg: fmt.Sprintf("message is %d bytes, was %d when planned (truncated or overwritten)", size, st.Size)}
	}
	return m, damage{}
}

// loadState returns id's state from its journal record rec or a state file
// of an earlier version; nil when it has none. bad says why a state it has
// cannot be used.
func (s *Spool) loadState(id string, rec []byte) (st *State, bad string) {
	if rec != nil {
		var r record
		if err := json.Unmarshal(rec, &r); err != nil {
			return nil, "bad state record: " + err.Error()
		}
		st = r.State
	} else {
		b, err := os.ReadFile(s.statePath(id))
		if err != nil {
			return nil, ""
		}
		st = new(State)
		if err := json.Unmarshal(b, st); err != nil {
			return nil, "bad state file: " + err.Error()
		}
	}
	if err := st.check(); err != nil {
		return nil, "bad state: " + err.Error()
	}
	return st, ""
}

// check reports a state no queue could have written.
func (st *State) check() error {
	if st == nil {
		return errors.New("empty")
	}
	if st.Size < 0 {
		return fmt.Errorf("size %d", st.Size)
	}
	for i, c := range st.Copies {
		switch {
		case len(c.Recipients) == 0:
			return fmt.Errorf("copy %d has no recipient", i)
		case c.Status != Queued && c.Status != Deferred && c.Status != Sent && c.Status != Failed:
			return fmt.Errorf("copy %d has status %q", i, c.Status)
		}
	}
	return nil
}

// DamagedDir is the folder, under the spool directory, where damaged
// entries are moved.
const DamagedDir = "damaged"

// DamagedError reports a damaged spool entry and where it went.
type DamagedError struct {
	ID     string // the queue id (the file's name without .msg)
	Reason string // what is wrong with it
	// StateOnly is set when only its state was bad: the state went aside,
	// the message stays queued and is planned again.
	StateOnly bool
	Path      string // where the entry is now; "" when it could not be moved
	Err       error  // why it could not be moved
	// Message is the envelope and state of a message moved aside whose
	// envelope could still be read (its body is what is damaged), so
	// that its sender can be told; else nil. Offset means nothing.
	Message *Message
}

func (e *DamagedError) Error() string {
	what := "message"
	if e.StateOnly {
		what = "state"
	}
	if e.Err != nil {
		return fmt.Sprintf("spool: %s: damaged %s (%s), left in place: %v", e.ID, what, e.Reason, e.Err)
	}
	return fmt.Sprintf("spool: %s: damaged %s (%s), moved to %s", e.ID, what, e.Reason, e.Path)
}

func (e *DamagedError) Unwrap() error { return e.Err }

// MoveAside moves id's message (with its state) into DamagedDir, because
// of reason: the queue calls it when the message cannot be read back. Its
// state is forgotten. It returns where the message went.
func (s *Spool) MoveAside(id, reason string) *DamagedError {
	s.jmu.Lock()
	defer s.jmu.Unlock()
	rec := s.live[id]
	s.liveSize -= int64(len(rec))
	delete(s.live, id)
	return s.moveMessage(id, reason, rec)
}

// moveMessage moves ID.msg and its state into DamagedDir; rec is its
// journal record, written beside it. The caller holds jmu.
func (s *Spool) moveMessage(id, reason string, rec []byte) *DamagedError {
	e := &DamagedError{ID: id, Reason: reason}
	e.Path, e.Err = s.moveAside(id+".msg", nil)
	if e.Err != nil {
		return e
	}
	if rec != nil {
		s.moveAside(id+".state", rec)
	}
	if _, err := os.Lstat(s.statePath(id)); err == nil {
		s.moveAside(id+".state", nil)
	}
	delete(s.legacy, id)
	s.syncDirs()
	return e
}

// moveState puts id's unusable state aside: rec, its journal record, or
// else its state file. The caller holds jmu.
func (s *Spool) moveState(id, reason string, rec []byte) *DamagedError {
	e := &DamagedError{ID: id, Reason: reason, StateOnly: true}
	e.Path, e.Err = s.moveAside(id+".state", rec)
	if rec == nil && e.Err == nil {
		delete(s.legacy, id)
	}
	s.syncDirs()
	return e
}

// moveAside moves the spool file name into DamagedDir under a name not
// taken yet, or writes data there under that name when data is not nil.
func (s *Spool) moveAside(name string, data []byte) (string, error) {
	dir := filepath.Join(s.dir, DamagedDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	dst := filepath.Join(dir, name)
	for i := 1; ; i++ {
		if _, err := os.Lstat(dst); errors.Is(err, os.ErrNotExist) {
			break
		}
		dst = filepath.Join(dir, fmt.Sprintf("%s.%d", name, i))
	}
	if data != nil {
		return dst, os.WriteFile(dst, data, 0o600)
	}
	return dst, os.Rename(filepath.Join(s.dir, name), dst)
}

// syncDirs makes moves into DamagedDir durable (a move lost in a crash is
// only made again by the next Scan).
func (s *Spool) syncDirs() {
	if s.opt.NoFsync {
		return
	}
	syncDir(filepath.Join(s.dir, DamagedDir))
	s.dirf.Sync()
}

// Damaged returns how many spool entries (queue ids) are in DamagedDir:
// damaged messages and states waiting for someone to look at them. A
// message moved aside with its state counts once.
func (s *Spool) Damaged() (int, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, DamagedDir))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	ids := map[string]bool{} // ID.msg, ID.state, ID.msg.1 …: one entry per id
	for _, e := range ents {
		id, _, _ := strings.Cut(e.Name(), ".")
		ids[id] = true
	}
	return len(ids), err
}

func readLongLine(f *os.File) ([]byte, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	line, err := bufio.NewReaderSize(f, 1<<20).ReadSlice('\n')
	return bytes.Clone(line), err
}
