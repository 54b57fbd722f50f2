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
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
