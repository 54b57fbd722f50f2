package sentfolder

import (
	"context"
	"errors"
	"os"
	"time"
)

// runTimeout bounds one run (sign-in, searches, append, removals).
const runTimeout = 5 * time.Minute

// run does one attempt of job and decides what comes next: the end
// (replaced, failed, off), another look, or a retry.
func (j *Jobs) run(job *Job) {
	acct, on := j.opt.Account(job.Account)
	if !on {
		j.end(job, StatusOff, "sent folder is off for the account now")
		return
	}
	raw, err := os.ReadFile(j.path(job.QueueID, ".eml"))
	if err != nil {
		j.end(job, FailedPrefix+"the message is gone: "+err.Error(), "")
		return
	}
	ctx, cancel := context.WithTimeout(j.ctx, runTimeout)
	res, err := j.opt.Replace(ctx, acct, Message{MessageID: job.MessageID, Raw: raw, Date: job.Date, Marks: job.Marks})
	cancel()
	if j.ctx.Err() != nil {
		return // closing: the job resumes at the next start
	}
	if err != nil {
		j.failedRun(job, err)
		return
	}
	job.Found += res.Found
	job.Appended = job.Appended || res.Appended
	job.LastError = ""
	sched := j.opt.Schedule()
	if job.Found >= job.Expected || job.Looks >= len(sched.Looks) {
		j.log.Info("sent folder replaced", "queue_id", job.QueueID, "account", job.Account, "mailbox", res.Mailbox,
			"removed", job.Found, "expected", job.Expected, "appended", job.Appended)
		j.end(job, StatusReplaced, "")
		return
	}
	delay := sched.Looks[job.Looks]
	job.Looks++
	j.log.Info("sent folder: not every copy filed yet; looking again", "queue_id", job.QueueID,
		"found", job.Found, "expected", job.Expected, "in", delay)
	j.again(job, time.Now().Add(delay))
}

// failedRun retries job with a growing delay, or gives it up once its
// next attempt would come after the schedule's MaxAge (but always tries
// twice).
func (j *Jobs) failedRun(job *Job, err error) {
	reason := err.Error()
	if errors.Is(err, context.DeadlineExceeded) {
		reason = "timed out after " + runTimeout.String()
	}
	job.Attempts++
	job.LastError = reason
	sched := j.opt.Schedule()
	next := time.Now().Add(backoff(job.Attempts, sched.MinRetry, sched.MaxRetry))
	if job.Attempts > 1 && next.Sub(job.Created) > sched.MaxAge { // one retry at least
		j.log.Warn("sent folder job failed; giving up", "queue_id", job.QueueID, "account", job.Account,
			"attempts", job.Attempts, "err", reason)
		j.failed.Add(1)
		j.end(job, FailedPrefix+reason, "")
		return
	}
	j.retried.Add(1)
	j.log.Warn("sent folder job failed; will retry", "queue_id", job.QueueID, "account", job.Account,
		"attempts", job.Attempts, "next", next.UTC().Format(time.RFC3339), "err", reason)
	j.again(job, next)
}

// again saves job and schedules it at next.
func (j *Jobs) again(job *Job, next time.Time) {
	job.Next = next
	if err := j.save(job); err != nil {
		j.log.Error("saving sent folder job", "queue_id", job.QueueID, "err", err)
	}
	j.schedule(job, next)
}

// end reports job's final status and deletes it with its message.
func (j *Jobs) end(job *Job, status, why string) {
	if status == StatusReplaced {
		j.replaced.Add(1)
	}
	if why != "" {
		j.log.Info("sent folder job ended", "queue_id", job.QueueID, "status", status, "why", why)
	}
	j.opt.Status(job, status)
	j.remove(job.QueueID)
	j.mu.Lock()
	delete(j.pending, job.QueueID)
	j.mu.Unlock()
}

// backoff is first doubled per attempt after the first, at most most.
func backoff(attempts int, first, most time.Duration) time.Duration {
	d := first
	for i := 1; i < attempts && d < most; i++ {
		d *= 2
	}
	return min(d, most)
}
