package queue

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	"pixelrelay/config"
	"pixelrelay/relay/rewrite"
	"pixelrelay/relay/spool"
	"pixelrelay/tracker/record"
)

// The rewrite functions, as variables so that a test can see what the queue
// passes them. Production code never changes them.
var (
	inspect     = rewrite.Inspect
	track       = rewrite.Track
	rewriteTo   = rewrite.Rewrite
	rewriteInfo = rewrite.RewriteInfo
)

// maxPlanFails is how many failed plans (minter or recorder errors) a
// message waits through before it is delivered untracked: delivering the
// mail matters more than counting its opens.
const maxPlanFails = 3

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

// planned is a message whose copies are decided, waiting to be recorded.
type planned struct {
	m    *message
	st   *spool.State
	recs []record.Copy
}

// plan decides the copies of m and mints the tracked ones' tokens, then
// hands the plan to the recorder loop.
func (q *Queue) plan(m *message) {
	st, recs, err := q.makePlan(m)
	if err != nil {
		q.log.Error("planning failed; will retry", "queue_id", m.env.ID, "err", err)
		q.replanLater(m)
		return
	}
	select {
	case q.adds <- planned{m, st, recs}:
	case <-q.stop:
	}
}

func (q *Queue) replanLater(m *message) {
	m.planFails++
	time.AfterFunc(planRetry, func() { q.enqueuePlan(m) })
}

// recorder records the copies of every plan that arrived while the
// previous Recorder.Add ran in one call (one store transaction for many
// messages), then publishes the plans.
func (q *Queue) recorder() {
	defer q.workers.Done()
	var batch []planned
	var recs []record.Copy
	for {
		select {
		case <-q.stop:
			return
		case p := <-q.adds:
			batch = append(batch[:0], p)
		}
	drain:
		for {
			select {
			case p := <-q.adds:
				batch = append(batch, p)
			default:
				break drain
			}
		}
		recs = recs[:0]
		for _, p := range batch {
			recs = append(recs, p.recs...)
		}
		if len(recs) > 0 && q.opt.Recorder != nil {
			if err := q.opt.Recorder.Add(recs); err != nil {
				q.log.Error("recording copies failed; will retry", "messages", len(batch), "err", err)
				for _, p := range batch {
					q.replanLater(p.m)
				}
				continue
			}
		}
		for _, p := range batch {
			q.publish(p)
		}
	}
}

// publish saves the plan in the spool and queues the copies for delivery.
func (q *Queue) publish(p planned) {
	m := p.m
	q.logUntracked(m, p.recs)
	m.wmu.Lock()
	if err := q.sp.WriteState(m.env.ID, p.st); err != nil {
		// Still deliverable; a restart would plan it again. The write is
		// tried again.
		q.log.Error("writing queue state; will retry", "queue_id", m.env.ID, "err", err)
		m.dirty = true
		q.retrySave(m)
	} else {
		m.saved = time.Now()
	}
	q.mu.Lock()
	m.st = p.st
	for i := range p.st.Copies {
		q.ready.push(&item{m: m, c: &p.st.Copies[i]})
	}
	q.mu.Unlock()
	m.wmu.Unlock()
	q.wakeUp()
}

// safeInspect runs rewrite.Inspect; a panic makes the message untouchable
// (forwarded untracked) instead of crashing the relay.
func safeInspect(r io.Reader) (info rewrite.Info, err error) {
	defer func() {
		if p := recover(); p != nil {
			info, err = rewrite.Info{Untouchable: fmt.Sprintf("inspect panicked: %v", p)}, nil
		}
	}()
	return inspect(r)
}

// inspect runs rewrite.Inspect on m, in memory when m.data holds it (no
// copy is using it before the plan exists, so it cannot be dropped
// meanwhile). A message Inspect fails on is untouchable (forwarded as it
// is). The only error is a spool file that cannot be read back: the
// message is damaged (moved aside, see markDamaged).
func (q *Queue) inspect(m *message) (rewrite.Info, error) {
	q.mu.Lock()
	data, damaged := m.data, m.damaged
	q.mu.Unlock()
	if damaged != "" {
		return rewrite.Info{}, damagedErr(damaged)
	}
	if data != nil {
		if info, ok := q.inspectTemplate(m, data.Bytes()); ok {
			return info, nil
		}
		return untouchableOnError(safeInspect(bytes.NewReader(data.Bytes())))
	}
	body, _, err := q.openSpool(m)
	if err != nil {
		return rewrite.Info{}, err
	}
	defer body.Close()
	sr := &spoolReader{r: body}
	info, err := safeInspect(sr)
	if sr.err != nil {
		return rewrite.Info{}, q.markDamaged(m, "reading the spool file: "+sr.err.Error())
	}
	return untouchableOnError(info, err)
}

// untouchableOnError makes a message Inspect failed on untouchable.
func untouchableOnError(info rewrite.Info, err error) (rewrite.Info, error) {
	if err != nil {
		return rewrite.Info{Untouchable: "inspect failed: " + err.Error()}, nil
	}
	return info, nil
}

// inspectTemplate learns what Inspect would from a tracked copy made with
// a placeholder token (rewrite.RewriteInfo), which becomes m's template:
// the message is read and rewritten once for the plan and all its tracked
// copies. Only for a message in memory with several recipients, once a
// token's length is known, within the cache budget; false: use Inspect.
func (q *Queue) inspectTemplate(m *message, data []byte) (rewrite.Info, bool) {
	n := int(q.tokLen.Load())
	if n == 0 || len(m.env.To) < 2 || m.env.DSN || q.cacheUsed.Load() >= maxCacheTotal {
		return rewrite.Info{}, false
	}
	cfg := q.cfg()
	linkLen := 0
	if q.clicks(cfg) {
		if linkLen = int(q.linkLen.Load()); linkLen == 0 {
			return rewrite.Info{}, false // Inspect finds the links
		}
	}
	ph, ok := newPlaceholders(data, n, linkLen)
	if !ok {
		return rewrite.Info{}, false
	}
	baseURL := cfg.Tracking.BaseURL
	opt := ph.options(baseURL, rewrite.Options{MessageID: m.env.MessageID})
	out := getBuf(len(data) + len(data)/8 + 512)
	info, err := safeRewriteInfo(out, data, opt)
	if err != nil {
		putBuf(out)
		return rewrite.Info{}, false
	}
	if info.Untouchable != "" {
		putBuf(out)
		q.mu.Lock()
		q.setTemplate(m, nil)
		q.mu.Unlock()
		return info, true
	}
	if linkLen > 0 && len(info.Links) == 0 {
		// No link: the copies get no honeypot either, unlike this copy.
		// The first copy makes the template.
		putBuf(out)
		return info, true
	}
	t := templateFrom(out, ph, info.HTMLParts, len(info.Links), baseURL)
	q.mu.Lock()
	q.setTemplate(m, t)
	q.mu.Unlock()
	return info, true
}

// clicks reports whether messages planned now count clicks.
func (q *Queue) clicks(cfg *config.Config) bool {
	return cfg.Tracking.Clicks && q.opt.Links != nil
}

// safeRewriteInfo runs rewriteInfo; a panic is an error.
func safeRewriteInfo(w io.Writer, data []byte, opt rewrite.Options) (info rewrite.Info, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("queue: rewrite panicked: %v", p)
		}
	}()
	return rewriteInfo(w, bytes.NewReader(data), opt)
}

// learnLinkLen notes the length of link tokens, which templates need,
// from the first copy with links.
func (q *Queue) learnLinkLen(token string) error {
	if q.linkLen.Load() != 0 {
		return nil
	}
	toks, err := q.opt.Links.LinkTokens(token, 0)
	if err != nil {
		return err
	}
	q.linkLen.Store(int64(len(toks[0])))
	return nil
}

// makePlan reads the message once (rewrite.Inspect) and splits its
// recipients: each tracked one gets its own copy and token, the others
// share one copy. Every recipient gets a record (an untracked one with
// the reason), except in a bounce the relay made and in a message planned
// without the recorder (maxPlanFails).
func (q *Queue) makePlan(m *message) (*spool.State, []record.Copy, error) {
	if m.env.DSN {
		return &spool.State{Copies: []spool.Copy{{
			Recipients: m.env.To, Status: spool.Queued,
		}}}, nil, nil
	}
	info, err := q.inspect(m)
	if err != nil {
		// Damaged: one copy for everybody, which fails at once and
		// bounces (see markDamaged), instead of planning again forever.
		return &spool.State{Copies: []spool.Copy{{
			Recipients: m.env.To, Status: spool.Queued,
		}}}, nil, nil
	}
	cfg := q.cfg()
	acct := accountIn(cfg, m.env.Account)
	pol := rewrite.Policy{
		OptIn:   strings.EqualFold(cfg.Tracking.Policy, "opt-in"),
		Exclude: cfg.Tracking.Exclude,
		Sender:  m.env.From,
		Own:     ownAddress(acct),
	}
	msgID := info.MessageID
	if msgID == "" {
		msgID = m.env.MessageID
	}
	q.mu.Lock()
	size := m.size
	q.mu.Unlock()
	st := &spool.State{Subject: info.Subject, MessageID: msgID, HTMLParts: info.HTMLParts, Size: size}
	var links []string
	if q.clicks(cfg) {
		links = info.Links
	}
	if m.planFails >= maxPlanFails {
		q.log.Error("tracking unavailable; delivering untracked", "queue_id", m.env.ID, "failed_plans", m.planFails)
	}
	var recs []record.Copy
	var untracked []string
	for _, rcpt := range m.env.To {
		rec := record.Copy{QueueID: m.env.ID, Recipient: rcpt, From: m.env.From, Subject: info.Subject,
			MessageID: msgID, QueuedAt: m.env.Received, Status: record.StatusQueued, Account: acct.Name}
		ok, why := track(info, rcpt, pol)
		if ok && q.opt.Minter == nil {
			ok, why = false, "tracking unavailable"
		}
		if !ok || m.planFails >= maxPlanFails {
			untracked = append(untracked, rcpt)
			if m.planFails < maxPlanFails { // else the recorder is down: nothing is recorded
				rec.UntrackedReason = why
				recs = append(recs, rec)
			}
			continue
		}
		tid, token, err := q.opt.Minter.Mint()
		if err != nil {
			return nil, nil, err
		}
		q.tokLen.Store(int64(len(token)))
		if len(links) > 0 {
			if err := q.learnLinkLen(token); err != nil {
				return nil, nil, err
			}
			st.Links = len(links)
		}
		st.Copies = append(st.Copies, spool.Copy{
			Recipients: []string{rcpt}, TrackingID: tid, Token: token, Status: spool.Queued,
		})
		rec.TrackingID = tid
		rec.Links = links
		recs = append(recs, rec)
	}
	if len(untracked) > 0 {
		st.Copies = append(st.Copies, spool.Copy{Recipients: untracked, Status: spool.Queued})
	}
	q.markSentFolder(m, recs, len(untracked) < len(m.env.To))
	return st, recs, nil
}

// ownAddress is the address of the account's own mailbox, its username
// when that is an address ("" when not): mail to it is the sender's own.
func ownAddress(a config.Account) string {
	if strings.Contains(a.Username, "@") {
		return a.Username
	}
	return ""
}

// logUntracked says once per message which recipients get no pixel and
// why (the first maxLogged of them).
func (q *Queue) logUntracked(m *message, recs []record.Copy) {
	const maxLogged = 10
	var why []string
	n := 0
	for i := range recs {
		if recs[i].Tracked() {
			continue
		}
		if n++; n <= maxLogged {
			why = append(why, recs[i].Recipient+": "+recs[i].UntrackedReason)
		}
	}
	if n == 0 {
		return
	}
	if n > maxLogged {
		why = append(why, fmt.Sprintf("and %d more", n-maxLogged))
	}
	q.log.Info("not tracked", "queue_id", m.env.ID, "untracked", n, "recipients", len(m.env.To),
		"reasons", strings.Join(why, "; "))
}
