package sentfolder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"pixelrelay/metrics"
)

// MESSAGE sent_folder values (CONTRACT.md); a failure is "failed: REASON".
const (
	StatusPending  = "pending"
	StatusReplaced = "replaced"
	StatusOff      = "off"
	FailedPrefix   = "failed: "
)

// Job is one message's Sent folder work, as kept on disk (ID.json beside
// ID.eml, the message as submitted).
type Job struct {
	QueueID   string    `json:"queue_id"`
	Account   string    `json:"account"`
	MessageID string    `json:"message_id"`
	Date      time.Time `json:"date"`  // the appended copy's internal date
	Marks     []string  `json:"marks"` // the tracker's URL prefixes when the copies were made
	// Expected is how many copies were accepted upstream: a provider
	// files one in Sent for each.
	Expected int `json:"expected"`
	// Records are the ids of the message's copy records, whose
	// sent_folder Options.Status sets.
	Records   []string  `json:"records,omitempty"`
	Found     int       `json:"found,omitempty"`    // relayed copies removed from Sent so far
	Appended  bool      `json:"appended,omitempty"` // the clean copy went in
	Looks     int       `json:"looks,omitempty"`    // runs that found fewer than Expected
	Attempts  int       `json:"attempts,omitempty"` // failed runs
	Created   time.Time `json:"created"`
	Next      time.Time `json:"next,omitzero"`
	LastError string    `json:"last_error,omitempty"`
}

// Schedule is when jobs run.
type Schedule struct {
	// MinRetry is the first delay after a failure, doubled per attempt
	// up to MaxRetry; a job is given up MaxAge after it was made.
	MinRetry, MaxRetry, MaxAge time.Duration
	// Looks are the delays of the runs after one that found fewer
	// relayed copies in Sent than were sent (the provider files them
	// asynchronously); after the last the job ends.
	Looks []time.Duration
}

// DefaultSchedule retries for a day; looks again after 30s, 1m, 2m, 5m.
var DefaultSchedule = Schedule{MinRetry: time.Minute, MaxRetry: time.Hour, MaxAge: 24 * time.Hour,
	Looks: []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute}}

// Options configures Jobs.
type Options struct {
	Dir string // where jobs are kept (data_dir/sentfolder)
	// Account returns the current settings of the named account, and
	// false when its Sent folder is off now (or it is gone).
	Account func(name string) (Account, bool)
	// Status reports a job's sent_folder (pending, replaced, failed:
	// REASON, off) for its message's copy records.
	Status   func(job *Job, status string)
	Schedule func() Schedule // nil: DefaultSchedule
	Log      *slog.Logger
	// Replace does the IMAP work (nil: Replace); tests swap it.
	Replace func(context.Context, Account, Message) (Result, error)
}

// Jobs runs the Sent folder jobs in the background, at most two at once.
type Jobs struct {
	opt    Options
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{}
	wg     sync.WaitGroup

	mu      sync.Mutex
	pending map[string]*time.Timer
	closed  bool

	replaced, failed, retried atomic.Uint64
}

// Open loads the jobs kept in opt.Dir and schedules them.
func Open(opt Options) (*Jobs, error) {
	if err := os.MkdirAll(opt.Dir, 0o700); err != nil {
		return nil, err
	}
	if opt.Replace == nil {
		opt.Replace = Replace
	}
	if opt.Schedule == nil {
		opt.Schedule = func() Schedule { return DefaultSchedule }
	}
	if opt.Status == nil {
		opt.Status = func(*Job, string) {}
	}
	log := opt.Log
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	j := &Jobs{opt: opt, log: log.With("component", "sentfolder"), ctx: ctx, cancel: cancel,
		sem: make(chan struct{}, 2), pending: map[string]*time.Timer{}}
	if err := j.resume(); err != nil {
		cancel()
		return nil, err
	}
	return j, nil
}

// resume schedules every complete job found; a message without its job
// file was never handed over and is removed.
func (j *Jobs) resume() error {
	ents, err := os.ReadDir(j.opt.Dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, ".tmp-"):
			os.Remove(filepath.Join(j.opt.Dir, name))
		case strings.HasSuffix(name, ".eml"):
			id := strings.TrimSuffix(name, ".eml")
			if _, err := os.Stat(j.path(id, ".json")); errors.Is(err, os.ErrNotExist) {
				os.Remove(filepath.Join(j.opt.Dir, name))
			}
		case strings.HasSuffix(name, ".json"):
			job, err := j.load(strings.TrimSuffix(name, ".json"))
			if err != nil {
				j.log.Error("sent folder job unreadable; dropped", "file", name, "err", err)
				j.remove(strings.TrimSuffix(name, ".json"))
				continue
			}
			j.schedule(job, job.Next)
		}
	}
	return nil
}

func (j *Jobs) path(id, ext string) string { return filepath.Join(j.opt.Dir, id+ext) }

func (j *Jobs) load(id string) (*Job, error) {
	b, err := os.ReadFile(j.path(id, ".json"))
	if err != nil {
		return nil, err
	}
	job := &Job{}
	if err := json.Unmarshal(b, job); err != nil {
		return nil, err
	}
	if job.QueueID != id {
		return nil, fmt.Errorf("queue id %q in %s.json", job.QueueID, id)
	}
	if _, err := os.Stat(j.path(id, ".eml")); err != nil {
		return nil, fmt.Errorf("its message: %w", err)
	}
	return job, nil
}

// Add keeps raw (the message as submitted) and job durably, then
// schedules the job's first run at once. When Add returns nil the queue
// may delete its own copy of the message.
func (j *Jobs) Add(job Job, raw []byte) error {
	if job.Created.IsZero() {
		job.Created = time.Now()
	}
	if err := writeFile(j.opt.Dir, j.path(job.QueueID, ".eml"), raw); err != nil {
		return err
	}
	if err := j.save(&job); err != nil {
		os.Remove(j.path(job.QueueID, ".eml"))
		return err
	}
	if err := syncDir(j.opt.Dir); err != nil {
		return err
	}
	j.opt.Status(&job, StatusPending)
	j.log.Info("sent folder job added", "queue_id", job.QueueID, "account", job.Account,
		"message_id", job.MessageID, "copies", job.Expected)
	j.schedule(&job, time.Time{})
	return nil
}

func (j *Jobs) save(job *Job) error {
	b, err := json.Marshal(job)
	if err != nil {
		return err
	}
	return writeFile(j.opt.Dir, j.path(job.QueueID, ".json"), b)
}

// writeFile writes data to name through a fsynced temporary file.
func writeFile(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (j *Jobs) remove(id string) {
	os.Remove(j.path(id, ".json"))
	os.Remove(j.path(id, ".eml"))
}

// schedule runs job at at (now when zero or past).
func (j *Jobs) schedule(job *Job, at time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return
	}
	j.wg.Add(1)
	j.pending[job.QueueID] = time.AfterFunc(max(0, time.Until(at)), func() {
		defer j.wg.Done()
		select {
		case j.sem <- struct{}{}:
		case <-j.ctx.Done():
			return
		}
		defer func() { <-j.sem }()
		if j.ctx.Err() == nil {
			j.run(job)
		}
	})
}

// Counts are the jobs' figures for metrics and status.
func (j *Jobs) Counts() metrics.SentFolderCounts {
	j.mu.Lock()
	n := len(j.pending)
	j.mu.Unlock()
	return metrics.SentFolderCounts{Replaced: j.replaced.Load(), Failed: j.failed.Load(),
		Retried: j.retried.Load(), Pending: n}
}

// Close stops the jobs (a run in progress is cancelled; every job stays on
// disk and resumes at the next Open).
func (j *Jobs) Close() {
	j.mu.Lock()
	j.closed = true
	for id, t := range j.pending {
		if t.Stop() {
			j.wg.Done()
		}
		delete(j.pending, id)
	}
	j.mu.Unlock()
	j.cancel()
	j.wg.Wait()
}
