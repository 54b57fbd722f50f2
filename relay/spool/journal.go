package spool

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// journalName is the states journal under the spool directory.
const journalName = "states.log"

// compactAt is the journal size from which WriteState rewrites it with the
// live records only (when they are less than half of it).
var compactAt int64 = 16 << 20

// record is one line of the journal.
type record struct {
	ID    string `json:"id"`
	State *State `json:"state"`
}

// WriteState records id's state: one line appended to the states journal
// (a single write; no file created or renamed per message). It is not
// fsynced: a process crash keeps it (the page cache survives), while a state
// lost in a power failure is recomputed from the message, which then may be
// delivered twice but is never lost. A torn last line is ignored by Scan
// (the previous state of that message counts). The journal is rewritten
// with the live states only when it has grown large.
//
// A failed append (a full disk) is cut off again, so that it cannot spoil
// the next record; when even that fails, the journal is torn: each record
// starts on a new line (the fragment is skipped by Scan) and nothing is cut
// off again (its true size is unknown) until the journal is rewritten.
func (s *Spool) WriteState(id string, st *State) error {
	line, err := json.Marshal(record{ID: id, State: st})
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	line = append(line, '\n')
	s.jmu.Lock()
	defer s.jmu.Unlock()
	out := line
	if s.jtorn {
		out = append([]byte{'\n'}, line...)
	}
	if err := s.appendState(out); err != nil {
		if !s.jtorn {
			s.jtorn = s.journal.Truncate(s.jsize) != nil
		}
		return fmt.Errorf("spool: writing state: %w", err)
	}
	s.jsize += int64(len(out))
	s.liveSize += int64(len(line)) - int64(len(s.live[id]))
	s.live[id] = line
	if s.jsize >= compactAt && s.liveSize < s.jsize/2 {
		if err := s.compact(); err != nil {
			return fmt.Errorf("spool: compacting the states journal: %w", err)
		}
	}
	return nil
}

// appendState appends line to the journal. The caller holds jmu.
func (s *Spool) appendState(line []byte) error {
	if err := s.fault(StepState); err != nil {
		s.journal.Write(line[:len(line)/2])
		return &os.PathError{Op: "write", Path: filepath.Join(s.dir, journalName), Err: err}
	}
	_, err := s.journal.Write(line)
	var pe *os.PathError
	if errors.As(err, &pe) {
		pe.Path = filepath.Join(s.dir, journalName) // not the name it was compacted under
	}
	return err
}

// compact rewrites the journal with the live records (temporary file and
// rename). The new journal is open before it replaces the old one, so a
// failure leaves the old one in use. The caller holds jmu.
func (s *Spool) compact() error {
	ids := make([]string, 0, len(s.live))
	for id := range s.live {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var buf bytes.Buffer
	for _, id := range ids {
		buf.Write(s.live[id])
	}
	tmp := filepath.Join(s.dir, ".tmp-"+journalName)
	j, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if err = s.fault(StepCompact); err == nil {
		_, err = j.Write(buf.Bytes())
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.dir, journalName))
	}
	if err != nil {
		j.Close()
		os.Remove(tmp)
		return err
	}
	s.journal.Close()
	s.journal, s.jsize, s.liveSize, s.jtorn = j, int64(buf.Len()), int64(buf.Len()), false
	return nil
}

// Delete removes a finished message, and forgets its state (the journal
// keeps the line until it is compacted or no state is left; Scan skips
// states without their message).
func (s *Spool) Delete(id string) error {
	if err := os.Remove(s.msgPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("spool: %w", err)
	}
	s.jmu.Lock()
	s.liveSize -= int64(len(s.live[id]))
	delete(s.live, id)
	legacy := s.legacy[id]
	delete(s.legacy, id)
	if len(s.live) == 0 && s.jsize > 0 && s.journal.Truncate(0) == nil {
		s.jsize, s.liveSize, s.jtorn = 0, 0, false // no state left: an idle spool is empty
	}
	s.jmu.Unlock()
	if legacy {
		if err := os.Remove(s.statePath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("spool: %w", err)
		}
	}
	return nil
}

// readJournal returns the last complete record of every id in the journal.
func (s *Spool) readJournal() (map[string][]byte, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, journalName))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	out := map[string][]byte{}
	for len(b) > 0 {
		line := b
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break // a torn last record
		}
		line, b = b[:i+1], b[i+1:]
		var r struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(line, &r) == nil && r.ID != "" {
			out[r.ID] = line
		}
	}
	return out, nil
}
