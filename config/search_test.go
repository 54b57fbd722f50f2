package config

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startSearch starts a Watcher on the search path files, with the config
// Find would take now.
func startSearch(t *testing.T, files []string) *watched {
	t.Helper()
	path := ""
	for _, f := range files {
		if _, err := os.Stat(f); err == nil {
			path = f
			break
		}
	}
	buf := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	initial := Default()
	initial.DataDir = "state"
	w, err := NewWatcher(path, func() *Config {
		if path == "" {
			return initial
		}
		return nil
	}(), log)
	if err != nil {
		t.Fatal(err)
	}
	w.SetSearch(files)
	ch := make(chan change, 16)
	w.Subscribe(func(prev, next *Config) { ch <- change{prev, next} })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v", err)
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

// waitPath waits until the config in force comes from path.
func (wd *watched) waitPath(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); wd.w.Path() != path || wd.w.Current().Path != path; {
		if time.Now().After(deadline) {
			t.Fatalf("config in force from %q (Current().Path %q), want %q; log:\n%s", wd.w.Path(), wd.w.Current().Path, path, wd.log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A config file created after the start, in a directory that did not exist
// either (mkdir -p ~/.config/pixelrelay), is picked up and logged (issue 11).
func TestSearchFileAppears(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	local := filepath.Join(root, "work", "pixelrelay.toml")
	xdg := filepath.Join(root, "home", ".config", "pixelrelay", "config.toml")
	if err := os.MkdirAll(filepath.Join(root, "work"), 0o755); err != nil {
		t.Fatal(err)
	}
	wd := startSearch(t, []string{local, xdg})
	if wd.w.Path() != "" {
		t.Fatalf("path %q at the start, want the defaults", wd.w.Path())
	}
	wd.expectNoChange(t, 150*time.Millisecond)
	if err := os.MkdirAll(filepath.Dir(filepath.Dir(xdg)), 0o755); err != nil { // ~/.config
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)   // one directory at a time, as people do
	writeFile(t, xdg, policy("opt-in")) // makes .../pixelrelay too
	wd.expectPolicy(t, "all", "opt-in")
	wd.waitPath(t, xdg)
	if log := wd.log.String(); !strings.Contains(log, "config file is now "+xdg) || !strings.Contains(log, "was=\"built-in defaults\"") {
		t.Errorf("the new file is not logged:\n%s", log)
	}
	renameOver(t, xdg, policy("all"))
	wd.expectPolicy(t, "opt-in", "all")
}

// A file at a place that takes precedence wins as it appears; when the one
// in use goes, the next one found takes over; when none is left, the last
// settings stay (and Note says so) until a file appears again.
func TestSearchPrecedence(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	local := filepath.Join(root, "pixelrelay.toml")
	xdg := writeFile(t, filepath.Join(root, "xdg", "pixelrelay", "config.toml"), policy("all"))
	wd := startSearch(t, []string{local, xdg})
	wd.waitPath(t, xdg)

	writeFile(t, local, policy("opt-in"))
	wd.expectPolicy(t, "all", "opt-in")
	wd.waitPath(t, local)

	if err := os.Remove(local); err != nil {
		t.Fatal(err)
	}
	wd.expectPolicy(t, "opt-in", "all")
	wd.waitPath(t, xdg)

	if err := os.Remove(xdg); err != nil {
		t.Fatal(err)
	}
	wd.expectNoChange(t, 300*time.Millisecond)
	if wd.w.Path() != xdg || wd.w.Current().Tracking.Policy != "all" {
		t.Errorf("with no file left: path %q policy %q, want the last settings kept", wd.w.Path(), wd.w.Current().Tracking.Policy)
	}
	if n := wd.w.Note(); !strings.Contains(n, xdg+" is gone") {
		t.Errorf("Note() = %q", n)
	}
	if c := strings.Count(wd.log.String(), "config file is gone"); c != 1 {
		t.Errorf("the loss is logged %d times, want once:\n%s", c, wd.log)
	}
	writeFile(t, local, policy("opt-in"))
	wd.expectPolicy(t, "all", "opt-in")
	wd.waitPath(t, local)
	if n := wd.w.Note(); n != "" {
		t.Errorf("Note() = %q after a good file appeared", n)
	}
}

// A new file with problems at a place that takes precedence is logged and
// noted; the settings in force stay until it is fixed.
func TestSearchNewFileInvalid(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	local := filepath.Join(root, "pixelrelay.toml")
	xdg := writeFile(t, filepath.Join(root, "xdg", "config.toml"), policy("all"))
	wd := startSearch(t, []string{local, xdg})
	renameOver(t, local, policy("sometimes"))
	wd.expectNoChange(t, 400*time.Millisecond)
	if wd.w.Path() != xdg {
		t.Errorf("path %q, want %q kept", wd.w.Path(), xdg)
	}
	if n := wd.w.Note(); !strings.Contains(n, local+" has problems") || !strings.Contains(n, "settings of "+xdg+" stay in force") {
		t.Errorf("Note() = %q", n)
	}
	renameOver(t, local, policy("opt-in"))
	wd.expectPolicy(t, "all", "opt-in")
	wd.waitPath(t, local)
}

// SIGHUP (Reload) looks along the search path too.
func TestSearchReload(t *testing.T) {
	isolate(t)
	root := t.TempDir()
	local := filepath.Join(root, "pixelrelay.toml")
	w, err := NewWatcher("", nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	w.SetSearch([]string{local})
	if err := w.Reload(); err != nil || w.Path() != "" {
		t.Fatalf("Reload with no file: %v, path %q", err, w.Path())
	}
	writeFile(t, local, policy("opt-in"))
	if err := w.Reload(); err != nil {
		t.Fatal(err)
	}
	if w.Path() != local || w.Current().Tracking.Policy != "opt-in" {
		t.Errorf("after Reload: path %q policy %q", w.Path(), w.Current().Tracking.Policy)
	}
}

func TestSearchPath(t *testing.T) {
	home := isolate(t)
	dir := t.TempDir()
	t.Chdir(dir)
	if got := SearchPath(""); len(got) != 2 || got[0] != filepath.Join(dir, "pixelrelay.toml") || got[1] != filepath.Join(home, ".config", "pixelrelay", "config.toml") {
		t.Errorf("SearchPath = %q", got)
	}
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "x"))
	if got := SearchPath(""); got[1] != filepath.Join(dir, "x", "pixelrelay", "config.toml") {
		t.Errorf("with XDG_CONFIG_HOME: %q", got)
	}
	t.Setenv(EnvConfig, "~/px.toml")
	if got := SearchPath(""); len(got) != 1 || got[0] != filepath.Join(home, "px.toml") {
		t.Errorf("with $PIXELRELAY_CONFIG: %q", got)
	}
	if got := SearchPath("rel.toml"); len(got) != 1 || got[0] != filepath.Join(dir, "rel.toml") {
		t.Errorf("with --config: %q", got)
	}
}
