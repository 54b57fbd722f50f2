package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the logger and the test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type change struct{ prev, next *Config }

// watched is a running Watcher with its log and a channel of the changes
// its subscriber saw.
type watched struct {
	w       *Watcher
	log     *syncBuffer
	changes chan change
}

// startWatcher loads path, starts Run and waits until it watches.
func startWatcher(t *testing.T, path string) *watched {
	t.Helper()
	buf := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w, err := NewWatcher(path, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan change, 16)
	w.Subscribe(func(prev, next *Config) { ch <- change{prev, next} })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(2 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	select {
	case <-w.ready:
	case err := <-done:
		t.Fatalf("Run returned early: %v", err)
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not start watching")
	}
	return &watched{w: w, log: buf, changes: ch}
}

// expectPolicy waits up to 1s for a change to the given policy.
func (wd *watched) expectPolicy(t *testing.T, prevPolicy, nextPolicy string) {
	t.Helper()
	select {
	case c := <-wd.changes:
		if c.prev.Tracking.Policy != prevPolicy || c.next.Tracking.Policy != nextPolicy {
			t.Fatalf("subscriber saw policy %q -> %q, want %q -> %q", c.prev.Tracking.Policy, c.next.Tracking.Policy, prevPolicy, nextPolicy)
		}
		if wd.w.Current() != c.next {
			t.Fatal("Current() is not the config the subscriber got")
		}
	case <-time.After(time.Second):
		t.Fatalf("no reload to policy %q within 1s; log:\n%s", nextPolicy, wd.log)
	}
}

// expectNoChange checks that no reload happens for a while.
func (wd *watched) expectNoChange(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case c := <-wd.changes:
		t.Fatalf("unexpected reload: %v", Diff(c.prev, c.next))
	case <-time.After(d):
	}
}

// policy is a config file setting tracking.policy. It names data_dir so
// that it does not depend on $HOME: the watch tests run in parallel
// without isolate.
func policy(p string) string {
	return "data_dir = \"state\"\n[tracking]\npolicy = \"" + p + "\"\n"
}

// renameOver writes content to a temporary file and renames it over path,
// as most editors and config management tools do.
func renameOver(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	writeFile(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestWatchRenameOver(t *testing.T) {
	t.Parallel()
	path := writeFile(t, filepath.Join(t.TempDir(), "pixelrelay.toml"), policy("all"))
	wd := startWatcher(t, path)
	renameOver(t, path, policy("opt-in"))
	wd.expectPolicy(t, "all", "opt-in")
	renameOver(t, path, policy("all"))
	wd.expectPolicy(t, "opt-in", "all")
	if !strings.Contains(wd.log.String(), `msg="config reloaded"`) || !strings.Contains(wd.log.String(), "tracking.policy") {
		t.Errorf("log does not name the changed key:\n%s", wd.log)
	}
}

func TestWatchInPlaceWrite(t *testing.T) {
	t.Parallel()
	path := writeFile(t, filepath.Join(t.TempDir(), "pixelrelay.toml"), policy("opt-in"))
	wd := startWatcher(t, path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Truncate, wait until the watcher has seen the empty file, then write:
	// the empty file in between must not be applied as "all defaults".
	for deadline := time.Now().Add(2 * time.Second); !strings.Contains(wd.log.String(), "config file is empty"); {
		if time.Now().After(deadline) {
			t.Fatalf("the empty file was not noticed:\n%s", wd.log)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := f.WriteString(policy("opt-in") + "[smtp]\nmax_recipients = 7\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	select {
	case c := <-wd.changes:
		if c.next.Tracking.Policy != "opt-in" || c.next.SMTP.MaxRecipients != 7 {
			t.Fatalf("first reload has policy %q and max_recipients %d; want the written file", c.next.Tracking.Policy, c.next.SMTP.MaxRecipients)
		}
	case <-time.After(time.Second):
		t.Fatalf("no reload within 1s; log:\n%s", wd.log)
	}
}

func TestWatchDeleteAndRecreate(t *testing.T) {
	t.Parallel()
	path := writeFile(t, filepath.Join(t.TempDir(), "pixelrelay.toml"), policy("all"))
	wd := startWatcher(t, path)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	wd.expectNoChange(t, 250*time.Millisecond)
	if wd.w.Current().Tracking.Policy != "all" {
		t.Fatal("a deleted file changed the config")
	}
	if !strings.Contains(wd.log.String(), "config file is gone") {
		t.Errorf("deletion not logged:\n%s", wd.log)
	}
	writeFile(t, path, policy("opt-in"))
	wd.expectPolicy(t, "all", "opt-in")
}

// k8sDir lays out a config the way Kubernetes mounts a ConfigMap:
// config.toml -> ..data/config.toml, ..data -> ..v0. It returns the config
// path and a function that publishes new content by writing a new ..vN
// directory, atomically renaming a new ..data symlink over the old one and
// removing the previous directory.
func k8sDir(t *testing.T, content string) (string, func(content string)) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "..v0", "config.toml"), content)
	mustSymlink(t, "..v0", filepath.Join(dir, "..data"))
	mustSymlink(t, "..data/config.toml", filepath.Join(dir, "config.toml"))
	var mu sync.Mutex
	n := 0
	return filepath.Join(dir, "config.toml"), func(content string) {
		mu.Lock()
		defer mu.Unlock()
		n++
		name := fmt.Sprintf("..v%d", n)
		writeFile(t, filepath.Join(dir, name, "config.toml"), content)
		mustSymlink(t, name, filepath.Join(dir, "..data_tmp"))
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Error(err)
		}
		if err := os.RemoveAll(filepath.Join(dir, fmt.Sprintf("..v%d", n-1))); err != nil {
			t.Error(err)
		}
	}
}

// TestWatchSymlinkSwap updates a config the way Kubernetes updates a
// mounted ConfigMap.
func TestWatchSymlinkSwap(t *testing.T) {
	t.Parallel()
	path, publish := k8sDir(t, policy("all"))
	wd := startWatcher(t, path)
	publish(policy("opt-in"))
	wd.expectPolicy(t, "all", "opt-in")
	publish(policy("all"))
	wd.expectPolicy(t, "opt-in", "all")
}

// TestWatchSwapDuringReload publishes a new config from inside a
// subscriber, that is while the previous reload is still being applied:
// the second change must not be lost.
func TestWatchSwapDuringReload(t *testing.T) {
	t.Parallel()
	path, publish := k8sDir(t, policy("all"))
	wd := startWatcher(t, path)
	var once sync.Once
	wd.w.Subscribe(func(prev, next *Config) { once.Do(func() { publish(policy("all")) }) })
	publish(policy("opt-in"))
	wd.expectPolicy(t, "all", "opt-in")
	wd.expectPolicy(t, "opt-in", "all")
}

// TestWatchSymlinkElsewhere edits, in place, the target of a config path
// that is a symlink into another directory.
func TestWatchSymlinkElsewhere(t *testing.T) {
	t.Parallel()
	real := writeFile(t, filepath.Join(t.TempDir(), "dotfiles", "pixelrelay.toml"), policy("all"))
	path := filepath.Join(t.TempDir(), "pixelrelay.toml")
	mustSymlink(t, real, path)
	wd := startWatcher(t, path)
	writeFile(t, real, policy("opt-in"))
	wd.expectPolicy(t, "all", "opt-in")
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// TestWatchInvalidInBetween: an invalid file is logged with every problem
// and ignored; the next good file is picked up.
func TestWatchInvalidInBetween(t *testing.T) {
	t.Parallel()
	path := writeFile(t, filepath.Join(t.TempDir(), "pixelrelay.toml"), policy("all"))
	wd := startWatcher(t, path)
	before := wd.w.Current()
	renameOver(t, path, "data_dir = \"state\"\n[tracking]\npolicy = \"some\"\n[smtp]\nlisen = \"x\"\n")
	wd.expectNoChange(t, 400*time.Millisecond)
	if wd.w.Current() != before {
		t.Fatal("an invalid file replaced the config")
	}
	log := wd.log.String()
	for _, want := range []string{"keeping the last good config", "key=smtp.lisen", "key=tracking.policy", `reason="must be \"all\" or \"opt-in\", not \"some\""`} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	renameOver(t, path, "[tracking\n") // syntax error
	wd.expectNoChange(t, 300*time.Millisecond)
	renameOver(t, path, policy("opt-in"))
	wd.expectPolicy(t, "all", "opt-in")
}

// TestWatchIgnoresOtherFiles: events for other files in the directory do
// not even cause a read of the config.
func TestWatchIgnoresOtherFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeFile(t, filepath.Join(dir, "pixelrelay.toml"), policy("all"))
	wd := startWatcher(t, path)
	writeFile(t, filepath.Join(dir, "other.toml"), policy("opt-in"))
	renameOver(t, filepath.Join(dir, "notes.txt"), "x")
	wd.expectNoChange(t, 300*time.Millisecond)
	if strings.Contains(wd.log.String(), "config file changed") {
		t.Errorf("an unrelated file caused a reload:\n%s", wd.log)
	}
	// The config's own unchanged rewrite is read but changes nothing.
	renameOver(t, path, policy("all")+"# comment\n")
	wd.expectNoChange(t, 300*time.Millisecond)
	if !strings.Contains(wd.log.String(), "config file changed, but no setting did") {
		t.Errorf("the config's own event was not handled:\n%s", wd.log)
	}
}

func TestReload(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	path := writeFile(t, filepath.Join(dir, "pixelrelay.toml"), policy("all"))
	w, err := NewWatcher(path, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var calls []string
	w.Subscribe(func(prev, next *Config) { calls = append(calls, "first:"+next.Tracking.Policy) })
	w.Subscribe(func(prev, next *Config) { calls = append(calls, "second:"+next.Tracking.Policy) })

	if err := w.Reload(); err != nil || len(calls) != 0 {
		t.Fatalf("Reload of an unchanged file = %v, calls %v", err, calls)
	}
	writeFile(t, path, policy("opt-in"))
	if err := w.Reload(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"first:opt-in", "second:opt-in"}; !reflect.DeepEqual(calls, want) {
		t.Errorf("subscriber calls = %v, want %v", calls, want)
	}
	good := w.Current()
	writeFile(t, path, "[upstream]\nconnections = 0\ntls = \"x\"\n")
	err = w.Reload()
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 2 || ps[0].Key != "upstream.tls" || ps[1].Key != "upstream.connections" {
		t.Errorf("Reload(invalid) = %v, want the two problems", err)
	}
	if w.Current() != good {
		t.Error("an invalid reload replaced the config")
	}
	os.Remove(path)
	if err := w.Reload(); err == nil || w.Current() != good {
		t.Errorf("Reload(missing) = %v", err)
	}
	if len(calls) != 2 {
		t.Errorf("subscribers called for failed reloads: %v", calls)
	}
}

func TestNewWatcherInvalid(t *testing.T) {
	isolate(t)
	path := writeFile(t, filepath.Join(t.TempDir(), "pixelrelay.toml"), policy("some"))
	if _, err := NewWatcher(path, nil, nil); err == nil {
		t.Fatal("NewWatcher accepted an invalid file")
	}
	initial := Default()
	w, err := NewWatcher(path, initial, nil)
	if err != nil || w.Current() != initial || w.Path() != path {
		t.Fatalf("NewWatcher(initial) = %v, %v", w, err)
	}
}

func TestWatcherDefaults(t *testing.T) {
	isolate(t)
	w, err := NewWatcher("", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(w.Current(), Default()) {
		t.Error("Current() is not the defaults")
	}
	if err := w.Reload(); err != nil {
		t.Errorf("Reload() = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case err := <-done:
		t.Fatalf("Run returned before cancel: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestWatchMissingDirectory(t *testing.T) {
	isolate(t)
	w, err := NewWatcher(filepath.Join(t.TempDir(), "gone", "c.toml"), Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Run(context.Background()); err == nil {
		t.Error("Run on a missing directory returned nil")
	}
}

// TestWatchSecretFiles: a rotated upstream password file or SMTP user
// hash file is picked up although the config file itself did not change,
// also when the secret is a Kubernetes-style symlink swap.
func TestWatchSecretFiles(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	secrets := filepath.Join(t.TempDir(), "secrets")
	writeFile(t, filepath.Join(secrets, "..v1", "password"), "one\n")
	mustSymlink(t, "..v1", filepath.Join(secrets, "..data"))
	mustSymlink(t, "..data/password", filepath.Join(secrets, "password"))
	writeFile(t, filepath.Join(dir, "alice.hash"), hashAlice+"\n")
	path := writeFile(t, filepath.Join(dir, "pixelrelay.toml"), `
[upstream]
url = "smtp://127.0.0.1:2526"
tls = "none"
username = "u"
password_file = "`+filepath.Join(secrets, "password")+`"
[[smtp.users]]
username = "alice"
password_file = "alice.hash"
`)
	wd := startWatcher(t, path)
	if got := wd.w.Current().Upstream.Password; got != "one" {
		t.Fatalf("password = %q", got)
	}
	expect := func(check func(c change) bool, what string) {
		t.Helper()
		select {
		case c := <-wd.changes:
			if !check(c) {
				t.Fatalf("%s: got change %v", what, Diff(c.prev, c.next))
			}
		case <-time.After(time.Second):
			t.Fatalf("%s: no reload within 1s; log:\n%s", what, wd.log)
		}
	}
	// Kubernetes secret update.
	writeFile(t, filepath.Join(secrets, "..v2", "password"), "two\n")
	mustSymlink(t, "..v2", filepath.Join(secrets, "..tmp"))
	if err := os.Rename(filepath.Join(secrets, "..tmp"), filepath.Join(secrets, "..data")); err != nil {
		t.Fatal(err)
	}
	expect(func(c change) bool {
		return c.prev.Upstream.Password == "one" && c.next.Upstream.Password == "two"
	}, "password swap")
	// In-place rewrite of a user's hash file.
	const hashBob = "$2a$10$abcdefghijklmnopqrstuu5Q9H0GdGGpD1X8vJ2dMBFvUJxIvRqiy"
	writeFile(t, filepath.Join(dir, "alice.hash"), hashBob+"\n")
	expect(func(c change) bool {
		return c.next.SMTP.Users[0].PasswordHash == hashBob && reflect.DeepEqual(Diff(c.prev, c.next), []string{"smtp.users"})
	}, "hash rewrite")
	if strings.Contains(wd.log.String(), "two") || strings.Contains(wd.log.String(), hashBob) {
		t.Errorf("the log shows a secret:\n%s", wd.log)
	}
}

// TestReloadSecret: SIGHUP re-reads secret files even when the config file
// is unchanged.
func TestReloadSecret(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	pw := writeFile(t, filepath.Join(dir, "pw"), "one\n")
	path := writeFile(t, filepath.Join(dir, "c.toml"), "[upstream]\nurl = \"smtp://127.0.0.1:25\"\ntls = \"none\"\nusername = \"u\"\npassword_file = \"pw\"\n")
	w, err := NewWatcher(path, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, pw, "two\n")
	if err := w.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := w.Current().Upstream.Password; got != "two" {
		t.Errorf("password after Reload = %q, want %q", got, "two")
	}
}

// TestWatchCatchesChangeBeforeRun: a change made after the first load but
// before Run set up its watch (no event reports it) is applied when Run
// starts.
func TestWatchCatchesChangeBeforeRun(t *testing.T) {
	t.Parallel()
	path := writeFile(t, filepath.Join(t.TempDir(), "pixelrelay.toml"), policy("all"))
	w, err := NewWatcher(path, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, policy("opt-in"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	<-w.ready
	if got := w.Current().Tracking.Policy; got != "opt-in" {
		t.Fatalf("policy %q after Run started, want the file's opt-in", got)
	}
}
