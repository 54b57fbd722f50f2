package queue

import (
	"container/heap"
	"strings"
	"time"

	"pixelrelay/relay/rewrite"
	"pixelrelay/relay/spool"
	"pixelrelay/tracker/record"
)

// The rewrite functions, as variables so that a test can see what the queue
// passes them. Production code never changes them.
var (
	inspect   = rewrite.Inspect
	track     = rewrite.Track
	rewriteTo = rewrite.Rewrite
)

// planRetry is how long a message whose planning failed (disk, minter or
// recorder error) waits before the next try.
var planRetry = 5 * time.Second

// planner plans spooled messages until the queue closes.
func (q *Queue) planner() {
	defer q.workers.Done()
	for {
		select {
		case <-q.stop:
			return
		case m := <-q.plans:
			q.plan(m)
		}
	}
}

// plan decides the copies of m, mints and records the tracked ones, writes
// the state and queues the copies for delivery.
func (q *Queue) plan(m *message) {
	st, recs, err := q.makePlan(m)
	if err == nil && len(recs) > 0 && q.opt.Recorder != nil {
		err = q.opt.Recorder.Add(recs)
	}
	if err != nil {
		q.log.Error("planning failed; will retry", "queue_id", m.env.ID, "err", err)
		time.AfterFunc(planRetry, func() { q.enqueuePlan(m) })
		return
	}
	m.wmu.Lock()
	if err := q.sp.WriteState(m.env.ID, st); err != nil {
		// Still deliverable; a restart would plan it again.
		q.log.Error("writing queue state", "queue_id", m.env.ID, "err", err)
	}
	q.mu.Lock()
	m.st = st
	for i := range st.Copies {
		heap.Push(&q.ready, &item{m: m, c: &st.Copies[i]})
	}
	q.mu.Unlock()
	m.wmu.Unlock()
	q.wakeUp()
}

// makePlan reads the message once (rewrite.Inspect) and splits its
// recipients: each tracked one gets its own copy and token, the others
// share one copy.
func (q *Queue) makePlan(m *message) (*spool.State, []record.Copy, error) {
	if m.env.DSN {
		return &spool.State{Copies: []spool.Copy{{
			Recipients: m.env.To, Status: spool.Queued,
		}}}, nil, nil
	}
	body, err := q.sp.Open(m.env.ID, m.off)
	if err != nil {
		return nil, nil, err
	}
	info, err := inspect(body)
	body.Close()
	if err != nil {
		return nil, nil, err
	}
	cfg := q.cfg()
	pol := rewrite.Policy{
		OptIn:   strings.EqualFold(cfg.Tracking.Policy, "opt-in"),
		Exclude: cfg.Tracking.Exclude,
	}
	msgID := info.MessageID
	if msgID == "" {
		msgID = m.env.MessageID
	}
	st := &spool.State{Subject: info.Subject, MessageID: msgID}
	var recs []record.Copy
	var untracked []string
	for _, rcpt := range m.env.To {
		if ok, _ := track(info, rcpt, pol); !ok || q.opt.Minter == nil {
			untracked = append(untracked, rcpt)
			continue
		}
		tid, token, err := q.opt.Minter.Mint()
		if err != nil {
			return nil, nil, err
		}
		st.Copies = append(st.Copies, spool.Copy{
			Recipients: []string{rcpt}, TrackingID: tid, Token: token, Status: spool.Queued,
		})
		recs = append(recs, record.Copy{
			TrackingID: tid,
			QueueID:    m.env.ID,
			Recipient:  rcpt,
			From:       m.env.From,
			Subject:    info.Subject,
			MessageID:  msgID,
			QueuedAt:   m.env.Received,
			Status:     record.StatusQueued,
		})
	}
	if len(untracked) > 0 {
		st.Copies = append(st.Copies, spool.Copy{Recipients: untracked, Status: spool.Queued})
	}
	return st, recs, nil
}
