// Package queue takes accepted messages from the SMTP sessions, keeps them in
// the durable spool, splits each into its copies (one per tracked recipient,
// one shared by the untracked ones), delivers the copies upstream with
// retries, and bounces what cannot be delivered.
//
// What is durable when: Spool returns (and smtpd answers 250) once the raw
// message and its envelope are fsynced (relay/spool). The copy plan (which
// recipients are tracked, their tracking ids and tokens) is made right after,
// recorded with the Recorder, and appended to the spool's states journal without
// an fsync: after a process crash it is read back (no re-minting); after a
// power failure that lost it, the message is planned again. Delivery state
// changes are written the same way; losing one can only cause a duplicate
// delivery, never a lost message. A message's files are deleted when all its
// copies are final and its bounce, if any, is itself durably spooled.
//
// Retries: a temporary failure defers the copy for min_retry, doubling per
// attempt up to max_retry, with ±25% jitter; the last try is at max_age.
// A setup failure (our credentials, certificate, sending limit) is deferred
// the same way and never bounced while max_age has not passed; Kick retries
// every deferred copy at once after a reload. A permanent failure, or any
// failure after max_age, fails the recipient.
//
// Bounces: one RFC 3464 report per message lists its failed recipients. It
// is sent once every copy of the message has been tried at least once, so
// the failures of the first round share one report; a recipient that fails
// later (expiry) gets a second one. Bounces go from <> to the envelope
// sender through the same queue, never for the null sender, and a bounce's
// own failures are only logged.
package queue

import (
	"bytes"
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"pixelrelay/config"
	"pixelrelay/metrics"
	"pixelrelay/relay"
	"pixelrelay/relay/spool"
	"pixelrelay/tracker/record"
)

// Options configures a Queue.
type Options struct {
	Dir    string                // the spool directory; "" means Config().SpoolDir()
	Config func() *config.Config // the current config (hot reload swaps it)
	// Upstream returns the upstream of the account called name
	// (config.DefaultAccount for [upstream]); it may change on reload.
	Upstream func(account string) relay.Upstream
	Recorder record.Recorder   // nil: nothing recorded
	Minter   record.Minter     // nil: nothing tracked
	Links    record.LinkMinter // nil: links never rewritten (no clicks counted)
	Log      *slog.Logger      // nil: slog.Default()
	Now      func() time.Time  // nil: time.Now
	Metrics  *metrics.Metrics  // nil: nothing counted

	// SentFolder, when set, gets each finished message that had copies
	// accepted upstream (not bounces) before its files are deleted; while
	// it fails the message stays in the spool and is handed again after
	// min_retry (or at the next start).
	SentFolder func(Finished) error
	// SentFolderOn reports whether the Sent folder of a message's account
	// (its name, and its envelope sender) is cleaned:
	// its records start with sent_folder "pending" then, else "off".
	SentFolderOn func(account, from string) bool

	// ShutdownTimeout bounds how long Close waits for in-flight
	// deliveries before cancelling them (default 30s).
	ShutdownTimeout time.Duration

	// NoFsync skips every fsync of the spool. BENCHMARK ONLY: it shows
	// what durability costs; with it a crash can lose acknowledged mail.
	NoFsync bool

	// SpoolFault is passed to the spool as spool.Options.Fault. TESTS
	// ONLY: it injects a full disk at chosen write steps.
	SpoolFault func(step string) error
}

// Queue is the delivery queue. It implements relay.Spooler and record.Queue.
type Queue struct {
	opt Options
	sp  *spool.Spool
	log *slog.Logger

	mu     sync.Mutex
	msgs   map[string]*message
	ready  lanes          // copies waiting for an attempt, by account, soonest first
	active map[string]int // deliveries running, by account
	// moved: accounts a reload removed whose copies were logged as
	// going to the default account.
	moved  map[string]bool
	closed bool

	wake    chan struct{}
	plans   chan *message
	adds    chan planned
	stop    chan struct{}
	stopped chan struct{} // dispatcher has returned

	cacheUsed atomic.Int64 // bytes held in memory (message.data, message.tmpl)
	tokLen    atomic.Int64 // length of the last minted token (0: none yet)
	linkLen   atomic.Int64 // length of the last link token (0: none yet)

	ctx    context.Context // cancelled when Close gives up waiting
	cancel context.CancelFunc

	flight    sync.WaitGroup // deliveries and settles in progress
	workers   sync.WaitGroup // planners
	startOnce sync.Once
	closeOnce sync.Once
	closeErr  error
}

// message is one spooled message in memory (never its body).
type message struct {
	env  spool.Envelope
	off  int64 // where the body starts in the spool file
	size int64 // the raw message's length; 0 until known
	// damaged is why m's spool file cannot be read back ("" while it
	// can): every copy then fails at once (see markDamaged). Guarded by
	// Queue.mu.
	damaged string
	st      *spool.State // nil until planned; guarded by Queue.mu
	busy    int          // copies being delivered; guarded by Queue.mu
	// data is the raw message while its copies are being delivered (small
	// messages only; see body), refs the copies using it. Guarded by
	// Queue.mu.
	data *bytes.Buffer
	refs int
	// tmpl is the tracked copies' template while data is held (nil when
	// none could be made: tmplTried). Guarded by Queue.mu; tmu lets one
	// copy make it while the others wait.
	tmpl      *template
	tmplTried bool
	tmu       sync.Mutex
	// planFails counts failed plans; only the planning path (one step at
	// a time, handed on through channels) touches it.
	planFails int

	wmu   sync.Mutex // serialises state writes, bounces and the deletion
	done  bool       // deleted; guarded by wmu
	dirty bool       // state changed since saved; guarded by wmu
	saved time.Time  // last state write; guarded by wmu
	// saveRetry: a write of the state failed and another is planned
	// (retrySave); guarded by wmu.
	saveRetry bool
}

// item is one copy in the ready heap.
type item struct {
	m    *message
	c    *spool.Copy
	idx  int
	acct string // the account delivering it while in flight; guarded by Queue.mu

	// A deferred copy is back in the heap before its update reaches the
	// recorder, so its next attempt may finish first. Updates are numbered
	// (seq, under Queue.mu) and one older than the last sent is dropped
	// (sent, under umu): the recorder never ends on a stale state.
	seq  uint64
	umu  sync.Mutex
	sent uint64
}

var _ relay.Spooler = (*Queue)(nil)
var _ record.Queue = (*Queue)(nil)

// ErrClosed is returned by Spool after Close.
var ErrClosed = errors.New("queue: closed")

// New opens the spool under opt.Dir and resumes every message found there.
// Deliveries start with Start (or Run).
func New(opt Options) (*Queue, error) {
	if opt.Config == nil {
		return nil, errors.New("queue: Options.Config is required")
	}
	if opt.Dir == "" {
		if opt.Config() == nil || opt.Config().DataDir == "" {
			return nil, errors.New("queue: no spool directory (Options.Dir or data_dir)")
		}
		opt.Dir = opt.Config().SpoolDir()
	}
	if opt.Upstream == nil {
		opt.Upstream = func(string) relay.Upstream { return nil }
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.ShutdownTimeout <= 0 {
		opt.ShutdownTimeout = 30 * time.Second
	}
	log := opt.Log
	if log == nil {
		log = slog.Default()
	}
	sp, err := spool.Open(opt.Dir, spool.Options{NoFsync: opt.NoFsync, Fault: opt.SpoolFault})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	q := &Queue{
		opt:     opt,
		sp:      sp,
		log:     log.With("component", "queue"),
		msgs:    map[string]*message{},
		ready:   lanes{},
		active:  map[string]int{},
		moved:   map[string]bool{},
		wake:    make(chan struct{}, 1),
		plans:   make(chan *message, 4096),
		adds:    make(chan planned, 4096),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
		ctx:     ctx,
		cancel:  cancel,
	}
	n := max(2, runtime.GOMAXPROCS(0))
	q.workers.Add(n + 1)
	for range n {
		go q.planner()
	}
	go q.recorder()
	q.resume()
	return q, nil
}

// resume loads the spool: unplanned messages are planned again, the other
// ones continue where they were. A message Scan moved aside because its
// body is damaged is kept too: its copies fail at once (see markDamaged),
// which bounces it and tells the recorder.
func (q *Queue) resume() {
	msgs, errs := q.sp.Scan()
	var all []*message
	for _, err := range errs {
		q.logScanError(err)
		var de *spool.DamagedError
		if errors.As(err, &de) && de.Message != nil {
			// Moved aside, but its sender and the recorder can be told.
			all = append(all, &message{env: de.Message.Envelope, st: de.Message.State,
				damaged: de.Reason})
		}
	}
	var unplanned, finished []*message
	q.mu.Lock()
	for _, sm := range msgs {
		all = append(all, &message{env: sm.Envelope, off: sm.Offset, st: sm.State})
	}
	for _, m := range all {
		if m.st != nil {
			m.size = m.st.Size
		}
		q.msgs[m.env.ID] = m
		if m.st == nil {
			unplanned = append(unplanned, m)
			continue
		}
		open := 0
		for i := range m.st.Copies {
			c := &m.st.Copies[i]
			if !c.Final() {
				q.ready.push(&item{m: m, c: c})
				open++
			}
		}
		if open == 0 {
			finished = append(finished, m)
		}
	}
	q.mu.Unlock()
	if len(msgs) > 0 {
		q.log.Info("spool resumed", "messages", len(msgs), "unplanned", len(unplanned))
	}
	if n, _ := q.sp.Damaged(); n > 0 {
		// Each was reported when it was moved; this is a reminder.
		q.log.Warn("spool: damaged entries kept aside for the administrator", "count", n,
			"dir", filepath.Join(q.opt.Dir, spool.DamagedDir))
	}
	go func() {
		for _, m := range unplanned {
			q.enqueuePlan(m)
		}
	}()
	q.flight.Add(1)
	go func() {
		defer q.flight.Done()
		q.reportFinal(all)
		for _, m := range finished {
			if q.settle(m, true) {
				q.finish(m)
			}
		}
	}()
}

// reportFinal tells the recorder, again, the final states of the resumed
// messages' copies: a crash may have come between saving them and telling
// it. The recorder ignores a state it already has.
func (q *Queue) reportFinal(msgs []*message) {
	if q.opt.Recorder == nil {
		return
	}
	var ups []update
	q.mu.Lock()
	for _, m := range msgs {
		ups = append(ups, finalStates(m)...)
	}
	q.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64) // updates that wait together share a commit
	for _, u := range ups {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			q.update(u)
		}()
	}
	wg.Wait()
}

// finalStates is what the recorder should know of m's final copies: each
// tracked copy's state, each untracked recipient's (sent, or failed with
// the diagnostic of its bounce). The caller holds q.mu.
func finalStates(m *message) []update {
	if m.st == nil || m.env.DSN {
		return nil
	}
	failedAt := map[string]time.Time{}
	for _, f := range m.st.Failures {
		failedAt[f.Recipient] = f.At
	}
	var ups []update
	tracked := map[string]bool{}
	for _, c := range m.st.Copies {
		if c.TrackingID == "" {
			continue
		}
		tracked[c.Recipients[0]] = true
		if at := c.SentAt; c.Final() {
			if c.Status == spool.Failed {
				at = failedAt[c.Recipients[0]]
			}
			ups = append(ups, update{states: []state{{id: c.TrackingID, status: c.Status, lastErr: c.LastError}}, at: at})
		}
	}
	for _, f := range m.st.Failures {
		if !tracked[f.Recipient] {
			st := state{id: record.UntrackedID(m.env.ID, f.Recipient), status: spool.Failed, lastErr: f.Diagnostic}
			ups = append(ups, update{states: []state{st}, at: f.At})
		}
	}
	for _, c := range m.st.Copies {
		if c.TrackingID != "" || c.Status != spool.Sent {
			continue
		}
		var sent []state
		for _, r := range c.Recipients {
			if _, failed := failedAt[r]; !failed {
				sent = append(sent, state{id: record.UntrackedID(m.env.ID, r), status: spool.Sent})
			}
		}
		ups = append(ups, update{states: sent, at: c.SentAt})
	}
	return ups
}

// Spool stores the message durably and returns its queue id; the copies
// are planned and delivered in the background. Errors are temporary for
// the client (nothing was accepted).
func (q *Queue) Spool(from string, to []string, body io.Reader) (string, error) {
	return q.SpoolUser("", from, to, body)
}

// SpoolUser is Spool for a message submitted by the SMTP AUTH user user
// ("" when none): the account it goes through is chosen now, by its
// envelope sender or user (config.Route), and kept with it in the spool.
func (q *Queue) SpoolUser(user, from string, to []string, body io.Reader) (string, error) {
	q.mu.Lock()
	closed := q.closed
	q.mu.Unlock()
	if closed {
		return "", ErrClosed
	}
	if len(to) == 0 {
		return "", errors.New("queue: no recipients")
	}
	env := q.newEnvelope(from, slices.Clone(to))
	env.Account = q.cfg().Route(from, user).Name
	m, err := q.put(env, body)
	if err != nil {
		return "", err
	}
	q.enqueuePlan(m)
	return m.env.ID, nil
}

// newEnvelope gives a new message its queue id and the Message-ID its
// copies carry if it has none (made once, the same for all copies).
func (q *Queue) newEnvelope(from string, to []string) *spool.Envelope {
	now := q.opt.Now()
	id := spool.NewID(now)
	return &spool.Envelope{
		ID: id, From: from, To: to, Received: now,
		MessageID: "<" + id + "." + randomString() + "@" + q.hostname() + ">",
	}
}

// put writes a new message to the spool and registers it. A message under
// maxCached is kept in memory as it is spooled (while the cache budget
// allows), so planning and delivery need not read it back.
func (q *Queue) put(env *spool.Envelope, body io.Reader) (*message, error) {
	cr := &captureReader{r: body}
	if q.cacheUsed.Load() < maxCacheTotal {
		cr.buf = getBuf(64 << 10)
	}
	off, err := q.sp.Put(env, cr)
	if err != nil {
		if cr.buf != nil {
			putBuf(cr.buf)
		}
		return nil, err
	}
	m := &message{env: *env, off: off, size: cr.n}
	q.mu.Lock()
	q.msgs[env.ID] = m
	if cr.buf != nil {
		q.setData(m, cr.buf)
	}
	q.mu.Unlock()
	return m, nil
}

func (q *Queue) enqueuePlan(m *message) {
	select {
	case q.plans <- m:
	case <-q.stop:
	}
}

// Start starts delivering in the background. Close stops it.
func (q *Queue) Start() {
	q.startOnce.Do(func() { go q.dispatch() })
}

// Run delivers until ctx is done, then shuts down like Close.
func (q *Queue) Run(ctx context.Context) error {
	q.Start()
	<-ctx.Done()
	return q.Close()
}

// Close stops accepting messages and starting deliveries, waits up to
// Options.ShutdownTimeout for deliveries in flight (then cancels them) and
// closes the spool. Everything not delivered stays spooled for the next
// start.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() {
		q.mu.Lock()
		q.closed = true
		q.mu.Unlock()
		close(q.stop)
		q.startOnce.Do(func() { close(q.stopped) })
		<-q.stopped
		if !waitTimeout(&q.flight, q.opt.ShutdownTimeout) {
			q.log.Warn("shutdown: cancelling deliveries in flight")
			q.cancel()
			waitTimeout(&q.flight, 5*time.Second)
		}
		q.cancel()
		q.workers.Wait()
		q.saveDirty()
		q.closeErr = q.sp.Close()
	})
	return q.closeErr
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// Kick makes every deferred copy due now (after a config reload fixed the
// upstream, for instance).
func (q *Queue) Kick() {
	q.mu.Lock()
	now := q.opt.Now()
	for _, h := range q.ready {
		for _, it := range *h {
			if it.c.Status == spool.Deferred {
				it.c.Next = now
			}
		}
		heap.Init(h)
	}
	q.mu.Unlock()
	q.wakeUp()
}

func (q *Queue) wakeUp() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Reroute logs, once per account, the messages waiting for an account the
// config no longer has (a reload, or a restart with another config,
// removed it): their copies go to the default account from now on (and
// back to the account should it return), and their records say so. Call
// it at start and after a reload; Kick then retries them at once.
func (q *Queue) Reroute() {
	cfg := q.cfg()
	counts := map[string]int{}
	var ids []string // the records of the moved copies
	q.mu.Lock()
	for _, m := range q.msgs {
		a := m.env.Account
		if a == "" || a == config.DefaultAccount {
			continue
		}
		if _, ok := cfg.Account(a); ok {
			delete(q.moved, a)
		} else if !q.moved[a] {
			counts[a]++
			ids = append(ids, waitingRecords(m)...)
		}
	}
	for a := range counts {
		q.moved[a] = true
	}
	q.mu.Unlock()
	for _, a := range slices.Sorted(maps.Keys(counts)) {
		q.log.Warn("account removed from the config: its queued messages go to the default account",
			"account", a, "messages", counts[a])
	}
	if as, ok := q.opt.Recorder.(record.AccountSetter); ok && len(ids) > 0 {
		if err := as.SetAccount(ids, config.DefaultAccount); err != nil {
			q.log.Error("recording the moved copies' account", "copies", len(ids), "err", err)
		}
	}
}

// waitingRecords are the record ids of m's copies not final yet (none
// before m is planned: its records will name the account it has then).
// The caller holds q.mu.
func waitingRecords(m *message) []string {
	if m.st == nil || m.env.DSN {
		return nil
	}
	var ids []string
	for i := range m.st.Copies {
		if c := &m.st.Copies[i]; !c.Final() {
			ids = append(ids, recordIDs(m.env.ID, c)...)
		}
	}
	return ids
}

// Entries lists the copies not delivered yet (queued or deferred), oldest
// message first.
func (q *Queue) Entries() []record.QueueEntry {
	q.mu.Lock()
	defer q.mu.Unlock()
	ids := make([]string, 0, len(q.msgs))
	for id := range q.msgs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out []record.QueueEntry
	cfg := q.cfg()
	for _, id := range ids {
		m := q.msgs[id]
		base := record.QueueEntry{QueueID: id, From: m.env.From, QueuedAt: m.env.Received,
			Account: accountIn(cfg, m.env.Account).Name}
		if m.st == nil {
			e := base
			e.Recipients = slices.Clone(m.env.To)
			e.Status = record.StatusQueued
			e.NextAttempt = m.env.Received
			out = append(out, e)
			continue
		}
		for _, c := range m.st.Copies {
			if c.Final() {
				continue
			}
			e := base
			e.TrackingID = c.TrackingID
			e.Recipients = slices.Clone(c.Recipients)
			e.Status = c.Status
			e.Attempts = c.Attempts
			e.NextAttempt = c.Next
			if c.Next.IsZero() {
				e.NextAttempt = m.env.Received // due since it arrived
			}
			e.LastError = c.LastError
			out = append(out, e)
		}
	}
	return out
}

// Damaged returns how many damaged entries the spool holds aside (in
// spool.DamagedDir) for someone to look at.
func (q *Queue) Damaged() int {
	n, err := q.sp.Damaged()
	if err != nil {
		q.log.Warn("counting damaged spool entries", "err", err)
	}
	return n
}

// Len returns the number of messages in the spool.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.msgs)
}

// cfg returns the current config.
func (q *Queue) cfg() *config.Config {
	if c := q.opt.Config(); c != nil {
		return c
	}
	return &config.Config{}
}

func (q *Queue) hostname() string {
	if h := q.cfg().SMTP.Hostname; h != "" {
		return h
	}
	return "localhost"
}

// limits returns the retry schedule and the connection limit, with the
// contract's defaults for unset values.
func (q *Queue) limits() (minRetry, maxRetry, maxAge time.Duration, conns int) {
	c := q.cfg()
	minRetry, maxRetry, maxAge = c.Queue.MinRetry.D(), c.Queue.MaxRetry.D(), c.Queue.MaxAge.D()
	if minRetry <= 0 {
		minRetry = time.Minute
	}
	if maxRetry < minRetry {
		maxRetry = max(minRetry, time.Hour)
	}
	if maxAge <= 0 {
		maxAge = 5 * 24 * time.Hour
	}
	conns = c.Upstream.Connections
	if conns <= 0 {
		conns = 4
	}
	return
}

var idEnc = base32.HexEncoding.WithPadding(base32.NoPadding)

func randomString() string {
	var b [5]byte
	rand.Read(b[:])
	return strings.ToLower(idEnc.EncodeToString(b[:]))
}
