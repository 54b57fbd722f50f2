package queue

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/emersion/go-smtp"

	"pixelrelay/relay"
	"pixelrelay/relay/rewrite"
	"pixelrelay/relay/spool"
	"pixelrelay/tracker/record"
)

// dispatch starts deliveries of due copies, never more at once than
// each account's upstream.connections (read again each time).
func (q *Queue) dispatch() {
	defer close(q.stopped)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := q.startDue()
		timer.Reset(wait)
		select {
		case <-q.stop:
			return
		case <-q.wake:
		case <-timer.C:
		}
	}
}

// startDue starts what is due and returns how long to sleep.
func (q *Queue) startDue() time.Duration {
	cfg := q.cfg()
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.startLanes(cfg, q.opt.Now())
}

// attempt is what one delivery needs, copied under the lock.
type attempt struct {
	account string // the account whose upstream takes it
	rcpts   []string
	token   string
	links   int           // the message's links whose clicks are counted (spool.State.Links)
	took    time.Duration // how long the upstream took (set after send)
}

func snapshot(it *item) attempt {
	return attempt{account: it.acct, rcpts: append([]string(nil), it.c.Recipients...), token: it.c.Token, links: it.m.st.Links}
}

// deliver sends one copy and records the outcome.
func (q *Queue) deliver(it *item, a attempt) {
	defer q.flight.Done()
	start := time.Now()
	err := q.send(it.m, a)
	a.took = time.Since(start)
	q.result(it, a, err)
	q.wakeUp()
}

// errAborted ends the rewrite of a copy whose upstream stopped reading.
var errAborted = errors.New("queue: delivery aborted")

// send delivers one copy. A message under maxCached is read once into
// memory, shared by its copies in flight (see body), and each copy is
// rewritten into a pooled buffer before it goes upstream. A bigger one is
// streamed from its spool file through rewrite.Rewrite and a pipe, never
// whole in memory.
func (q *Queue) send(m *message, a attempt) error {
	up := q.opt.Upstream(a.account)
	if up == nil {
		return &relay.DeliveryError{Class: relay.Setup, Stage: "connect", Err: errors.New("no upstream configured")}
	}
	baseURL := q.cfg().Tracking.BaseURL
	opt := rewrite.Options{MessageID: m.env.MessageID}
	var links []string
	if a.token != "" {
		opt.PixelURL = pixelURL(baseURL, a.token)
		links = q.linkTokens(m, a)
		opt.ClickURL = clickURLs(baseURL, links)
	}
	data, body, err := q.body(m)
	if err != nil {
		return err
	}
	if data != nil {
		defer q.release(m)
		out := getBuf(len(data) + len(data)/8 + 512)
		defer putBuf(out)
		if t := q.template(m, data, baseURL, opt, a.token, links); t != nil && t.write(out, a.token, links) {
			return up.Deliver(q.ctx, m.env.From, a.rcpts, bytes.NewReader(out.Bytes()))
		}
		if err := safeRewrite(out, bytes.NewReader(data), opt); err != nil {
			return &relay.DeliveryError{Class: relay.Temporary, Stage: "data", Err: fmt.Errorf("reading the message: %w", err)}
		}
		return up.Deliver(q.ctx, m.env.From, a.rcpts, bytes.NewReader(out.Bytes()))
	}
	defer body.Close()
	sr := &spoolReader{r: body}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(safeRewrite(bufio.NewWriterSize(pw, 32<<10), sr, opt))
	}()
	err = up.Deliver(q.ctx, m.env.From, a.rcpts, pr)
	pr.CloseWithError(errAborted)
	<-done
	if sr.err != nil {
		// The upstream saw the copy end early (or took a truncated one,
		// which only a broken upstream would): the file is the problem.
		return q.markDamaged(m, "reading the spool file: "+sr.err.Error())
	}
	return err
}

// linkTokens returns the link tokens of a tracked copy (links[n] for
// link n, 0 the honeypot), nil when its links stay as they are. Should they
// fail (they cannot for a token the keyring minted), the copy goes out
// with its links as they are.
func (q *Queue) linkTokens(m *message, a attempt) []string {
	if a.links <= 0 || q.opt.Links == nil {
		return nil
	}
	links, err := q.opt.Links.LinkTokens(a.token, a.links)
	if err != nil {
		q.log.Error("link tokens failed; the copy's links stay as they are", "queue_id", m.env.ID, "err", err)
		return nil
	}
	return links
}

// safeRewrite runs the rewrite; a panic on some unforeseen input fails
// this attempt instead of the whole relay.
func safeRewrite(w io.Writer, r io.Reader, opt rewrite.Options) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("queue: rewrite panicked: %v", p)
		}
	}()
	if bw, ok := w.(*bufio.Writer); ok {
		if err := rewriteTo(bw, r, opt); err != nil {
			return err
		}
		return bw.Flush()
	}
	return rewriteTo(w, r, opt)
}

// result applies the outcome of one attempt to its copy.
func (q *Queue) result(it *item, a attempt, err error) {
	minRetry, maxRetry, maxAge, _ := q.limits()
	now := q.opt.Now()
	m, c := it.m, it.c

	q.mu.Lock()
	q.active[it.acct]--
	m.busy--
	c.Attempts++
	q.dropData(m)
	expired := now.Sub(m.env.Received) >= maxAge
	o := sortRecipients(m, c, a, err, expired, now)
	keep := o.keep
	c.LastError = clip(describe(o.lastErr, expired && o.lastErr != nil && len(keep) == 0), 500)
	switch {
	case len(keep) > 0:
		c.Recipients = keep
		c.Status = spool.Deferred
		c.Next = now.Add(backoff(c.Attempts, minRetry, maxRetry))
		if deadline := m.env.Received.Add(maxAge); c.Next.After(deadline) {
			c.Next = deadline // the last try is at max_age, then it expires
		}
		q.ready.push(it)
	case o.delivered > 0:
		c.Status, c.SentAt = spool.Sent, now
	default:
		c.Status = spool.Failed
	}
	it.seq++
	states := o.states
	if c.TrackingID != "" {
		states = []state{{id: c.TrackingID, status: c.Status, lastErr: c.LastError}}
	}
	up := update{states: states, at: now, seq: it.seq}
	status := c.Status
	q.mu.Unlock()
	q.wakeUp() // the upstream slot is free: start the next copy now
	q.opt.Metrics.Delivery(status, a.account, a.took)

	if err != nil {
		q.log.Info("delivery failed", "queue_id", m.env.ID, "account", a.account, "rcpts", a.rcpts,
			"class", relay.ClassOf(err).String(), "status", status, "err", err)
	}
	// The spool's state first: it decides what is sent again after a
	// crash. The recorder can be slow (it waits while the database is
	// compacted) and only tells the tracker. A finished message's files
	// go only after the recorder has its final state (and the webhook
	// events that come with it); until then a restart reports it again.
	final := q.settle(m, status != spool.Sent)
	it.umu.Lock()
	if up.seq > it.sent {
		it.sent = up.seq
		q.update(up)
	}
	it.umu.Unlock()
	if final {
		q.finish(m)
	}
}

// outcome is what one attempt did to its copy's recipients.
type outcome struct {
	keep      []string // to try again
	delivered int
	lastErr   error
	states    []state // each recipient's news for the recorder (untracked copies)
}

// sortRecipients sorts the recipients of attempt a by what err says for
// each: delivered, failed (added to m's failures) or kept for a retry.
// For an untracked copy it also makes each recipient's record update. The
// caller holds q.mu.
func sortRecipients(m *message, c *spool.Copy, a attempt, err error, expired bool, now time.Time) outcome {
	var o outcome
	for _, rcpt := range a.rcpts {
		e := rcptErr(err, rcpt)
		st := state{status: spool.Sent}
		switch {
		case e == nil:
			o.delivered++
		case relay.ClassOf(e) == relay.Permanent || expired:
			m.st.Failures = append(m.st.Failures, failure(rcpt, e, expired, now))
			o.lastErr = e
			st = state{status: spool.Failed, lastErr: clip(describe(e, expired), 500)}
		default:
			o.keep = append(o.keep, rcpt)
			o.lastErr = e
			st = state{status: spool.Deferred, lastErr: clip(describe(e, false), 500)}
		}
		if c.TrackingID == "" && !m.env.DSN {
			st.id = record.UntrackedID(m.env.ID, rcpt)
			o.states = append(o.states, st)
		}
	}
	return o
}

// update is what one attempt tells the recorder: the tracked copy's new
// state, or each recipient's of an untracked copy.
type update struct {
	states []state
	at     time.Time
	seq    uint64 // the copy's item.seq when made
}

// state is one record's new delivery state; id is its record.Copy.ID.
type state struct {
	id, status, lastErr string
}

// update tells the recorder about the copies' new states. An untracked
// copy it has no record of (planned before untracked copies were
// recorded) is not an error.
func (q *Queue) update(u update) {
	if q.opt.Recorder == nil {
		return
	}
	for _, s := range u.states {
		err := q.opt.Recorder.Update(s.id, s.status, s.lastErr, u.at)
		switch {
		case err == nil:
		case errors.Is(err, record.ErrNotFound) && record.IsUntrackedID(s.id):
			q.log.Debug("no record of the untracked copy", "id", s.id)
		default:
			q.log.Error("recording delivery state", "id", s.id, "err", err)
		}
	}
}

// rcptErr is the error that applies to rcpt: its own entry of a
// RecipientErrors (nil when it was accepted), or err itself.
func rcptErr(err error, rcpt string) error {
	var re relay.RecipientErrors
	if errors.As(err, &re) {
		return re[rcpt]
	}
	return err
}

// backoff is min_retry doubled per earlier attempt, at most max_retry, with
// ±25% jitter kept within [min_retry, max_retry].
func backoff(attempts int, minRetry, maxRetry time.Duration) time.Duration {
	d := minRetry
	for i := 1; i < attempts && d < maxRetry; i++ {
		d *= 2
	}
	d = min(d, maxRetry)
	d = d*3/4 + time.Duration(rand.Int64N(int64(d/2)+1))
	return min(max(d, minRetry), maxRetry)
}

// failure describes a recipient that will not get the message.
func failure(rcpt string, err error, expired bool, now time.Time) spool.Failure {
	return spool.Failure{
		Recipient:  rcpt,
		Status:     statusCode(err, expired),
		Diagnostic: clip(describe(err, expired), 500),
		At:         now,
	}
}

// statusCode is the enhanced status code for a DSN: the upstream's own when
// it gave one, 4.4.7 for an expired copy.
func statusCode(err error, expired bool) string {
	if expired && relay.ClassOf(err) != relay.Permanent {
		return "4.4.7"
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) && se.EnhancedCode[0] >= 2 && se.EnhancedCode != smtp.NoEnhancedCode {
		return fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
	}
	var de *relay.DeliveryError
	if errors.As(err, &de) && de.Code >= 400 && de.Code < 600 {
		return fmt.Sprintf("%d.0.0", de.Code/100)
	}
	return "5.0.0"
}

// describe is the text for last_error and Diagnostic-Code: the upstream's
// reply as sent, or for the relay's own setup problems the whole error with
// its stage and the hint on what to fix ("auth: upstream replied 535 ...
// (check upstream.username and upstream.password)").
func describe(err error, expired bool) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	var se *smtp.SMTPError
	if relay.ClassOf(err) != relay.Setup && errors.As(err, &se) { // setup errors keep their hint
		s = fmt.Sprintf("%d %s", se.Code, se.Message)
		if se.EnhancedCode[0] >= 2 && se.EnhancedCode != smtp.NoEnhancedCode {
			s = fmt.Sprintf("%d %d.%d.%d %s", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], se.Message)
		}
	}
	if expired && relay.ClassOf(err) != relay.Permanent {
		s = "delivery time expired (queue.max_age); last error: " + s
	}
	return s
}

// stateDebounce is how often a message's state is saved when the only news
// is a delivered copy: losing that news in a crash only means the copy is
// delivered again, and a message with many recipients would otherwise
// rewrite its state after every copy.
const stateDebounce = time.Second

// settle persists m's state after a change (at once when important, else
// at most every stateDebounce) and bounces failed recipients once every
// copy was tried at least once (so one bounce lists all the first round's
// failures; a later expiry makes another). It reports final when every
// copy is final and its bounce is spooled: the caller tells the recorder,
// then calls finish to delete the message.
func (q *Queue) settle(m *message, important bool) (final bool) {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	if m.done {
		return false
	}
	q.mu.Lock()
	if m.st == nil {
		q.mu.Unlock()
		return false
	}
	final, tried := true, true
	for _, c := range m.st.Copies {
		final = final && c.Final()
		tried = tried && c.Attempts > 0
	}
	final = final && m.busy == 0
	var pending []spool.Failure
	var idx []int
	for i, f := range m.st.Failures {
		if !f.Bounced {
			pending = append(pending, f)
			idx = append(idx, i)
		}
	}
	q.mu.Unlock()

	if len(pending) > 0 && (final || tried) {
		if err := q.bounce(m, pending); err != nil {
			q.log.Error("spooling bounce; will retry", "queue_id", m.env.ID, "err", err)
			q.retrySettle(m)
			final = false
		} else {
			q.mu.Lock()
			for _, i := range idx {
				m.st.Failures[i].Bounced = true
			}
			q.mu.Unlock()
		}
	}
	now := time.Now()
	if final {
		// The final states go on disk before the recorder is told: after
		// a crash in between, resume reports them instead of sending the
		// copies again.
		q.save(m, now)
		return true
	}
	if !important && now.Sub(m.saved) < stateDebounce {
		m.dirty = true
		return false
	}
	q.save(m, now)
	return false
}

// finish deletes a message whose copies are all final (settle said so),
// once the recorder has been told.
func (q *Queue) finish(m *message) {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	if m.done {
		return
	}
	if !q.handOver(m) {
		minRetry, _, _, _ := q.limits()
		q.later(minRetry, func() { q.finish(m) })
		return
	}
	if err := q.sp.Delete(m.env.ID); err != nil {
		q.log.Error("deleting finished message", "queue_id", m.env.ID, "err", err)
	}
	m.done = true
	q.mu.Lock()
	delete(q.msgs, m.env.ID)
	q.mu.Unlock()
}

// save writes m's state. The caller holds m.wmu.
func (q *Queue) save(m *message, now time.Time) {
	q.mu.Lock()
	st := cloneState(m.st)
	q.mu.Unlock()
	if err := q.sp.WriteState(m.env.ID, st); err != nil {
		// Delivery goes on from the state in memory; the write is tried
		// again (a crash meanwhile can only cause duplicates).
		q.log.Error("writing queue state; will retry", "queue_id", m.env.ID, "err", err)
		m.saved, m.dirty = time.Time{}, true
		q.retrySave(m)
		return
	}
	m.saved, m.dirty = now, false
}

// saveDirty writes the states whose last news was debounced (at shutdown).
func (q *Queue) saveDirty() {
	q.mu.Lock()
	msgs := make([]*message, 0, len(q.msgs))
	for _, m := range q.msgs {
		msgs = append(msgs, m)
	}
	q.mu.Unlock()
	now := time.Now()
	for _, m := range msgs {
		m.wmu.Lock()
		if m.dirty && !m.done {
			q.save(m, now)
		}
		m.wmu.Unlock()
	}
}

// retrySave writes m's state again after min_retry unless that is planned
// already (a full disk may take a while to clear). The caller holds
// m.wmu.
func (q *Queue) retrySave(m *message) {
	if m.saveRetry {
		return
	}
	m.saveRetry = true
	minRetry, _, _, _ := q.limits()
	q.later(minRetry, func() { // once closed, Close saves what is dirty
		m.wmu.Lock()
		defer m.wmu.Unlock()
		m.saveRetry = false
		if m.dirty && !m.done {
			q.save(m, time.Now())
		}
	})
}

func (q *Queue) retrySettle(m *message) {
	minRetry, _, _, _ := q.limits()
	q.later(minRetry, func() {
		if q.settle(m, true) {
			q.finish(m)
		}
	})
}

// later runs fn after d unless the queue is closed by then; Close waits
// for a run that has started.
func (q *Queue) later(d time.Duration, fn func()) {
	time.AfterFunc(d, func() {
		q.mu.Lock()
		closed := q.closed
		if !closed {
			q.flight.Add(1)
		}
		q.mu.Unlock()
		if closed {
			return
		}
		defer q.flight.Done()
		fn()
	})
}

func cloneState(st *spool.State) *spool.State {
	c := *st
	c.Copies = append([]spool.Copy(nil), st.Copies...)
	for i := range c.Copies {
		c.Copies[i].Recipients = append([]string(nil), c.Copies[i].Recipients...)
	}
	c.Failures = append([]spool.Failure(nil), st.Failures...)
	return &c
}
