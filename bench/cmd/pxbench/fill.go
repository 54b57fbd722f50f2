package main

import (
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
)

// cmdFill fills the tracker store of a data dir (data_dir/pixelrelay.db,
// the file serve opens) directly through tracker/store: -n opens over
// -n/10 copies (9 in 10 copies opened, about 11 opens each, in copy
// order with rising times; 1 in 10 unopened) of 1000
// recipients, all opened 100 to 190 days ago so that a 90-day purge
// deletes every one. It prints the time taken, the counts, and a sample
// tracking id and recipient for the queries.
func cmdFill(args []string) error {
	fs := newFlags("fill")
	dir := fs.String("data", "", "pixelrelay data_dir")
	n := fs.Int("n", 1000000, "opens to store")
	prof := fs.String("cpuprofile", "", "write a CPU profile here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("-data is required")
	}
	if *prof != "" {
		f, err := os.Create(*prof)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := store.OpenStore(filepath.Join(*dir, "pixelrelay.db"), store.Options{
		MaxBatch: 20000, QueueSize: 65536, Log: quiet,
	})
	if err != nil {
		return err
	}
	defer st.Close()

	copies := max(*n/10, 10)
	opened := copies * 9 / 10
	now := time.Now().UTC()
	id := benchID
	rcpt := func(i int) string { return fmt.Sprintf("user%d@example.com", i%1000) }
	batch := make([]record.Copy, 0, 10000)
	for i := 0; i < copies; i++ {
		queued := now.Add(-200*24*time.Hour + time.Duration(i)*time.Second)
		batch = append(batch, record.Copy{
			TrackingID: id(i), QueueID: fmt.Sprintf("q%d", i), Recipient: rcpt(i),
			From: "sender@bench.example", Subject: "pixelrelay benchmark newsletter",
			MessageID: fmt.Sprintf("<bench-%d@bench.example>", i/3),
			QueuedAt:  queued, SentAt: queued.Add(time.Second), Status: record.StatusSent,
		})
		if len(batch) == cap(batch) || i == copies-1 {
			if err := st.Add(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	for k := 0; k < *n; k++ {
		c := int(int64(k) * int64(opened) / int64(*n)) // copy-major: a copy's opens together, times rising
		at := now.Add(-190*24*time.Hour + time.Duration(k)*(90*24*time.Hour)/time.Duration(*n))
		err := st.Enqueue(store.Hit{
			TrackingID: id(c), At: at,
			IP:        fmt.Sprintf("198.51.%d.%d", (k>>8)&255, k&255),
			UserAgent: fmt.Sprintf("Mozilla/5.0 bench/%d", k),
		})
		if err != nil {
			return err
		}
	}
	if err := st.Flush(); err != nil {
		return err
	}
	stats, err := st.Stats()
	if err != nil {
		return err
	}
	if err := st.Close(); err != nil {
		return err
	}
	fmt.Printf("secs %.2f\ncopies %d\nopens %d\nsize_bytes %d\nsample_id %s\nsample_to %s\n",
		time.Since(start).Seconds(), stats.Copies, stats.Opens, stats.SizeBytes, id(opened/2), rcpt(opened/2))
	if stats.Opens != *n {
		return fmt.Errorf("stored %d opens of %d", stats.Opens, *n)
	}
	return nil
}

// idEncoding is the tracking-id alphabet of tracker/token (lowercase base32).
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// benchID makes a well-formed 16-character tracking id from a number.
func benchID(i int) string {
	var b [10]byte
	copy(b[:], "bench")
	binary.BigEndian.PutUint32(b[6:], uint32(i))
	return idEncoding.EncodeToString(b[:])
}
