package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DebounceDelay is how long the Watcher waits after the last file event
// before it reloads: editors and Kubernetes produce bursts of events.
const DebounceDelay = 100 * time.Millisecond

// Watcher holds the current configuration and replaces it when the config
// file changes (Run) or on request (Reload, e.g. on SIGHUP). A file that
// fails to load or validate is logged with every problem and ignored: the
// last good config stays current.
//
// Components read the config through Current (pass w.Current as a
// func() *Config) so they see a reload at their next use.
type Watcher struct {
	path     string
	log      *slog.Logger
	debounce time.Duration
	cur      atomic.Pointer[Config]

	ready     chan struct{} // closed once Run watches the file (for tests)
	readyOnce sync.Once

	mu       sync.Mutex // serializes reloads and subscriber calls
	lastData []byte     // content of the last reload attempt from Run

	subMu sync.Mutex
	subs  []func(prev, next *Config)
}

// NewWatcher returns a Watcher for the config file at path ("" for the
// built-in defaults, which never change). initial is the current config;
// when nil it is loaded and validated now.
func NewWatcher(path string, initial *Config, log *slog.Logger) (*Watcher, error) {
	if log == nil {
		log = slog.Default()
	}
	if path != "" {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, fmt.Errorf("config file %s: %w", path, err)
		}
		path = abs
	}
	if initial == nil {
		c, err := LoadValid(path)
		if err != nil {
			return nil, err
		}
		initial = c
	}
	w := &Watcher{path: path, log: log, debounce: DebounceDelay, ready: make(chan struct{})}
	w.cur.Store(initial)
	return w, nil
}

// Path is the watched config file ("" for built-in defaults).
func (w *Watcher) Path() string { return w.path }

// Current returns the configuration in force. It is safe for concurrent
// use and never returns nil; the returned Config must not be modified.
func (w *Watcher) Current() *Config { return w.cur.Load() }

// Subscribe registers fn to be called after each successful reload that
// changed something, with the previous and the new config. Subscribers are
// called in the order they subscribed, one at a time, after the new config
// is already current. fn must not call Reload.
func (w *Watcher) Subscribe(fn func(prev, next *Config)) {
	w.subMu.Lock()
	defer w.subMu.Unlock()
	w.subs = append(w.subs, fn)
}

// Reload reads the config file now (the SIGHUP path). When it is valid and
// differs from the current config, it becomes current and subscribers are
// told. When it is invalid, every problem is logged and returned (as
// Problems, or a read error) and the current config stays.
func (w *Watcher) Reload() error {
	if w.path == "" {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	data, err := os.ReadFile(w.path)
	if err != nil {
		w.log.Error("config reload failed; keeping the last good config", "path", w.path, "err", err)
		return fmt.Errorf("config file: %w", err)
	}
	w.lastData = data
	return w.apply(data)
}

// apply parses and validates data and swaps it in. w.mu must be held.
func (w *Watcher) apply(data []byte) error {
	next, err := ParseValid(data, w.path)
	if err != nil {
		var ps Problems
		if errors.As(err, &ps) {
			w.log.Error("config file is invalid; keeping the last good config", "path", w.path, "problems", len(ps))
			for _, p := range ps {
				w.log.Error("config problem", "path", w.path, "key", p.Key, "reason", p.Reason)
			}
		} else {
			w.log.Error("config file is invalid; keeping the last good config", "path", w.path, "err", err)
		}
		return err
	}
	prev := w.cur.Load()
	changed := Diff(prev, next)
	if len(changed) == 0 {
		w.log.Debug("config file changed, but no setting did", "path", w.path)
		return nil
	}
	w.cur.Store(next)
	w.log.Info("config reloaded", "path", w.path, "changed", changed)
	w.subMu.Lock()
	subs := append([]func(prev, next *Config){}, w.subs...)
	w.subMu.Unlock()
	for _, fn := range subs {
		fn(prev, next)
	}
	return nil
}

// Run watches the config file until ctx is done, reloading after changes.
// It watches the file's directory, so it sees editors that write a
// temporary file and rename it over the config, in-place writes, delete and
// re-create, and Kubernetes ConfigMap updates (a ..data symlink swapped to
// a new directory). When the path is a symlink, the directory of its final
// target is watched too, and a change of the target counts as a change.
// With no file (built-in defaults) Run just waits for ctx. It returns nil
// when ctx is done, or an error if the directory cannot be watched.
func (w *Watcher) Run(ctx context.Context) error {
	if w.path == "" {
		w.readyOnce.Do(func() { close(w.ready) })
		<-ctx.Done()
		return nil
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("config watch: %w", err)
	}
	defer fw.Close()
	dir := filepath.Dir(w.path)
	if err := fw.Add(dir); err != nil {
		return fmt.Errorf("config watch %s: %w", dir, err)
	}
	t := &target{fw: fw, dir: dir}
	t.update(resolve(w.path))
	w.readyOnce.Do(func() { close(w.ready) })

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			if w.relevant(ev, t) {
				timer.Reset(w.debounce)
			}
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			w.log.Warn("config watch error", "path", w.path, "err", err)
		case <-timer.C:
			w.reloadFromWatch()
		}
	}
}

// target tracks where the config path finally points and keeps a watch on
// that directory when it is not the config file's own directory.
type target struct {
	fw      *fsnotify.Watcher
	dir     string // the config file's directory (always watched)
	path    string // resolved target ("" when the file is missing)
	watched string // extra watched directory, if any
}

func (t *target) update(resolved string) {
	t.path = resolved
	want := ""
	if resolved != "" && filepath.Dir(resolved) != t.dir {
		want = filepath.Dir(resolved)
	}
	if want == t.watched {
		return
	}
	if t.watched != "" {
		_ = t.fw.Remove(t.watched) // may already be gone with its directory
	}
	t.watched = ""
	if want != "" && t.fw.Add(want) == nil {
		t.watched = want
	}
}

// resolve returns the symlink-free path of p, or "" if it does not exist.
func resolve(p string) string {
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		return ""
	}
	return r
}

// relevant reports whether ev may have changed the config file: it names
// the file or its resolved target, or the target changed (a symlink swap).
func (w *Watcher) relevant(ev fsnotify.Event, t *target) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	name := filepath.Clean(ev.Name)
	hit := name == w.path || (t.path != "" && name == t.path)
	if r := resolve(w.path); r != t.path {
		t.update(r)
		hit = true
	}
	return hit
}

// reloadFromWatch reloads after file events, skipping content that was
// already tried. A missing file is logged and otherwise ignored (it may be
// re-created); an empty file is ignored too, as it is most likely an
// editor's truncate-then-write in progress (SIGHUP applies an empty file).
func (w *Watcher) reloadFromWatch() {
	w.mu.Lock()
	defer w.mu.Unlock()
	data, err := os.ReadFile(w.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		w.log.Warn("config file is gone; keeping the last good config", "path", w.path)
		w.lastData = nil
		return
	case err != nil:
		w.log.Error("config reload failed; keeping the last good config", "path", w.path, "err", err)
		return
	case len(data) == 0:
		w.log.Warn("config file is empty; ignoring it (send SIGHUP to apply it)", "path", w.path)
		return
	case w.lastData != nil && bytes.Equal(data, w.lastData):
		return
	}
	w.lastData = data
	_ = w.apply(data) // problems are logged by apply
}
