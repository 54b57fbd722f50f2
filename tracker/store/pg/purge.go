package pg

import (
	"context"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"

	"pixelrelay/tracker/classify"
	"pixelrelay/tracker/store"
)

// purgeChunk is the number of rows deleted per write transaction, so a
// purge never holds the writers off for long.
const purgeChunk = 5000

// Purge deletes what is older than before, as the bbolt engine does: done
// copies (sent or failed before it) with all their opens, clicks and
// events, then other opens and clicks older than it, in chunks of
// purgeChunk rows per write transaction; then expired dedup and per-IP
// rows, and the link URLs no copy uses any more. PostgreSQL's compaction
// is VACUUM: Purge runs a plain VACUUM of the tables it deleted from
// (Compacted), which makes their space reusable without locking anyone
// out; the database files shrink only with VACUUM FULL, which Purge does
// not run (it locks the tables).
func (s *Store) Purge(ctx context.Context, before time.Time, progress func(done int)) (res store.PurgeResult, err error) {
	s.purgeMu.Lock()
	defer s.purgeMu.Unlock()
	start := time.Now()
	before = before.UTC()
	res.SizeBefore = s.size(ctx)
	s.log.Info("purge: start", "before", before.Format(time.RFC3339), "size", res.SizeBefore)
	defer func() {
		res.SizeAfter = s.size(context.Background())
		res.DurationMS = time.Since(start).Milliseconds()
	}()
	note := func(opens int) {
		res.Deleted += opens
		if progress != nil && opens > 0 {
			progress(res.Deleted)
		}
	}
	for {
		copies, opens, clicks, err := s.purgeCopies(ctx, before)
		if err != nil {
			return res, err
		}
		res.DeletedCopies += copies
		res.DeletedClicks += clicks
		note(opens)
		if copies < purgeChunk {
			break
		}
		s.log.Info("purge: progress", "deleted", res.Deleted, "deleted_copies", res.DeletedCopies)
	}
	for _, t := range []string{"opens", "clicks"} {
		for {
			n, err := s.purgeRows(ctx, "DELETE FROM "+t+" WHERE seq IN (SELECT seq FROM "+t+" WHERE at < $1 LIMIT $2)", before)
			if err != nil {
				return res, err
			}
			if t == "opens" {
				note(n)
			} else {
				res.DeletedClicks += n
			}
			if n < purgeChunk {
				break
			}
		}
	}
	if err := s.purgeState(ctx); err != nil {
		return res, err
	}
	if _, err := s.pool.Exec(ctx, "VACUUM (ANALYZE) copies, opens, clicks, copy_events, links, dedup, ip_minutes"); err != nil {
		s.log.Warn("purge: VACUUM failed", "err", err)
	} else {
		res.Compacted = true
	}
	s.log.Info("purge: done", "deleted", res.Deleted, "deleted_copies", res.DeletedCopies, "deleted_clicks", res.DeletedClicks,
		"vacuumed", res.Compacted, "duration", time.Since(start).Round(time.Millisecond))
	return res, ctx.Err()
}

// size is the database's size in bytes (0 if unknown).
func (s *Store) size(ctx context.Context) int64 {
	var n int64
	s.pool.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&n)
	return n
}

// purgeCopies deletes up to purgeChunk done copies older than before with
// their opens, clicks, events and unused links.
func (s *Store) purgeCopies(ctx context.Context, before time.Time) (copies, opens, clicks int, err error) {
	err = s.write(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT key FROM copies WHERE done_at < $1 ORDER BY done_at LIMIT $2", before, purgeChunk)
		if err != nil {
			return err
		}
		keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(keys) == 0 {
			return err
		}
		counts := make([]int, 2)
		for i, q := range []string{"DELETE FROM opens WHERE copy = ANY($1)", "DELETE FROM clicks WHERE copy = ANY($1)"} {
			tag, err := tx.Exec(ctx, q, keys)
			if err != nil {
				return err
			}
			counts[i] = int(tag.RowsAffected())
		}
		opens, clicks = counts[0], counts[1]
		rows, err = tx.Query(ctx, "DELETE FROM copies WHERE key = ANY($1) RETURNING links_key", keys)
		if err != nil {
			return err
		}
		owners, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		copies = len(owners)
		_, err = tx.Exec(ctx, `DELETE FROM links l WHERE owner = ANY($1) AND owner <> ''
			AND NOT EXISTS (SELECT 1 FROM copies c WHERE c.links_key = l.owner)`, owners)
		return err
	})
	return copies, opens, clicks, err
}

// purgeRows runs a chunked DELETE ($1 before, $2 the chunk) in a write
// transaction and returns how many rows it deleted.
func (s *Store) purgeRows(ctx context.Context, sql string, before time.Time) (int, error) {
	n := 0
	err := s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, sql, before, purgeChunk)
		n = int(tag.RowsAffected())
		return err
	})
	return n, err
}

// purgeState deletes dedup rows older than the dedup window (and an
// hour) and per-IP minutes older than an hour.
func (s *Store) purgeState(ctx context.Context) error {
	now := s.now().UTC()
	keep := max(time.Duration(s.dedup.Load()), time.Hour)
	return s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM dedup WHERE last_at < $1", now.Add(-keep)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "DELETE FROM ip_minutes WHERE minute < $1", now.Add(-2*time.Hour))
		return err
	})
}

// reclassifyChunk is the number of copies re-examined per write
// transaction.
const reclassifyChunk = 200

// Reclassify classifies again the opens stored at or after since with
// judge, copy by copy, as the bbolt engine does; the copies' counters,
// first flags and the hourly counts follow. An open a click made keeps
// its verdict. Clicks are not classified again on PostgreSQL yet
// (Clicks stays empty).
func (s *Store) Reclassify(ctx context.Context, since time.Time, judge store.Judge) (store.ReclassifyResult, error) {
	res := store.ReclassifyResult{Before: map[string]int{}, After: map[string]int{},
		Clicks: &store.ReclassifyResult{Before: map[string]int{}, After: map[string]int{}}}
	rows, err := s.pool.Query(ctx, "SELECT DISTINCT copy FROM opens WHERE at >= $1", since.UTC())
	if err != nil {
		return res, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return res, err
	}
	for len(ids) > 0 {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		chunk := ids[:min(len(ids), reclassifyChunk)]
		ids = ids[len(chunk):]
		part := store.ReclassifyResult{Before: map[string]int{}, After: map[string]int{}}
		err := s.write(ctx, func(tx pgx.Tx) error {
			part = store.ReclassifyResult{Before: map[string]int{}, After: map[string]int{}}
			w := s.newTxw(ctx, tx)
			w.hooks = nil // a reclassify sends no events
			for _, id := range chunk {
				if err := w.reclassify(id, since.UTC(), judge, &part); err != nil {
					return err
				}
			}
			return w.finish()
		})
		if err != nil {
			return res, err
		}
		res.Copies += part.Copies
		res.Examined += part.Examined
		res.Changed += part.Changed
		for k, v := range part.Before {
			res.Before[k] += v
		}
		for k, v := range part.After {
			res.After[k] += v
		}
	}
	s.log.Info("reclassify: done", "since", since, "copies", res.Copies, "examined", res.Examined, "changed", res.Changed)
	return res, nil
}

// storedOpen is one open of a copy being re-examined.
type storedOpen struct {
	seq     int64
	at      time.Time
	byClick bool
	first   bool
	old     classify.Result
	fetch   classify.Fetch
}

// reclassify re-examines one copy's opens.
func (w *txw) reclassify(id string, since time.Time, judge store.Judge, res *store.ReclassifyResult) error {
	c, err := w.copy(id)
	if err != nil || c == nil {
		return err
	}
	rows, err := w.tx.Query(w.ctx, `SELECT seq, at, ip, user_agent, bot, bot_type, proxy, reason, by_click, first
		FROM opens WHERE copy = $1 ORDER BY at, seq`, id)
	if err != nil {
		return err
	}
	opens, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storedOpen, error) {
		var o storedOpen
		var ip string
		err := r.Scan(&o.seq, &o.at, &ip, &o.fetch.UserAgent, &o.old.Bot, &o.old.BotType, &o.old.Proxy, &o.old.Reason, &o.byClick, &o.first)
		o.fetch.IP, _ = netip.ParseAddr(ip)
		o.fetch.At, o.fetch.Old = o.at, o.old
		return o, err
	})
	if err != nil || len(opens) == 0 {
		return err
	}
	fetches := make([]classify.Fetch, len(opens))
	for i := range opens {
		fetches[i] = opens[i].fetch
	}
	verdicts := judge(c.SentAt, fetches)
	res.Copies++
	for i := range opens {
		o := &opens[i]
		if o.at.Before(since) || i >= len(verdicts) || o.byClick {
			continue
		}
		nv := verdicts[i]
		res.Examined++
		res.Before[classify.Label(o.old)]++
		res.After[classify.Label(nv)]++
		if classify.Label(o.old) == classify.Label(nv) && o.old.Reason == nv.Reason {
			continue
		}
		if classify.Label(o.old) != classify.Label(nv) {
			res.Changed++
		}
		if o.old.Bot != nv.Bot {
			a := w.activity(o.at)
			d := b2i(!nv.Bot) - b2i(!o.old.Bot)
			a.OpensHuman += d
			a.OpensMachine -= d
			c.OpensHuman = max(0, c.OpensHuman+d)
		}
		o.old = nv
		if _, err := w.tx.Exec(w.ctx, "UPDATE opens SET bot = $2, bot_type = $3, proxy = $4, reason = $5 WHERE seq = $1",
			o.seq, nv.Bot, nv.BotType, nv.Proxy, nv.Reason); err != nil {
			return err
		}
	}
	return w.fixFirstOpen(c, opens)
}

// fixFirstOpen moves the first flag to the copy's first human open among
// its stored opens (an earlier human open purge deleted stays first).
func (w *txw) fixFirstOpen(c *copyRow, opens []storedOpen) error {
	first := -1
	if c.FirstHumanOpen.IsZero() || !c.FirstHumanOpen.Before(opens[0].at) {
		for i := range opens {
			if !opens[i].old.Bot {
				first = i
				break
			}
		}
		was := c.FirstHumanOpen
		c.FirstHumanOpen = time.Time{}
		if first >= 0 {
			c.FirstHumanOpen = opens[first].at
		}
		if !was.Equal(c.FirstHumanOpen) {
			if !was.IsZero() {
				w.activity(was).FirstHuman--
			}
			if first >= 0 {
				w.activity(c.FirstHumanOpen).FirstHuman++
			}
		}
	}
	for i := range opens {
		if opens[i].first != (i == first) {
			if _, err := w.tx.Exec(w.ctx, "UPDATE opens SET first = $2 WHERE seq = $1", opens[i].seq, i == first); err != nil {
				return err
			}
		}
	}
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
