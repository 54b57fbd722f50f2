package cli

import (
	"errors"
	"log/slog"
	"path/filepath"

	"pixelrelay/config"
	"pixelrelay/metrics"
	"pixelrelay/relay/queue"
	"pixelrelay/relay/sentfolder"
	"pixelrelay/tracker/httpd"
)

// sentFolderRecorder is the part of the store that keeps MESSAGE's
// sent_folder.
type sentFolderRecorder interface {
	SetSentFolder(ids []string, status string) error
}

// sentFolder wires the Sent folder jobs between the queue (which hands
// finished messages over) and the store (which shows their status).
type sentFolder struct {
	jobs    *sentfolder.Jobs
	current func() *config.Config
	rec     sentFolderRecorder // nil: the store keeps no sent_folder
	log     *slog.Logger
}

// startSentFolder resumes the jobs kept in data_dir/sentfolder.
func startSentFolder(dataDir string, current func() *config.Config, st any, met *metrics.Metrics, log *slog.Logger) (*sentFolder, error) {
	s := &sentFolder{current: current, log: log}
	s.rec, _ = st.(sentFolderRecorder)
	jobs, err := sentfolder.Open(sentfolder.Options{
		Dir:      filepath.Join(dataDir, "sentfolder"),
		Account:  func(name string) (sentfolder.Account, bool) { return sentfolder.FromConfig(current(), name) },
		Status:   func(j *sentfolder.Job, status string) { s.status(j.Records, status) },
		Schedule: func() sentfolder.Schedule { return sentfolder.ScheduleFromConfig(current()) },
		Log:      log,
	})
	if err != nil {
		return nil, err
	}
	s.jobs = jobs
	met.WatchSentFolder(jobs.Counts)
	return s, nil
}

func (s *sentFolder) status(ids []string, status string) {
	if s.rec == nil || len(ids) == 0 {
		return
	}
	if err := s.rec.SetSentFolder(ids, status); err != nil {
		s.log.Error("recording sent_folder", "status", status, "err", err)
	}
}

// on is queue.Options.SentFolderOn.
func (s *sentFolder) on(account, from string) bool {
	cfg := s.current()
	if account == "" {
		account = cfg.Route(from, "").Name
	}
	_, on := sentfolder.FromConfig(cfg, account)
	return on
}

// handOver is queue.Options.SentFolder: a finished message whose account
// has the Sent folder on becomes a job (kept durably before the queue
// deletes the message); one without a tracked copy needs none.
func (s *sentFolder) handOver(f queue.Finished) error {
	cfg := s.current()
	name := f.Account
	if name == "" {
		name = cfg.Route(f.From, "").Name
	}
	if !s.on(name, f.From) {
		// Off now; its records may say pending from when it was on.
		s.status(f.Records, sentfolder.StatusOff)
		return nil
	}
	if !f.Tracked {
		s.status(f.Records, sentfolder.StatusOff)
		return nil
	}
	if f.Raw == nil { // turned on since the queue asked: the queue tries again
		return errors.New("the Sent folder was turned on meanwhile; the message is read again")
	}
	job := sentfolder.Job{QueueID: f.QueueID, Account: name, MessageID: f.MessageID,
		Date: sentfolder.DateOf(f.Raw, f.Received), Marks: sentfolder.Marks(cfg.Tracking.BaseURL),
		Expected: f.Sent, Records: f.Records}
	return s.jobs.Add(job, sentfolder.Submitted(f.Raw, f.MessageID))
}

// counts is httpd.Options.SentFolder.
func (s *sentFolder) counts() httpd.SentFolderCounts {
	c := s.jobs.Counts()
	return httpd.SentFolderCounts{Pending: c.Pending, Replaced: c.Replaced, Failed: c.Failed}
}

// Close stops the jobs; they resume at the next start.
func (s *sentFolder) Close() { s.jobs.Close() }
