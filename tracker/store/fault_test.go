package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// faultDB builds a closed database at dir/pixelrelay.db holding copies with
// opens (no deletes, so nearly every page is in use) and returns its path
// and the number of pages in use.
func faultDB(t *testing.T, copies, perCopy int) (string, int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pixelrelay.db")
	s, err := OpenStore(path, Options{Log: faultQuiet()})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s, "f", copies, perCopy, time.Now().Add(-time.Hour))
	var pages int
	s.view(func(tx *bolt.Tx) error {
		pages = int(tx.Size() / int64(tx.DB().Info().PageSize))
		return nil
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path, pages
}

// damage describes one way a database file gets broken.
type damage struct {
	name string
	do   func(t *testing.T, path string, pages, pageSize int)
}

// overwrite writes b at page p of the file.
func overwrite(t *testing.T, path string, p, pageSize int, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, int64(p*pageSize)); err != nil {
		t.Fatal(err)
	}
}

var damages = []damage{
	{"garbage file", func(t *testing.T, path string, pages, ps int) {
		b := make([]byte, pages*ps)
		rand.NewChaCha8([32]byte{1}).Read(b)
		os.WriteFile(path, b, 0o600)
	}},
	{"truncated to half", func(t *testing.T, path string, pages, ps int) {
		os.Truncate(path, int64(pages/2*ps))
	}},
	{"truncated to the meta pages", func(t *testing.T, path string, pages, ps int) {
		os.Truncate(path, int64(2*ps))
	}},
	{"truncated inside a meta page", func(t *testing.T, path string, pages, ps int) {
		os.Truncate(path, 100)
	}},
	{"zeroed meta pages", func(t *testing.T, path string, pages, ps int) {
		overwrite(t, path, 0, ps, make([]byte, 2*ps))
	}},
	{"zeroed middle pages", func(t *testing.T, path string, pages, ps int) {
		overwrite(t, path, pages/4, ps, make([]byte, pages/2*ps))
	}},
	{"garbage middle pages", func(t *testing.T, path string, pages, ps int) {
		b := make([]byte, pages/2*ps)
		rand.NewChaCha8([32]byte{2}).Read(b)
		overwrite(t, path, pages/4, ps, b)
	}},
	{"one zeroed page in every eight", func(t *testing.T, path string, pages, ps int) {
		for p := 2; p < pages; p += 8 {
			overwrite(t, path, p, ps, make([]byte, ps))
		}
	}},
}

// TestOpenDamagedFile: a database file that is garbage, truncated or has
// zeroed or overwritten pages is refused with ErrDamaged and an error naming
// the file, quickly, instead of a crash (bbolt faults on a truncated file
// and panics in its own goroutine on a damaged page: either would kill this
// test binary).
func TestOpenDamagedFile(t *testing.T) {
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			path, pages := faultDB(t, 200, 10)
			d.do(t, path, pages, os.Getpagesize())
			start := time.Now()
			s, err := OpenStore(path, Options{Log: faultQuiet()})
			if err == nil {
				s.Close()
				t.Fatal("a damaged database opened without error")
			}
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q: want ErrDamaged naming %s", err, path)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("refusing took %v", took)
			}
		})
	}
}

// TestOpenIntactFileVerifies: the check before opening accepts a good file
// (with data, empty, or missing) and keeps every record.
func TestOpenIntactFileVerifies(t *testing.T) {
	path, _ := faultDB(t, 200, 10)
	s, err := OpenStore(path, Options{Log: faultQuiet()})
	if err != nil {
		t.Fatal(err)
	}
	if st := mustStats(t, s); st.Copies != 200 || st.Opens != 2000 {
		t.Fatalf("after reopening: %d copies, %d opens; want 200, 2000", st.Copies, st.Opens)
	}
	s.Close()
	empty := filepath.Join(t.TempDir(), "empty.db")
	os.WriteFile(empty, nil, 0o600)
	for _, p := range []string{empty, filepath.Join(t.TempDir(), "new.db")} {
		s, err := OpenStore(p, Options{Log: faultQuiet()})
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		s.Close()
	}
}

// TestOpenLockedFile: while another holder has the file (a serve, or any
// process with bbolt's lock, shared or exclusive), OpenStore fails with
// bolt.ErrTimeout within a few seconds instead of blocking forever.
func TestOpenLockedFile(t *testing.T) {
	for _, readOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("holder read-only %v", readOnly), func(t *testing.T) {
			path, _ := faultDB(t, 10, 1)
			holder, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: readOnly, Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer holder.Close()
			start := time.Now()
			s, err := OpenStore(path, Options{Log: faultQuiet()})
			if err == nil {
				s.Close()
				t.Fatal("opened a database another holder has locked")
			}
			if !errors.Is(err, bolt.ErrTimeout) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q: want bolt.ErrTimeout naming %s", err, path)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("gave up after %v", took)
			}
		})
	}
}

// TestCompactKillChild is the child of TestCompactKilled: it opens the
// database, and purges and compacts it; at the stage named by the
// environment it says so and waits to be killed.
func TestCompactKillChild(t *testing.T) {
	path := os.Getenv("PIXELRELAY_STORE_KILL_DB")
	if path == "" {
		t.Skip("child process of TestCompactKilled only")
	}
	at := os.Getenv("PIXELRELAY_STORE_KILL_STAGE")
	compactTxSize = 32 << 10 // many small copy transactions: a kill lands mid-copy
	compactStage = func(name string) {
		fmt.Println("stage", name)
		if name == at && at != "copying" { // a copy is killed in its middle
			select {}
		}
	}
	s, err := OpenStore(path, Options{Log: faultQuiet()})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("purging")
	res, err := s.Purge(context.Background(), time.Now().Add(-24*time.Hour), nil)
	fmt.Println("done", res.Compacted, err)
	select {}
}

// Sizes of the database TestCompactKilled interrupts.
const (
	killOldCopies, killOldOpens = 300, 20 // purged
	killNewCopies, killNewOpens = 100, 20 // must survive
)

// TestCompactKilled: kill -9 of a process while it purges and compacts
// (during the deletes, while copying, after the copy, with the old file
// closed, right after the rename) leaves a database that opens, holds
// every copy and every open that was not purged, answers queries, counts
// right, has no leftover compaction file, and can be purged again.
func TestCompactKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	for _, at := range []string{"deleting", "copying", "copied", "closed", "renamed"} {
		t.Run(at, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pixelrelay.db")
			s, err := OpenStore(path, Options{Log: faultQuiet()})
			if err != nil {
				t.Fatal(err)
			}
			fill(t, s, "old", killOldCopies, killOldOpens, time.Now().Add(-100*24*time.Hour))
			newIDs := fill(t, s, "new", killNewCopies, killNewOpens, time.Now().Add(-time.Hour))
			s.Close()

			stages := compactKill(t, path, at, rng)
			t.Logf("killed at %q after stages %v", at, stages)

			if at == "copying" && slices.Contains(stages, "copied") {
				t.Logf("the kill landed after the copy was complete")
			}
			s, err = OpenStore(path, Options{Log: faultQuiet()})
			if err != nil {
				t.Fatalf("reopening after the kill: %v", err)
			}
			defer s.Close()
			if _, err := os.Stat(path + ".compact"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("leftover compaction file after reopening: %v", err)
			}
			compactCheckSurvivors(t, s, newIDs, at != "deleting")
			res, err := s.Purge(context.Background(), time.Now().Add(-24*time.Hour), nil)
			if err != nil {
				t.Fatalf("purge after the kill: %v", err)
			}
			if st := mustStats(t, s); st.Opens != killNewCopies*killNewOpens+1 {
				t.Fatalf("after a second purge (%+v): %d opens, want %d", res, st.Opens, killNewCopies*killNewOpens+1)
			}
		})
	}
}

// compactKill runs the child on path, kills it with SIGKILL at stage (for
// "deleting": a random moment after it starts purging, before any
// compaction stage) and returns the stages it had reported.
func compactKill(t *testing.T, path, at string, rng *rand.Rand) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCompactKillChild$")
	cmd.Env = append(os.Environ(), "PIXELRELAY_STORE_KILL_DB="+path, "PIXELRELAY_STORE_KILL_STAGE="+at)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var stages []string
	timeout := time.After(60 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("child exited before stage %q (stages %v)", at, stages)
			}
			if strings.HasPrefix(line, "done") {
				t.Fatalf("child finished the purge without reaching stage %q: %s", at, line)
			}
			if line == "purging" && at == "deleting" {
				time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
			} else if line != "stage "+at {
				if name, ok := strings.CutPrefix(line, "stage "); ok {
					stages = append(stages, name)
				}
				continue
			} else if at == "copying" {
				compactWaitPartial(t, path+".compact")
			}
			cmd.Process.Signal(syscall.SIGKILL)
			for line := range lines { // what it said before dying
				if name, ok := strings.CutPrefix(line, "stage "); ok {
					stages = append(stages, name)
				}
			}
			if at == "deleting" && len(stages) > 0 {
				t.Logf("the kill landed after compaction began (%v)", stages)
			}
			return stages
		case <-timeout:
			t.Fatalf("child never reached stage %q", at)
		}
	}
}

// compactWaitPartial waits until the compaction target has some pages
// written: the kill then lands in the middle of the copy.
func compactWaitPartial(t *testing.T, tmp string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if st, err := os.Stat(tmp); err == nil && st.Size() > 16<<10 {
			t.Logf("killing with %d bytes of the copy written", st.Size())
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("the copy did not grow past 16 KiB before the kill")
}

// compactCheckSurvivors: every copy and every open that should survive is
// there, the counters agree with the buckets, queries answer. With
// purged set, the old opens must all be gone (the deletes finished before
// the compaction began).
func compactCheckSurvivors(t *testing.T, s *Store, newIDs []string, purged bool) {
	t.Helper()
	st := mustStats(t, s)
	recent := killNewCopies * killNewOpens
	if st.Copies != killOldCopies+killNewCopies {
		t.Errorf("%d copies, want %d", st.Copies, killOldCopies+killNewCopies)
	}
	if st.Opens < recent || st.Opens > recent+killOldCopies*killOldOpens || (purged && st.Opens != recent) {
		t.Errorf("%d opens after the kill; %d recent must survive (purge finished: %v)", st.Opens, recent, purged)
	}
	for _, b := range [][]byte{bOpens, bOpensByTime, bOpensByRcpt} {
		if n := bucketLen(t, s, b); n != st.Opens {
			t.Errorf("bucket %s has %d entries, the counter says %d opens", b, n, st.Opens)
		}
	}
	for _, id := range newIDs {
		opens, err := s.Opens(OpenQuery{ID: id})
		if err != nil || len(opens) != killNewOpens {
			t.Fatalf("opens of %s: %d (%v), want %d", id, len(opens), err, killNewOpens)
		}
	}
	msgs, err := s.Messages(MessageQuery{Limit: 500})
	if err != nil || len(msgs) != killOldCopies+killNewCopies {
		t.Fatalf("messages: %d (%v)", len(msgs), err)
	}
	if ok, err := s.Record(Hit{TrackingID: newIDs[0], IP: "192.0.2.1", UserAgent: "after the kill"}); !ok || err != nil {
		t.Fatalf("recording an open after the kill: %v %v", ok, err)
	}
}

// faultQuiet drops the store's logs below warnings.
func faultQuiet() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}
