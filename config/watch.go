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
	swapped   chan struct{} // wakes Run to re-sync its watches after a reload
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
	w := &Watcher{path: path, log: log, debounce: DebounceDelay,
		ready: make(chan struct{}), swapped: make(chan struct{}, 1)}
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
	select {
	case w.swapped <- struct{}{}:
	default:
	}
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
// The secret files the config names (upstream.password_file and
// smtp.users[].password_file) are watched the same way, so a rotated
// password is picked up too. With no file (built-in defaults) Run just
// waits for ctx. It returns nil when ctx is done, or an error if the
// config file's directory cannot be watched.
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
	if err := fw.Add(filepath.Dir(w.path)); err != nil {
		return fmt.Errorf("config watch %s: %w", filepath.Dir(w.path), err)
	}
	ws := &watchSet{fw: fw, log: w.log, dirs: map[string]bool{filepath.Dir(w.path): true}}
	synced := w.Current()
	ws.sync(w.path, secretFiles(synced))
	w.catchUp()
	w.readyOnce.Do(func() { close(w.ready) })

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	force := false // a secret file changed: reload even if the config did not
	for {
		if cur := w.Current(); cur != synced { // reloaded (here or by Reload)
			synced = cur
			if ws.sync(w.path, secretFiles(cur)) {
				force = true
				timer.Reset(w.debounce)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			if hit, secret := ws.relevant(ev); hit {
				force = force || secret
				timer.Reset(w.debounce)
			}
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			w.log.Warn("config watch error", "path", w.path, "err", err)
		case <-w.swapped:
		case <-timer.C:
			w.reloadFromWatch(force)
			force = false
		}
	}
}

// secretFiles lists the secret files c was loaded from.
func secretFiles(c *Config) []string {
	var files []string
	if c.Upstream.PasswordFile != "" && os.Getenv(EnvUpstreamPassword) == "" {
		files = append(files, c.Upstream.PasswordFile)
	}
	for _, u := range c.SMTP.Users {
		if u.PasswordFile != "" {
			files = append(files, u.PasswordFile)
		}
	}
	return files
}

// watchSet follows a set of files (the config file first, then secret
// files): it keeps a watch on each one's directory and on the directory of
// its resolved symlink target, and remembers the targets to notice swaps.
type watchSet struct {
	fw    *fsnotify.Watcher
	log   *slog.Logger
	files []watchedFile
	dirs  map[string]bool // watched directories
}

type watchedFile struct {
	path   string // as configured (absolute)
	target string // symlink-free path, "" when missing
	secret bool
}

// sync sets the followed files and the watched directories; the config
// file's own directory stays watched. Files already followed keep their
// last known target, so a symlink swap that happened since is still
// noticed: sync reports it (and the caller reloads).
func (ws *watchSet) sync(config string, secrets []string) (moved bool) {
	known := map[string]string{}
	for _, f := range ws.files {
		known[f.path] = f.target
	}
	files := []watchedFile{{path: config}}
	for _, s := range secrets {
		files = append(files, watchedFile{path: s, secret: true})
	}
	for i := range files {
		f := &files[i]
		now := resolve(f.path)
		if old, ok := known[f.path]; ok && old != now {
			moved = true
		}
		f.target = now
	}
	ws.files = files
	ws.updateDirs()
	return moved
}

func (ws *watchSet) updateDirs() {
	want := map[string]bool{}
	for i, f := range ws.files {
		if i == 0 {
			want[filepath.Dir(f.path)] = true
		} else if _, err := os.Stat(filepath.Dir(f.path)); err == nil {
			want[filepath.Dir(f.path)] = true
		}
		if f.target != "" {
			want[filepath.Dir(f.target)] = true
		}
	}
	for d := range ws.dirs {
		if !want[d] {
			_ = ws.fw.Remove(d) // may already be gone with the directory
			delete(ws.dirs, d)
		}
	}
	for d := range want {
		if ws.dirs[d] {
			continue
		}
		if err := ws.fw.Add(d); err != nil {
			ws.log.Warn("config watch: cannot watch directory", "dir", d, "err", err)
			continue
		}
		ws.dirs[d] = true
	}
}

// relevant reports whether ev may have changed a followed file (it names
// the file or its resolved target, or a target changed: a symlink swap),
// and whether that file is a secret file.
func (ws *watchSet) relevant(ev fsnotify.Event) (hit, secret bool) {
	if ev.Op == fsnotify.Chmod {
		return false, false
	}
	name := filepath.Clean(ev.Name)
	moved := false
	for i := range ws.files {
		f := &ws.files[i]
		h := name == f.path || (f.target != "" && name == f.target)
		if r := resolve(f.path); r != f.target {
			f.target, h, moved = r, true, true
		}
		if h {
			hit = true
			secret = secret || f.secret
		}
	}
	if moved {
		ws.updateDirs()
	}
	return hit, secret
}

// resolve returns the symlink-free path of p, or "" if it does not exist.
func resolve(p string) string {
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		return ""
	}
	return r
}

// reloadFromWatch reloads after file events, skipping config content that
// was already tried unless force is set (a secret file changed). A missing file is logged and otherwise ignored (it may be
// re-created); an empty file is ignored too, as it is most likely an
// editor's truncate-then-write in progress (SIGHUP applies an empty file).
func (w *Watcher) reloadFromWatch(force bool) {
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
	case !force && w.lastData != nil && bytes.Equal(data, w.lastData):
		return
	}
	w.lastData = data
	_ = w.apply(data) // problems are logged by apply
}

// catchUp applies a change made to the file between the first load and the
// moment the watch was set up, which no event reports. An unchanged (or
// unreadable) file is left alone without a word; an invalid one is logged
// like any reload.
func (w *Watcher) catchUp() {
	w.mu.Lock()
	defer w.mu.Unlock()
	data, err := os.ReadFile(w.path)
	if err != nil || len(data) == 0 {
		return
	}
	w.lastData = data
	if next, err := ParseValid(data, w.path); err == nil && len(Diff(w.cur.Load(), next)) == 0 {
		return
	}
	_ = w.apply(data)
}
