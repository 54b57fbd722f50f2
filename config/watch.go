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
// With SetSearch it follows the whole search path, as Find reads it: a
// config file that appears where there was none (or at a place that takes
// precedence over the one in use), and the one in use disappearing while
// another is there, make that file the one in force. When the file in use
// disappears and no other is there, its settings stay in force.
//
// Components read the config through Current (pass w.Current as a
// func() *Config) so they see a reload at their next use.
type Watcher struct {
	path     string   // the file named at the start ("" = built-in defaults)
	search   []string // the files Find looks at, first one wins; nil: path only
	log      *slog.Logger
	debounce time.Duration
	cur      atomic.Pointer[Config]
	note     atomic.Pointer[string] // see Note

	ready     chan struct{} // closed once Run watches the file (for tests)
	swapped   chan struct{} // wakes Run to re-sync its watches after a reload
	readyOnce sync.Once

	mu         sync.Mutex // serializes reloads and subscriber calls
	active     string     // the file the config in force came from
	activeCopy atomic.Pointer[string]
	goneSaid   bool   // the file in use is gone, and the log said so
	lastPath   string // the file of the last reload attempt from Run
	lastData   []byte // and its content

	subMu sync.Mutex
	subs  []func(prev, next *Config)
}

// NewWatcher returns a Watcher for the config file at path ("" for the
// built-in defaults, which never change unless SetSearch is used). initial
// is the current config; when nil it is loaded and validated now.
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
	w.setActive(path)
	return w, nil
}

// SetSearch makes the watcher follow every file of a search path (most
// precedence first, as SearchPath gives them) instead of one file; the
// path given to NewWatcher must be the first of them that exists, or "".
// Call it before Run.
func (w *Watcher) SetSearch(files []string) {
	w.search = nil
	for _, f := range files {
		if abs, err := filepath.Abs(f); err == nil {
			w.search = append(w.search, abs)
		}
	}
}

// Path is the file the config in force came from ("" for built-in
// defaults).
func (w *Watcher) Path() string { return *w.activeCopy.Load() }

// setActive records the file the config in force came from. w.mu must be
// held, or w not yet shared.
func (w *Watcher) setActive(path string) {
	w.active = path
	w.activeCopy.Store(&path)
}

// Note says why the config in force is not simply what the config file
// says now: the file is gone, or the file found has problems (the last
// good config stays). It is "" when all is well.
func (w *Watcher) Note() string {
	if n := w.note.Load(); n != nil {
		return *n
	}
	return ""
}

func (w *Watcher) setNote(s string) { w.note.Store(&s) }

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

// files are the config files to follow: the search path, else the file.
func (w *Watcher) files() []string {
	if w.search != nil {
		return w.search
	}
	if w.path != "" {
		return []string{w.path}
	}
	return nil
}

// find is the file to read now: the first of the search path that exists
// ("" when none does), or the file given to NewWatcher.
func (w *Watcher) find() string {
	if w.search == nil {
		return w.path
	}
	for _, f := range w.search {
		if _, err := os.Stat(f); err == nil || !errors.Is(err, fs.ErrNotExist) {
			return f
		}
	}
	return ""
}

// Reload reads the config file now (the SIGHUP path), looking along the
// search path first. When it is valid and differs from the current config,
// it becomes current and subscribers are told. When it is invalid, every
// problem is logged and returned (as Problems, or a read error) and the
// current config stays.
func (w *Watcher) Reload() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	path := w.find()
	if path == "" {
		w.gone()
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		w.log.Error("config reload failed; keeping the last good config", "path", path, "err", err)
		w.setNote(fmt.Sprintf("%s cannot be read (%v); the last good config stays in force", path, unwrapPath(err)))
		return fmt.Errorf("config file: %w", err)
	}
	w.goneSaid = false
	w.lastPath, w.lastData = path, data
	return w.apply(path, data)
}

// apply parses and validates data, read from path, and swaps it in.
// w.mu must be held.
func (w *Watcher) apply(path string, data []byte) error {
	next, err := ParseValid(data, path)
	if err != nil {
		w.logInvalid(path, err)
		return err
	}
	prev := w.cur.Load()
	changed := Diff(prev, next)
	moved := path != w.active
	w.setNote("")
	if len(changed) == 0 && !moved {
		w.log.Debug("config file changed, but no setting did", "path", path)
		return nil
	}
	was := w.active
	w.cur.Store(next)
	w.setActive(path)
	select {
	case w.swapped <- struct{}{}:
	default:
	}
	if moved {
		w.log.Info("config file is now "+path, "path", path, "was", displayName(was), "changed", changed)
	} else {
		w.log.Info("config reloaded", "path", path, "changed", changed)
	}
	if len(changed) == 0 {
		return nil
	}
	w.subMu.Lock()
	subs := append([]func(prev, next *Config){}, w.subs...)
	w.subMu.Unlock()
	for _, fn := range subs {
		fn(prev, next)
	}
	return nil
}

// logInvalid logs every problem of the file at path and notes that the
// last good config stays. w.mu must be held.
func (w *Watcher) logInvalid(path string, err error) {
	var ps Problems
	if errors.As(err, &ps) {
		w.log.Error("config file is invalid; keeping the last good config", "path", path, "problems", len(ps))
		for _, p := range ps {
			w.log.Error("config problem", "path", path, "key", p.Key, "reason", p.Reason)
		}
	} else {
		w.log.Error("config file is invalid; keeping the last good config", "path", path, "err", err)
	}
	inForce := "the last good config"
	if path != w.active {
		inForce = "the settings of " + displayName(w.active)
	}
	w.setNote(fmt.Sprintf("%s has problems (pixelrelay config check lists them); %s stay in force", path, inForce))
}

// gone notes, once, that no config file is to be found while the settings
// of one are in force. w.mu must be held.
func (w *Watcher) gone() {
	w.lastPath, w.lastData = "", nil
	if w.active == "" || w.goneSaid {
		return
	}
	w.goneSaid = true
	w.log.Warn("config file is gone; keeping the last good config until a config file appears or pixelrelay restarts", "path", w.active)
	w.setNote(w.active + " is gone; its settings stay in force until a config file appears or pixelrelay restarts")
}

func displayName(path string) string {
	if path == "" {
		return "built-in defaults"
	}
	return path
}

// Run watches the config files until ctx is done, reloading after changes.
// It watches each file's directory, so it sees editors that write a
// temporary file and rename it over the config, in-place writes, delete and
// re-create, and Kubernetes ConfigMap updates (a ..data symlink swapped to
// a new directory). When a path is a symlink, the directory of its final
// target is watched too, and a change of the target counts as a change.
// With a search path, a directory that does not exist yet is followed
// through the nearest one above it. The secret files the config names
// (upstream.password_file and smtp.users[].password_file) are watched the
// same way, so a rotated password is picked up too. With no file to follow
// (built-in defaults, no search path) Run just waits for ctx. It returns
// nil when ctx is done, or an error if the directory of the one config file
// given (no search path) cannot be watched.
func (w *Watcher) Run(ctx context.Context) error {
	files := w.files()
	if len(files) == 0 {
		w.readyOnce.Do(func() { close(w.ready) })
		<-ctx.Done()
		return nil
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("config watch: %w", err)
	}
	defer fw.Close()
	ws := &watchSet{fw: fw, log: w.log, dirs: map[string]bool{}}
	if w.search == nil {
		dir := filepath.Dir(w.path)
		if err := fw.Add(dir); err != nil {
			return fmt.Errorf("config watch %s: %w", dir, err)
		}
		ws.dirs[dir] = true
	}
	synced := w.Current()
	ws.sync(files, secretFiles(synced))
	w.catchUp()
	w.readyOnce.Do(func() { close(w.ready) })

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	force := false // a secret file changed: reload even if the config did not
	for {
		if cur := w.Current(); cur != synced { // reloaded (here or by Reload)
			synced = cur
			if ws.sync(files, secretFiles(cur)) {
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
			w.log.Warn("config watch error", "err", err)
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
	if c.Upstream.OAuthClientSecretFile != "" {
		files = append(files, c.Upstream.OAuthClientSecretFile)
	}
	for _, a := range c.Named {
		for _, f := range []string{a.PasswordFile, a.OAuthClientSecretFile} {
			if f != "" {
				files = append(files, f)
			}
		}
	}
	for _, w := range c.Webhooks {
		if w.SecretFile != "" {
			files = append(files, w.SecretFile)
		}
	}
	return files
}

// reloadFromWatch reloads after file events, skipping content that was
// already tried unless force is set (a secret file changed). A missing file
// is logged and otherwise ignored (it may be re-created); an empty file is
// ignored too, as it is most likely an editor's truncate-then-write in
// progress (SIGHUP applies an empty file).
func (w *Watcher) reloadFromWatch(force bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	path := w.find()
	if path == "" {
		w.gone()
		return
	}
	data, err := os.ReadFile(path)
	if err == nil {
		w.goneSaid = false
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		w.gone()
		return
	case err != nil:
		w.log.Error("config reload failed; keeping the last good config", "path", path, "err", err)
		w.setNote(fmt.Sprintf("%s cannot be read (%v); the last good config stays in force", path, unwrapPath(err)))
		return
	case len(data) == 0:
		w.log.Warn("config file is empty; ignoring it (send SIGHUP to apply it)", "path", path)
		return
	case !force && path == w.lastPath && bytes.Equal(data, w.lastData):
		return
	}
	w.lastPath, w.lastData = path, data
	_ = w.apply(path, data) // problems are logged by apply
}

// catchUp applies a change made between the first load and the moment the
// watch was set up, which no event reports: an edited file, or one that
// appeared on the search path. An unchanged (or unreadable) file is left
// alone without a word; an invalid one is logged like any reload.
func (w *Watcher) catchUp() {
	w.mu.Lock()
	defer w.mu.Unlock()
	path := w.find()
	if path == "" {
		w.gone()
		return
	}
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 {
		return
	}
	w.lastPath, w.lastData = path, data
	if next, err := ParseValid(data, path); err == nil && path == w.active && len(Diff(w.cur.Load(), next)) == 0 {
		return
	}
	_ = w.apply(path, data)
}
