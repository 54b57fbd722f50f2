package pg

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
)

// request is one write for the writer: a hit, a click, copies to add, a
// delivery state, or a flush marker.
type request struct {
	hit   *store.Hit
	click *store.ClickHit
	add   []record.Copy
	upd   *update
	done  chan result // nil: nobody waits (settle ticks)
}

type update struct {
	id, status, lastError string
	at                    time.Time
}

type result struct {
	stored bool
	err    error
}

// settleEvery is how often the writer settles due clicks when idle.
const settleEvery = 5 * time.Second

// Record stores a hit and waits until its batch is committed.
func (s *Store) Record(h store.Hit) (bool, error) { return s.wait(request{hit: &h}) }

// Enqueue is Record: on PostgreSQL the pixel is answered after commit,
// so Enqueue waits for it too (a process killed under load loses no
// answered open). Commit errors are also counted in Stats().Dropped.
func (s *Store) Enqueue(h store.Hit) error {
	_, err := s.wait(request{hit: &h})
	return err
}

// RecordClick stores a click and waits for its batch.
func (s *Store) RecordClick(c store.ClickHit) (bool, error) { return s.wait(request{click: &c}) }

// EnqueueClick is RecordClick without its outcome.
func (s *Store) EnqueueClick(c store.ClickHit) error {
	_, err := s.wait(request{click: &c})
	return err
}

// Flush returns at once: every Record and Enqueue has committed before it
// returned.
func (s *Store) Flush() error {
	s.sendMu.RLock()
	defer s.sendMu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	return nil
}

// Add records copies (record.Recorder); a copy already stored is left as
// it is.
func (s *Store) Add(copies []record.Copy) error {
	for i := range copies {
		if err := store.CheckCopy(&copies[i]); err != nil {
			return err
		}
	}
	_, err := s.wait(request{add: copies})
	return err
}

// Update records a copy's delivery state (record.Recorder).
func (s *Store) Update(id, status, lastError string, at time.Time) error {
	switch status {
	case record.StatusQueued, record.StatusDeferred, record.StatusSent, record.StatusFailed:
	default:
		return fmtErr("update %s: unknown status %q", id, status)
	}
	_, err := s.wait(request{upd: &update{id: id, status: status, lastError: lastError, at: at}})
	return err
}

// wait hands r to the writer and waits for its batch.
func (s *Store) wait(r request) (bool, error) {
	r.done = make(chan result, 1)
	s.sendMu.RLock()
	if s.closed {
		s.sendMu.RUnlock()
		if r.hit != nil || r.click != nil {
			s.dropped.Add(1)
		}
		return false, store.ErrClosed
	}
	s.in <- r
	s.sendMu.RUnlock()
	res := <-r.done
	return res.stored, res.err
}

// writer is the goroutine that commits batches.
func (s *Store) writer() {
	defer close(s.done)
	tick := time.NewTicker(settleEvery)
	defer tick.Stop()
	var batch []request
	for {
		select {
		case r := <-s.in:
			batch = append(batch[:0], r)
		case <-tick.C:
			batch = append(batch[:0], request{})
		case <-s.stop:
			for {
				select {
				case r := <-s.in:
					s.commit([]request{r})
					continue
				default:
				}
				return
			}
		}
		batch = s.collect(batch)
		s.commit(batch)
		clear(batch)
	}
}

// collect adds waiting requests to batch, up to MaxBatch, waiting at most
// BatchDelay after the first.
func (s *Store) collect(batch []request) []request {
	timer := time.NewTimer(s.opt.BatchDelay)
	defer timer.Stop()
	for len(batch) < s.opt.MaxBatch {
		select {
		case r := <-s.in:
			batch = append(batch, r)
		case <-timer.C:
			return batch
		}
	}
	return batch
}

// commit writes one batch in one transaction and answers its waiters.
// A failed batch is tried again request by request, so one bad request
// does not fail the others.
func (s *Store) commit(batch []request) {
	outs, changes, woken, err := s.commitOnce(batch)
	if err != nil && len(batch) > 1 {
		s.log.Warn("store: batch failed; committing its requests one by one", "requests", len(batch), "err", err)
		for i := range batch {
			s.commit(batch[i : i+1])
		}
		return
	}
	if err != nil {
		if r := batch[0]; r.hit != nil || r.click != nil { // a batch of one
			s.dropped.Add(1)
			s.log.Error("store: hit not stored", "err", err)
		}
	} else {
		s.feed.Publish(changes)
		s.hooks.wake(woken)
	}
	for i, r := range batch {
		out := outs[i]
		if err != nil {
			out = outcome{o: store.HitFailed, err: err}
		}
		if r.hit != nil && s.opt.OnHit != nil {
			s.opt.OnHit(out.o, r.hit)
		}
		if r.click != nil && s.opt.OnClick != nil {
			s.opt.OnClick(out.o, r.click)
		}
		if r.done != nil {
			r.done <- result{stored: out.o == store.HitStored && out.err == nil && (r.hit != nil || r.click != nil), err: out.err}
		}
	}
}

// outcome is what became of one request of a batch.
type outcome struct {
	o   store.HitOutcome
	err error // the request's own error (an Update's unknown copy)
}

// commitOnce runs the batch's transaction.
func (s *Store) commitOnce(batch []request) ([]outcome, []store.Change, []string, error) {
	outs := make([]outcome, len(batch))
	var w *txw
	ctx := context.Background()
	err := s.write(ctx, func(tx pgx.Tx) error {
		w = s.newTxw(ctx, tx)
		clear(outs)
		for i := 0; i < len(batch); {
			if n := hitRun(batch[i:]); n > 0 {
				os, err := w.hits(batch[i : i+n])
				if err != nil {
					return err
				}
				for j, o := range os {
					outs[i+j] = outcome{o: o}
				}
				i += n
				continue
			}
			o, err := w.apply(&batch[i])
			if err != nil {
				return err
			}
			outs[i] = o
			i++
		}
		if err := w.settle(); err != nil {
			return err
		}
		if err := w.finish(); err != nil {
			return err
		}
		return s.notify(ctx, tx, w.changes)
	})
	if err != nil {
		return outs, nil, nil, err
	}
	return outs, w.changes, w.hooks.woken(), nil
}

// hitRun is the number of pixel hits at the start of rs.
func hitRun(rs []request) int {
	n := 0
	for n < len(rs) && rs[n].hit != nil {
		n++
	}
	return n
}
