package config

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/fsnotify/fsnotify"
)

// watchSet follows a set of files (the config files of the search path,
// then the secret files of the config in force): it keeps a watch on each
// one's directory and on the directory of its resolved symlink target, and
// remembers the targets to notice swaps. A config file whose directory does
// not exist yet (~/.config/pixelrelay before anyone made it) is followed
// through the nearest directory above it that exists, step by step as the
// directories appear.
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

// sync sets the followed files and the watched directories. Files already
// followed keep their last known target, so a symlink swap that happened
// since is still noticed: sync reports it (and the caller reloads).
func (ws *watchSet) sync(configs, secrets []string) (moved bool) {
	known := map[string]string{}
	for _, f := range ws.files {
		known[f.path] = f.target
	}
	var files []watchedFile
	for _, c := range configs {
		files = append(files, watchedFile{path: c})
	}
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
	for _, f := range ws.files {
		dir := filepath.Dir(f.path)
		if !f.secret {
			want[existingDir(dir)] = true
		} else if _, err := os.Stat(dir); err == nil {
			want[dir] = true
		}
		if f.target != "" {
			want[filepath.Dir(f.target)] = true
		}
	}
	delete(want, "")
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

// existingDir is dir when it is a directory, else the nearest directory
// above it that exists ("" when not even the root does).
func existingDir(dir string) string {
	for {
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			return dir
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) {
			return ""
		}
		up := filepath.Dir(dir)
		if up == dir {
			return ""
		}
		dir = up
	}
}

// relevant reports whether ev may have changed a followed file (it names
// the file or its resolved target, a target changed: a symlink swap, or a
// directory on the way to a config file came or went), and whether that
// file is a secret file.
func (ws *watchSet) relevant(ev fsnotify.Event) (hit, secret bool) {
	if ev.Op == fsnotify.Chmod {
		return false, false
	}
	name := filepath.Clean(ev.Name)
	redo := false
	for i := range ws.files {
		f := &ws.files[i]
		h := name == f.path || (f.target != "" && name == f.target)
		if r := resolve(f.path); r != f.target {
			f.target, h, redo = r, true, true
		}
		if !f.secret && within(filepath.Dir(f.path), name) {
			h, redo = true, true
		}
		if h {
			hit = true
			secret = secret || f.secret
		}
	}
	if redo {
		ws.updateDirs()
	}
	return hit, secret
}

// within reports whether dir is name or lies below it.
func within(dir, name string) bool {
	return dir == name || strings.HasPrefix(dir, name+string(filepath.Separator))
}

// resolve returns the symlink-free path of p, or "" if it does not exist.
func resolve(p string) string {
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		return ""
	}
	return r
}
