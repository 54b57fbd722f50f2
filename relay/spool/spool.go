// Package spool is pixelrelay's durable on-disk spool: one file per accepted
// message (its envelope on the first line, then the raw message) and, once the
// queue has planned the copies, a small state file beside it.
//
// Layout under the spool directory:
//
//	ID.msg      JSON envelope, "\n", raw message bytes (written once, fsynced)
//	states.log  the States, one JSON record per line, appended (see WriteState)
//	ID.state    a State as earlier versions wrote it (read, then removed)
//	.tmp-*      files being written; removed by Scan
//	damaged/    entries Scan or the queue found damaged, moved aside (never
//	            deleted: they may be someone's mail); see MoveAside
//
// Put writes the message to a temporary file, fsyncs it, renames it into
// place and then waits for a directory fsync that it shares with every other
// Put that renamed meanwhile (group commit): each message costs one file
// fsync and a share of one directory fsync, and Put still returns only once
// both the data and the directory entry are on disk.
package spool

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Copy states, as record's Status constants.
const (
	Queued   = "queued"
	Deferred = "deferred"
	Sent     = "sent"
	Failed   = "failed"
)

// Envelope is what the SMTP transaction said about a message. It is written
// with the message and never changes.
type Envelope struct {
	ID       string    `json:"id"`
	From     string    `json:"from"` // "" for the null sender
	To       []string  `json:"to"`
	Received time.Time `json:"received"`
	// MessageID is the Message-ID the copies get when the message has none.
	MessageID string `json:"message_id"`
	// DSN marks a delivery status notification made by the queue itself:
	// never tracked, and its own failures never bounce.
	DSN bool `json:"dsn,omitempty"`
	// Account names the upstream account chosen for the message when it
	// was spooled (config.Route); "" in messages spooled before accounts
	// existed, which is the default one.
	Account string `json:"account,omitempty"`
}

// Copy is one copy of a message on its way upstream: one tracked recipient,
// or all the untracked ones together.
type Copy struct {
	Recipients []string  `json:"rcpts"`
	TrackingID string    `json:"tid,omitempty"`
	Token      string    `json:"token,omitempty"`
	Status     string    `json:"status"`
	Attempts   int       `json:"attempts,omitempty"`
	Next       time.Time `json:"next,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
	SentAt     time.Time `json:"sent_at,omitzero"`
}

// Final reports whether the copy needs no more attempts.
func (c *Copy) Final() bool { return c.Status == Sent || c.Status == Failed }

// Failure is one recipient that will not get the message, for the bounce.
type Failure struct {
	Recipient  string    `json:"rcpt"`
	Status     string    `json:"status"`     // enhanced status code, "5.1.1"
	Diagnostic string    `json:"diagnostic"` // the upstream's reply or our reason
	At         time.Time `json:"at"`
	Bounced    bool      `json:"bounced,omitempty"`
}

// State is the queue's plan and progress for one message. It can be
// recomputed from the message when lost (at the cost of new tracking ids
// and a possible duplicate delivery), so it is not fsynced.
type State struct {
	Subject   string `json:"subject,omitempty"`
	MessageID string `json:"message_id,omitempty"` // as the copies carry it
	// HTMLParts is how many parts of a tracked copy get a pixel
	// (rewrite.Info.HTMLParts); 0 when unknown.
	HTMLParts int `json:"html_parts,omitempty"`
	// Links is how many links of the message its tracked copies count
	// clicks on (len(rewrite.Info.Links), recorded with the copies); 0:
	// their links stay as they are.
	Links int `json:"links,omitempty"`
	// Size is the raw message's length in bytes when it was planned (0:
	// unknown). A file found shorter is damaged (truncated).
	Size     int64     `json:"size,omitempty"`
	Copies   []Copy    `json:"copies"`
	Failures []Failure `json:"failures,omitempty"`
}

// Message is one spooled message as Scan finds it.
type Message struct {
	Envelope
	// Offset is where the raw message starts in the .msg file.
	Offset int64
	// State is nil when the message was never planned (or its state file
	// was lost or damaged).
	State *State
}

// Options tunes a Spool.
type Options struct {
	// NoFsync skips every fsync. BENCHMARK ONLY: it measures what the disk
	// costs; with it a crash can lose mail that was acknowledged.
	NoFsync bool
	// OnSync, when set, is called after each fsync with "file" or "dir"
	// (tests count them).
	OnSync func(kind string)
	// Fault, when set, runs before each step that writes to the disk, with
	// the step's name (StepWrite, StepFsync, ...). A non-nil error fails
	// the step as the system call would have: TESTS ONLY, to inject a full
	// disk (syscall.ENOSPC) at a chosen point. A failed StepWrite or
	// StepState first writes half of its bytes, as a disk filling up part
	// way through does.
	Fault func(step string) error
}

// The steps Options.Fault is asked about.
const (
	StepWrite   = "write"   // message data into its temporary file
	StepFsync   = "fsync"   // the message file's fsync
	StepRename  = "rename"  // the temporary file renamed to ID.msg
	StepDirSync = "dirsync" // the spool directory's fsync
	StepState   = "state"   // a record appended to the states journal
	StepCompact = "compact" // the states journal rewritten
)

// fault runs Options.Fault for step.
func (s *Spool) fault(step string) error {
	if s.opt.Fault == nil {
		return nil
	}
	return s.opt.Fault(step)
}

// Spool is an open spool directory. Safe for concurrent use.
type Spool struct {
	dir  string
	opt  Options
	dirf *os.File

	jmu      sync.Mutex
	journal  *os.File          // states.log, append only
	jsize    int64             // its size
	jtorn    bool              // a failed append left a fragment: jsize is short of the true size
	live     map[string][]byte // id -> its last record in the journal
	liveSize int64             // bytes of the live records
	legacy   map[string]bool   // ids with an ID.state file of an earlier version

	commits chan chan error
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

// ErrClosed is returned by Put after Close.
var ErrClosed = errors.New("spool: closed")

// Open opens (creating it 0700 if needed) the spool directory and starts the
// group committer.
func Open(dir string, opt Options) (*Spool, error) {
	_, statErr := os.Stat(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if errors.Is(statErr, os.ErrNotExist) && !opt.NoFsync {
		// A new spool directory: make its own entry durable once.
		if err := syncDir(filepath.Dir(dir)); err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	j, err := os.OpenFile(filepath.Join(dir, journalName), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	fi, err := j.Stat()
	if err != nil {
		f.Close()
		j.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{
		dir:     dir,
		opt:     opt,
		dirf:    f,
		journal: j,
		jsize:   fi.Size(),
		live:    map[string][]byte{},
		legacy:  map[string]bool{},
		commits: make(chan chan error, 1024),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go s.committer()
	return s, nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// Dir returns the spool directory.
func (s *Spool) Dir() string { return s.dir }

// Close stops the committer. Pending Puts get ErrClosed.
func (s *Spool) Close() error {
	s.once.Do(func() { close(s.stop) })
	<-s.done
	s.jmu.Lock()
	s.journal.Close()
	s.jmu.Unlock()
	return s.dirf.Close()
}

// committer fsyncs the directory once for every batch of renames that
// arrived while the previous fsync ran.
func (s *Spool) committer() {
	defer close(s.done)
	batch := make([]chan error, 0, 64)
	for {
		select {
		case <-s.stop:
			s.fail(ErrClosed)
			return
		case c := <-s.commits:
			batch = append(batch[:0], c)
		}
		batch = drain(s.commits, batch)
		err := s.sync(s.dirf, "dir")
		for _, c := range batch {
			c <- err
		}
	}
}

func drain(ch chan chan error, batch []chan error) []chan error {
	for {
		select {
		case c := <-ch:
			batch = append(batch, c)
		default:
			return batch
		}
	}
}

func (s *Spool) fail(err error) {
	for _, c := range drain(s.commits, nil) {
		c <- err
	}
}

func (s *Spool) sync(f *os.File, kind string) error {
	step := StepFsync
	if kind == "dir" {
		step = StepDirSync
	}
	if err := s.fault(step); err != nil {
		return &os.PathError{Op: "sync", Path: f.Name(), Err: err}
	}
	if s.opt.NoFsync {
		return nil
	}
	err := f.Sync()
	if s.opt.OnSync != nil {
		s.opt.OnSync(kind)
	}
	return err
}

// commitDir waits for a directory fsync that started after the caller's
// rename.
func (s *Spool) commitDir() error {
	c := make(chan error, 1)
	select {
	case s.commits <- c:
	case <-s.stop:
		return ErrClosed
	}
	select {
	case err := <-c:
		return err
	case <-s.done:
		select {
		case err := <-c:
			return err
		default:
			return ErrClosed
		}
	}
}

func (s *Spool) msgPath(id string) string   { return filepath.Join(s.dir, id+".msg") }
func (s *Spool) statePath(id string) string { return filepath.Join(s.dir, id+".state") }

// Put writes the envelope and the message read from body durably. It
// returns the offset of the message in the file (for Open) once the data and
// the directory entry are fsynced. On error nothing was spooled.
func (s *Spool) Put(env *Envelope, body io.Reader) (offset int64, err error) {
	head, err := json.Marshal(env)
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	head = append(head, '\n')
	tmp, err := createFile(filepath.Join(s.dir, ".tmp-"+env.ID))
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	var w io.Writer = tmp
	if s.opt.Fault != nil {
		w = &faultWriter{w: tmp, s: s}
	}
	if err = writeAll(w, head, body); err != nil {
		return 0, fmt.Errorf("spool: writing %s: %w", env.ID, err)
	}
	if err = s.sync(tmp, "file"); err != nil {
		return 0, fmt.Errorf("spool: fsync %s: %w", env.ID, err)
	}
	if err = tmp.Close(); err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	if err = s.rename(tmp.Name(), s.msgPath(env.ID)); err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	if err = s.commitDir(); err != nil {
		os.Remove(s.msgPath(env.ID))
		return 0, fmt.Errorf("spool: fsync dir: %w", err)
	}
	return int64(len(head)), nil
}

func (s *Spool) rename(from, to string) error {
	if err := s.fault(StepRename); err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return os.Rename(from, to)
}

// faultWriter runs Options.Fault before every write of a message file.
type faultWriter struct {
	w io.Writer
	s *Spool
}

func (f *faultWriter) Write(p []byte) (int, error) {
	if err := f.s.fault(StepWrite); err != nil {
		n, _ := f.w.Write(p[:len(p)/2])
		return n, &os.PathError{Op: "write", Path: "message", Err: err}
	}
	return f.w.Write(p)
}

// createFile creates a new file (0600, failing if it exists) for writing.
// Unlike os.OpenFile it does not try to register the file with the network
// poller (which refuses regular files): one system call instead of six.
func createFile(name string) (*os.File, error) {
	fd, err := syscall.Open(name, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_CLOEXEC, 0o600)
	for err == syscall.EINTR {
		fd, err = syscall.Open(name, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_CLOEXEC, 0o600)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// writeAll writes head then body with one pooled buffer, so a small message
// is written with a single write call.
func writeAll(f io.Writer, head []byte, body io.Reader) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	n := copy(buf, head)
	if n < len(head) {
		if _, err := f.Write(head); err != nil {
			return err
		}
		n = 0
	}
	for {
		m, rerr := io.ReadFull(body, buf[n:])
		n += m
		if n == len(buf) || rerr != nil {
			if _, err := f.Write(buf[:n]); err != nil {
				return err
			}
			n = 0
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// Body is an open spooled message, positioned at its first byte.
type Body struct {
	*bufio.Reader
	f   *os.File
	off int64
}

// Size returns the size of the raw message in bytes.
func (b *Body) Size() (int64, error) {
	fi, err := b.f.Stat()
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	return fi.Size() - b.off, nil
}

// Close closes the file. The Body must not be used after.
func (b *Body) Close() error {
	if b.Reader != nil {
		b.Reader.Reset(nil)
		readers.Put(b.Reader)
		b.Reader = nil
	}
	return b.f.Close()
}

var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 32<<10) }}

// Open opens the raw message of id, which starts at offset (from Put or
// Scan), for reading. Every copy reads it through its own Body.
func (s *Spool) Open(id string, offset int64) (*Body, error) {
	f, err := os.Open(s.msgPath(id))
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	br := readers.Get().(*bufio.Reader)
	br.Reset(io.NewSectionReader(f, offset, 1<<62))
	return &Body{Reader: br, f: f, off: offset}, nil
}

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

// NewID returns a new queue id: 16 characters of lowercase base32 (sortable:
// the first 10 are the time in milliseconds, then a per-process sequence and
// random bits).
func NewID(now time.Time) string {
	idMu.Lock()
	ms := uint64(now.UnixMilli())
	switch {
	case ms > idLast:
		idLast, idSeq = ms, 0
	case idSeq == 0xffff: // 65536 ids in one millisecond: borrow the next
		idLast, idSeq = idLast+1, 0
	default:
		idSeq++
	}
	ms = idLast
	seq := idSeq
	idMu.Unlock()
	var r [2]byte
	rand.Read(r[:])
	var b [10]byte
	binary.BigEndian.PutUint64(b[:8], ms<<16|uint64(seq))
	// 64 bits of time+seq, 16 random bits: 80 bits, 16 base32 characters.
	b[8], b[9] = r[0], r[1]
	return strings.ToLower(idEnc.EncodeToString(b[:]))
}

var (
	idMu   sync.Mutex
	idLast uint64
	idSeq  uint32
	idEnc  = base32.HexEncoding.WithPadding(base32.NoPadding)
)
