package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"pixelrelay/internal/pgtest"
)

// The team deployment through the real binary: three serve processes on
// one PostgreSQL, sharing their keys, each taking pixel fetches.

// newTeamInstance is an instance on store.url whose tracker believes
// X-Forwarded-For from loopback (so a test can fetch as many clients).
func newTeamInstance(t *testing.T, storeURL, tracking string) *instance {
	t.Helper()
	dir := t.TempDir()
	in := &instance{
		t: t, dir: filepath.Join(dir, "data"), cfgPath: filepath.Join(dir, "pixelrelay.toml"),
		smtpAddr: freePort(t), httpAddr: freePort(t),
		env: append(os.Environ(), "PIXELRELAY_ADMIN_KEY=test-admin-key", "HOME="+dir),
	}
	cfg := fmt.Sprintf(`data_dir = %q

[smtp]
listen = %q

[http]
listen = %q
trusted_proxies = ["127.0.0.1/32"]

[tracking]
base_url = "http://%s"
%s

[store]
url = %q
`, in.dir, in.smtpAddr, in.httpAddr, in.httpAddr, tracking, storeURL)
	if err := os.WriteFile(in.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return in
}

// startTeam starts n processes on storeURL; the first one's keys are
// copied to the others before they start (tokens verify everywhere).
func startTeam(t *testing.T, storeURL, tracking string, n int) []*instance {
	t.Helper()
	var team []*instance
	for i := range n {
		in := newTeamInstance(t, storeURL, tracking)
		if i > 0 {
			keys, err := os.ReadFile(filepath.Join(team[0].dir, "secrets.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(in.dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(in.dir, "secrets.json"), keys, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		in.start()
		team = append(team, in)
	}
	return team
}

// fetch GETs a pixel path from addr as client ip with user agent ua and
// reports whether the whole answer came back.
func fetch(addr, path, ip, ua string) bool {
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Header.Set("User-Agent", ua)
	if ip != "" {
		req.Header.Set("X-Forwarded-For", ip)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return err == nil && resp.StatusCode == 200 && len(b) == 43
}

// pixelPaths sends one message to n recipients through in and returns
// each copy's pixel path.
func pixelPaths(t *testing.T, in *instance, n int) []string {
	t.Helper()
	var to []string
	for i := range n {
		to = append(to, fmt.Sprintf("r%d@example.org", i))
	}
	if _, err := sendMail(t, in.smtpAddr, "alice@example.org", to, htmlMessage("alice@example.org", to, "team")); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, c := range in.waitOutbox(n, 60*time.Second) {
		for _, u := range pixelURLs(c) {
			paths = append(paths, u[strings.Index(u, "/o/"):])
		}
	}
	if len(paths) != n {
		t.Fatalf("%d pixels in %d copies", len(paths), n)
	}
	return paths
}

func psqlInt(t *testing.T, c *pgtest.Cluster, db, sql string) int {
	t.Helper()
	out, err := c.Psql(db, sql)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(out)
	if err != nil {
		t.Fatalf("%s: %q", sql, out)
	}
	return n
}

// TestPostgresTeam: three processes on one PostgreSQL. The same open
// fired at all three at once is stored once; one client's fetches spread
// over the three stop at ip_hourly_limit in all; the copies and opens any
// process recorded are what every process's API shows.
func TestPostgresTeam(t *testing.T) {
	c := pgtest.Start(t)
	url := c.CreateDB(t, "team")
	const limit = 20
	team := startTeam(t, url, fmt.Sprintf("ip_hourly_limit = %d", limit), 3)
	paths := pixelPaths(t, team[0], 10)

	var wg sync.WaitGroup
	for _, p := range paths {
		for _, in := range team {
			for range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					fetch(in.httpAddr, p, "192.0.2.10", "Same Mail Client")
				}()
			}
		}
	}
	wg.Wait()
	var ms struct {
		Messages []struct {
			TrackingID string `json:"tracking_id"`
			OpensTotal int    `json:"opens_total"`
		} `json:"messages"`
	}
	team[2].api("/api/messages", &ms)
	if len(ms.Messages) != len(paths) {
		t.Fatalf("process 3 lists %d copies, want %d", len(ms.Messages), len(paths))
	}
	for _, m := range ms.Messages {
		if m.OpensTotal != 1 {
			t.Errorf("copy %s: %d opens from 9 identical fetches at 3 processes, want 1", m.TrackingID, m.OpensTotal)
		}
	}

	for i := range 3 * limit {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fetch(team[i%3].httpAddr, paths[i%len(paths)], "203.0.113.9", fmt.Sprintf("agent %d", i))
		}()
	}
	wg.Wait()
	if n := psqlInt(t, c, "team", "SELECT count(*) FROM opens WHERE ip = '203.0.113.9'"); n != limit {
		t.Fatalf("one client's %d fetches over 3 processes stored %d opens, want ip_hourly_limit %d", 3*limit, n, limit)
	}
}

// TestPostgresKillLosesNoAnsweredOpen: one of three processes is killed
// with SIGKILL while clients fetch pixels from all three; every fetch
// that was answered (each from its own client, so each is an open to
// store) is in the database.
func TestPostgresKillLosesNoAnsweredOpen(t *testing.T) {
	c := pgtest.Start(t)
	url := c.CreateDB(t, "team_kill")
	team := startTeam(t, url, "", 3)
	paths := pixelPaths(t, team[0], 5)

	var answered sync.Map // user agent -> true
	var n, killedAnswers atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				in := team[(g+i)%3]
				ua := fmt.Sprintf("client %d-%d", g, i)
				ip := fmt.Sprintf("10.%d.%d.%d", g, i/250%250, i%250)
				if fetch(in.httpAddr, paths[i%len(paths)], ip, ua) {
					answered.Store(ua, true)
					n.Add(1)
					if in == team[2] {
						killedAnswers.Add(1)
					}
				}
			}
		}()
	}
	for deadline := time.Now().Add(60 * time.Second); killedAnswers.Load() < 50; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the third process answered fewer than 50 fetches in 60s")
		}
	}
	team[2].stop(syscall.SIGKILL)
	time.Sleep(500 * time.Millisecond) // the others keep answering
	stop.Store(true)
	wg.Wait()

	out, err := c.Psql("team_kill", "SELECT user_agent FROM opens")
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for _, ua := range strings.Split(out, "\n") {
		stored[ua] = true
	}
	lost := 0
	answered.Range(func(k, _ any) bool {
		if !stored[k.(string)] {
			lost++
		}
		return true
	})
	t.Logf("%d fetches answered (%d by the killed process before the kill), %d opens stored, %d answered opens lost",
		n.Load(), killedAnswers.Load(), len(stored), lost)
	if lost > 0 {
		t.Fatalf("%d answered opens are not in the database", lost)
	}
}

// TestStoreMigrate: a bbolt database with copies and an open is moved to
// PostgreSQL with `pixelrelay store migrate --to` (refused while serve
// holds the file; run twice, the second copies nothing), and serve on
// store.url shows the same copies and open.
func TestStoreMigrate(t *testing.T) {
	c := pgtest.Start(t)
	url := c.CreateDB(t, "moved")
	in := newInstance(t, "")
	in.start()
	paths := pixelPaths(t, in, 3)
	if !fetch(in.httpAddr, paths[0], "", "Moved Mail Client") {
		t.Fatal("pixel fetch failed")
	}
	var before struct {
		Opens []struct {
			TrackingID string `json:"tracking_id"`
		} `json:"opens"`
	}
	for deadline := time.Now().Add(30 * time.Second); len(before.Opens) == 0 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		in.api("/api/opens", &before)
	}
	if len(before.Opens) != 1 {
		t.Fatalf("%d opens before the move", len(before.Opens))
	}
	if _, errOut, code := in.cli("store", "migrate", "--to", url); code != 1 || !strings.Contains(errOut, "stop pixelrelay serve first") {
		t.Fatalf("migrate while serving: exit %d, %q", code, errOut)
	}
	if err := in.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for round, want := range []string{"copied 3 copies (0 were already there), 1 opens", "copied 0 copies (3 were already there)"} {
		out, errOut, code := in.cli("store", "migrate", "--to", url)
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("migrate %d: exit %d, %q, %q", round+1, code, out, errOut)
		}
	}
	cfg, err := os.ReadFile(in.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = append(cfg, fmt.Sprintf("\n[store]\nurl = %q\n", url)...)
	if err := os.WriteFile(in.cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	in.start()
	var after struct {
		Opens []struct {
			TrackingID string `json:"tracking_id"`
			UserAgent  string `json:"user_agent"`
		} `json:"opens"`
	}
	in.api("/api/opens", &after)
	if len(after.Opens) != 1 || after.Opens[0].TrackingID != before.Opens[0].TrackingID || after.Opens[0].UserAgent != "Moved Mail Client" {
		t.Fatalf("opens on PostgreSQL: %+v", after.Opens)
	}
	if n := psqlInt(t, c, "moved", "SELECT count(*) FROM copies"); n != 3 {
		t.Fatalf("%d copies in PostgreSQL, want 3", n)
	}
}
