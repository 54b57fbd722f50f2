package main

// Store faults through the real binary: a damaged or locked database at
// start, and kill -9 of serve while `pixelrelay purge` compacts.

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
)

// storeDB is the database file of an instance.
func storeDB(in *instance) string { return filepath.Join(in.dir, "pixelrelay.db") }

// storeFill adds copies prefix0..prefixN-1 with perCopy opens each, opened
// from at on, straight into the database file (serve must not run). It
// returns the ids.
func storeFill(t *testing.T, path, prefix string, copies, perCopy int, at time.Time) []string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenStore(path, store.Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var cs []record.Copy
	var ids []string
	for i := range copies {
		id := storeID(prefix, i)
		ids = append(ids, id)
		cs = append(cs, record.Copy{
			TrackingID: id, QueueID: "q" + id, Recipient: fmt.Sprintf("user%d@example.org", i%40),
			From: "me@example.com", Subject: "store fault", MessageID: "<" + id + "@example.com>",
			QueuedAt: at, SentAt: at, Status: record.StatusSent,
		})
	}
	if err := st.Add(cs); err != nil {
		t.Fatal(err)
	}
	for j := range perCopy {
		for i, id := range ids {
			err := st.Enqueue(store.Hit{
				TrackingID: id, At: at.Add(time.Duration(j*copies+i) * time.Millisecond),
				IP: fmt.Sprintf("10.%d.%d.%d", j%200, i/250, i%250), UserAgent: "Mozilla/5.0 e2e",
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := st.Flush(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// storeID makes a well-formed 16-character tracking id (lowercase letters)
// from a letter prefix and a number.
func storeID(prefix string, n int) string {
	b := []byte(prefix + strings.Repeat("a", 16-len(prefix)))
	for i := 15; n > 0; i-- {
		b[i] = byte('a' + n%26)
		n /= 26
	}
	return string(b)
}

// storeServeFails runs serve and expects it to exit 1 quickly with a
// one-line reason (no stack trace) that names the database file and says
// want; it returns the output.
func storeServeFails(t *testing.T, in *instance, want string) string {
	t.Helper()
	cmd := exec.Command(binPath, "serve", "--config", in.cfgPath)
	cmd.Env = in.env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("want exit 1, got %v after %v:\n%s", err, took, out)
	}
	var reason string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "pixelrelay: ") {
			reason = line
		}
	}
	if !strings.Contains(reason, storeDB(in)) || !strings.Contains(reason, want) {
		t.Fatalf("want a one-line reason naming %s and saying %q:\n%s", storeDB(in), want, out)
	}
	for _, crash := range []string{"goroutine ", "panic", "SIGBUS", "fatal error"} {
		if strings.Contains(string(out), crash) {
			t.Fatalf("serve crashed instead of refusing:\n%s", out)
		}
	}
	if took > 6*time.Second {
		t.Errorf("refusing took %v", took)
	}
	t.Logf("%v: %s", took.Round(time.Millisecond), reason)
	return string(out)
}

// storePageSize is bbolt's page size for files made here.
var storePageSize = int64(os.Getpagesize())

// TestStoreDamagedAtStart: serve on a database file that is garbage,
// truncated, or has zeroed or overwritten pages exits 1 at once with one
// line naming the file; after the file is moved aside it starts with an
// empty database.
func TestStoreDamagedAtStart(t *testing.T) {
	damage := []struct {
		name string
		do   func(path string, size int64) error
	}{
		{"garbage", func(path string, size int64) error {
			return os.WriteFile(path, []byte(rand.Text()+strings.Repeat("x", int(size))), 0o600)
		}},
		{"truncated", func(path string, size int64) error { return os.Truncate(path, size/2) }},
		{"zeroed meta pages", func(path string, size int64) error {
			return storeWriteAt(path, 0, make([]byte, 2*storePageSize))
		}},
		{"zeroed pages", func(path string, size int64) error {
			return storeWriteAt(path, size/4/storePageSize*storePageSize, make([]byte, size/2))
		}},
		{"overwritten pages", func(path string, size int64) error {
			b := make([]byte, size/2)
			mrand.NewChaCha8([32]byte{7}).Read(b)
			return storeWriteAt(path, size/4/storePageSize*storePageSize, b)
		}},
	}
	for _, d := range damage {
		t.Run(d.name, func(t *testing.T) {
			in := newInstance(t, "")
			path := storeDB(in)
			storeFill(t, path, "d", 100, 10, time.Now().Add(-time.Hour))
			if err := d.do(path, storeUsedBytes(t, path)); err != nil {
				t.Fatal(err)
			}
			storeServeFails(t, in, "damaged")
			if err := os.Rename(path, path+".damaged"); err != nil {
				t.Fatal(err)
			}
			in.start()
			if err := in.stop(syscall.SIGTERM); err != nil {
				t.Fatalf("serve with the damaged file moved aside: %v", err)
			}
		})
	}
}

// storeUsedBytes is the part of the file bbolt's pages use (the rest is
// preallocated).
func storeUsedBytes(t *testing.T, path string) int64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int64
	db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n
}

func storeWriteAt(path string, off int64, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteAt(b, off)
	return err
}

// TestStoreLockedAtStart: while another process (here: this test, through
// bbolt, as a backup tool or `bbolt` command would) holds the database
// file, shared or exclusive, serve exits 1 within seconds naming the file
// and saying it is locked, instead of waiting forever; once the lock is
// gone it starts.
func TestStoreLockedAtStart(t *testing.T) {
	for _, readOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("read-only holder %v", readOnly), func(t *testing.T) {
			in := newInstance(t, "")
			storeFill(t, storeDB(in), "l", 5, 1, time.Now())
			holder, err := bolt.Open(storeDB(in), 0o600, &bolt.Options{ReadOnly: readOnly, Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			storeServeFails(t, in, "locked")
			holder.Close()
			in.start()
			if err := in.stop(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Sizes of the database TestStoreCompactionKilled purges.
const (
	storeOldCopies, storeOldOpens = 400, 20 // older than the purge cut
	storeNewCopies, storeNewOpens = 100, 20 // must survive every kill
)

// TestStoreCompactionKilled: `pixelrelay purge` on a database with old
// opens, and kill -9 of serve while it deletes, while it compacts (copying)
// and right after the swap; each time the restart works, no compaction
// leftover stays, every copy and every open that was not purged answers
// through the API, and a new purge completes. Kill delays are seeded
// (logged).
func TestStoreCompactionKilled(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := mrand.New(mrand.NewPCG(uint64(seed), 1))
	in := newInstance(t, "")
	path := storeDB(in)
	newIDs := storeFill(t, path, "new", storeNewCopies, storeNewOpens, time.Now().Add(-time.Hour))
	for round, at := range []string{"purge: start", "compact: start", "compact: done"} {
		prefix := "old" + string(rune('a'+round))
		// Old sent copies: a purge takes them with their opens (the last
		// round's went in its full purge).
		storeFill(t, path, prefix, storeOldCopies, storeOldOpens, time.Now().Add(-100*24*time.Hour))
		in.start()
		mark := len(in.logs.String())
		purge := exec.Command(binPath, "purge", "--older-than", "30d", "--config", in.cfgPath)
		purge.Env = in.env
		if err := purge.Start(); err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(0)
		if at != "compact: done" {
			delay = time.Duration(rng.IntN(40)) * time.Millisecond
		}
		storeWaitLog(t, in, mark, at)
		time.Sleep(delay)
		in.cmd.Process.Signal(syscall.SIGKILL)
		<-in.done
		purge.Wait()
		partial, _ := os.Stat(path + ".compact")
		t.Logf("killed %v after %q (compaction file at the kill: %v)", delay, at, partial != nil)

		in.start()
		if _, err := os.Stat(path + ".compact"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("leftover compaction file after the restart: %v", err)
		}
		storeCheckSurvivors(t, in, newIDs)
		if out, errOut, code := in.cli("purge", "--older-than", "30d"); code != 0 {
			t.Fatalf("purge after the restart: exit %d\n%s%s", code, out, errOut)
		}
		if st := storeStats(t, in); st.Opens != storeNewCopies*storeNewOpens || st.Copies != storeNewCopies {
			t.Fatalf("after a full purge: %d copies and %d opens stored, want %d and %d",
				st.Copies, st.Opens, storeNewCopies, storeNewCopies*storeNewOpens)
		}
		if err := in.stop(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
}

// storeWaitLog waits until serve logged msg after byte offset mark.
func storeWaitLog(t *testing.T, in *instance, mark int, msg string) {
	t.Helper()
	want := fmt.Sprintf("%q", msg)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(in.logs.String()[mark:], want) {
		if time.Now().After(deadline) {
			t.Fatalf("serve never logged %s", want)
		}
		time.Sleep(time.Millisecond)
	}
}

// storeStats is the running server's database counts.
func storeStats(t *testing.T, in *instance) store.Stats {
	t.Helper()
	var st struct {
		Database store.Stats `json:"database"`
	}
	in.api("/api/status", &st)
	return st.Database
}

// storeCheckSurvivors: the server answers with every copy and every open
// that must have survived (the killed purge may have taken any number of
// the old copies).
func storeCheckSurvivors(t *testing.T, in *instance, newIDs []string) {
	t.Helper()
	st := storeStats(t, in)
	recent := storeNewCopies * storeNewOpens
	if st.Copies < storeNewCopies || st.Copies > storeNewCopies+storeOldCopies || st.Opens < recent {
		t.Fatalf("after the restart: %d copies, %d opens; want %d to %d copies and at least %d opens",
			st.Copies, st.Opens, storeNewCopies, storeNewCopies+storeOldCopies, recent)
	}
	for _, id := range []string{newIDs[0], newIDs[len(newIDs)/2], newIDs[len(newIDs)-1]} {
		var opens struct {
			Opens []store.Open `json:"opens"`
		}
		in.api("/api/opens?id="+id, &opens)
		if len(opens.Opens) != storeNewOpens {
			t.Fatalf("opens of %s after the restart: %d, want %d", id, len(opens.Opens), storeNewOpens)
		}
	}
	var msgs struct {
		Messages []store.Message `json:"messages"`
	}
	in.api("/api/messages?id="+newIDs[1], &msgs)
	if len(msgs.Messages) != 1 || msgs.Messages[0].OpensTotal != storeNewOpens {
		t.Fatalf("message %s after the restart: %+v", newIDs[1], msgs.Messages)
	}
}
