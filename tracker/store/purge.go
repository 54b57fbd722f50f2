package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// purgeChunk is the number of opens deleted per write transaction, so a
// purge never holds the writer off for long.
const purgeChunk = 5000

// compactTxSize bounds the transactions of a compaction (a variable for
// the crash tests, which copy in small steps).
var compactTxSize int64 = 64 << 20

// compactStage, when set (crash tests only), is called as a compaction
// reaches each stage: "copying", "copied", "closed" (the old file is
// closed), "renamed" (the copy has replaced it).
var compactStage func(stage string)

func stage(name string) {
	if compactStage != nil {
		compactStage(name)
	}
}

// Purge deletes what is older than before: every done copy (sent or
// failed) that was done before it, together with all its opens (also
// later ones: an open is never kept without its copy), then every other
// open with opened_at before it. A copy still queued or deferred is never
// deleted, nor its opens younger than before. Index entries and counters
// go with what they count. It works in chunks of about 5000 records per
// write transaction, so the writer is never held off for long. (Dedup and
// per-IP entries live in memory and expire by themselves.) progress, if
// not nil, is called with the number of opens deleted so far.
//
// Then, when free pages make up at least a quarter of the file, the file is
// compacted into PATH.compact and swapped in.
// While compacting, new hits are held in memory and committed after the
// swap; Add and Update wait; queries keep reading the old file.
func (s *Store) Purge(ctx context.Context, before time.Time, progress func(done int)) (res PurgeResult, err error) {
	s.purgeMu.Lock()
	defer s.purgeMu.Unlock()
	start := time.Now()
	res.SizeBefore = s.fileSize()
	s.log.Info("purge: start", "before", before.UTC().Format(time.RFC3339), "size", res.SizeBefore)
	defer func() {
		res.SizeAfter = s.fileSize()
		res.DurationMS = time.Since(start).Milliseconds()
	}()
	note := func(opens int) {
		if opens == 0 {
			return
		}
		prev := res.Deleted
		res.Deleted += opens
		if progress != nil {
			progress(res.Deleted)
		}
		if res.Deleted/(20*purgeChunk) > prev/(20*purgeChunk) {
			s.log.Info("purge: progress", "deleted", res.Deleted, "deleted_copies", res.DeletedCopies)
		}
	}
	for after := []byte{}; after != nil; {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		var copies, opens int
		copies, opens, after, err = s.purgeCopies(ts(before), after)
		if err != nil {
			return res, err
		}
		res.DeletedCopies += copies
		note(opens)
	}
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		n, err := s.purgeOpens(ts(before))
		if err != nil {
			return res, err
		}
		note(n)
		if n < purgeChunk {
			break
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		n, err := s.purgeClicks(ts(before))
		if err != nil {
			return res, err
		}
		res.DeletedClicks += n
		if n < purgeChunk {
			break
		}
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if _, err := s.purgeSplit(ts(before)); err != nil {
		return res, err
	}
	size, reclaim := s.reclaimable()
	if reclaim*4 >= size && size > 0 {
		if err := s.compact(); err != nil {
			return res, err
		}
		res.Compacted = true
	}
	s.log.Info("purge: done", "deleted", res.Deleted, "deleted_copies", res.DeletedCopies, "deleted_clicks", res.DeletedClicks, "compacted", res.Compacted,
		"size_before", res.SizeBefore, "size_after", s.fileSize(), "duration", time.Since(start).Round(time.Millisecond))
	return res, nil
}

// purgeOpens deletes up to purgeChunk opens older than before in one
// transaction and returns how many it deleted.
func (s *Store) purgeOpens(before uint64) (int, error) {
	n := 0
	err := s.update(func(tx *bolt.Tx) error {
		n = 0
		byTime := tx.Bucket(bOpensByTime)
		type victim struct{ k, v []byte }
		var vs []victim
		c := byTime.Cursor()
		for k, v := c.First(); k != nil && len(vs) < purgeChunk; k, v = c.Next() {
			if len(k) == 16 && beU64(k) >= before {
				break
			}
			vs = append(vs, victim{append([]byte(nil), k...), append([]byte(nil), v...)})
		}
		opens, byRcpt := tx.Bucket(bOpens), tx.Bucket(bOpensByRcpt)
		humans := int64(0)
		for _, vc := range vs {
			if err := byTime.Delete(vc.k); err != nil {
				return err
			}
			flags, id, rcpt, ok := parseTimeIndexValue(vc.v)
			if !ok || len(vc.k) != 16 {
				continue // malformed index entry: dropped, nothing else to find
			}
			if err := opens.Delete(prefixed(id, vc.k)); err != nil {
				return err
			}
			if err := byRcpt.Delete(prefixed(rcpt, vc.k)); err != nil {
				return err
			}
			if flags&flagBot == 0 {
				humans++
			}
		}
		n = len(vs)
		meta := tx.Bucket(bMeta)
		if err := addCounter(meta, mOpens, -int64(n)); err != nil {
			return err
		}
		return addCounter(meta, mOpensHuman, -humans)
	})
	return n, err
}

// purgeClicks deletes up to purgeChunk clicks older than before in one
// transaction, as purgeOpens the opens, and returns how many it deleted.
func (s *Store) purgeClicks(before uint64) (int, error) {
	n := 0
	err := s.update(func(tx *bolt.Tx) error {
		ct := newClickTx(tx)
		type victim struct{ k, v []byte }
		var vs []victim
		c := ct.byTime.Cursor()
		for k, v := c.First(); k != nil && len(vs) < purgeChunk; k, v = c.Next() {
			if len(k) == 16 && beU64(k) >= before {
				break
			}
			vs = append(vs, victim{append([]byte(nil), k...), append([]byte(nil), v...)})
		}
		humans := int64(0)
		for _, vc := range vs {
			flags, id, rcpt, ok := parseTimeIndexValue(vc.v)
			if !ok || len(vc.k) != 16 {
				if err := ct.byTime.Delete(vc.k); err != nil {
					return err
				}
				continue // malformed index entry: dropped, nothing else to find
			}
			if err := ct.clicks.Delete(prefixed(id, vc.k)); err != nil {
				return err
			}
			if err := deleteClickIndexes(ct, vc.k, rcpt); err != nil {
				return err
			}
			if flags&flagBot == 0 {
				humans++
			}
		}
		n = len(vs)
		meta := tx.Bucket(bMeta)
		if err := addCounter(meta, mClicks, -int64(n)); err != nil {
			return err
		}
		return addCounter(meta, mClicksHuman, -humans)
	})
	return n, err
}

// reclaimable returns the file size and the bytes in free pages. (The
// preallocated tail beyond the high-water mark is not counted: a compacted
// file gets one too.)
func (s *Store) reclaimable() (size, free int64) {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	st := s.db.Stats()
	return s.fileSize(), int64(st.FreePageN+st.PendingPageN) * int64(s.db.Info().PageSize)
}

// compact rewrites the database into PATH.compact and swaps it in. Writers
// are held off (hits queue in memory) for the whole time; readers only for
// the swap.
func (s *Store) compact() error {
	start := time.Now()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tmp := compactPath(s.path)
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store: compact: %w", err)
	}
	before := s.fileSize()
	s.log.Info("compact: start", "path", s.path, "size", before)
	stage("copying")
	if err := s.compactInto(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	stage("copied")
	if err := s.swap(tmp); err != nil {
		return err
	}
	s.log.Info("compact: done", "size_before", before, "size_after", s.fileSize(), "duration", time.Since(start).Round(time.Millisecond))
	return nil
}

// compactPath is where a compaction of the database at path writes its
// copy before swapping it in.
func compactPath(path string) string { return path + ".compact" }

// compactInto copies the current database into a new, fsynced file.
func (s *Store) compactInto(tmp string) error {
	dst, err := bolt.Open(tmp, 0o600, boltOptions())
	if err != nil {
		return fmt.Errorf("store: compact: %w", err)
	}
	s.dbMu.RLock()
	err = bolt.Compact(dst, s.db, compactTxSize)
	s.dbMu.RUnlock()
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store: compact: %w", err)
	}
	return nil
}

// swap closes the database, renames tmp over it and reopens it.
func (s *Store) swap(tmp string) error {
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: compact: close: %w", err)
	}
	stage("closed")
	renameErr := os.Rename(tmp, s.path)
	if renameErr == nil {
		stage("renamed")
		renameErr = syncDir(filepath.Dir(s.path))
	}
	db, err := openBolt(s.path)
	if err != nil {
		return fmt.Errorf("store: compact: reopen: %w", err)
	}
	s.db = db
	if renameErr != nil {
		os.Remove(tmp)
		return fmt.Errorf("store: compact: %w", renameErr)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Stats returns the file size, free space and the stored counts.
func (s *Store) Stats() (Stats, error) {
	st := Stats{Path: s.path, Dropped: s.dropped.Load(), LimiterRefused: s.refused.Load()}
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	bs := s.db.Stats()
	st.FreeBytes = int64(bs.FreePageN+bs.PendingPageN) * int64(s.db.Info().PageSize)
	st.SizeBytes = s.fileSize()
	err := s.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bMeta)
		st.Copies = int(counter(meta, mCopies))
		st.Untracked = int(counter(meta, mUntracked))
		st.Opens = int(counter(meta, mOpens))
		st.OpensHuman = int(counter(meta, mOpensHuman))
		splitCounts(tx, &st)
		st.Clicks = int(counter(meta, mClicks))
		st.ClicksHuman = int(counter(meta, mClicksHuman))
		return nil
	})
	return st, err
}
