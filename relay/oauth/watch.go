package oauth

import (
	"context"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// WatchSignIns calls signedIn with the account's name whenever Login (in
// any process: `pixelrelay auth login`) stores a new sign-in in dataDir,
// until ctx ends. serve retries the copies that waited for it at once.
// Refresh tokens a refresh rotated are not sign-ins.
func WatchSignIns(ctx context.Context, dataDir string, log *slog.Logger, signedIn func(account string)) error {
	d := dir(dataDir)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return err
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer fw.Close()
	if err := fw.Add(d); err != nil {
		return err
	}
	seen := map[string]time.Time{} // account -> its last sign-in seen
	// newSignIn reports whether file holds a sign-in not seen yet.
	newSignIn := func(file string) (string, bool) {
		account, ok := accountOf(filepath.Base(file))
		if !ok {
			return "", false
		}
		st, err := readToken(dataDir, account)
		if err != nil || st.From != "login" || !st.SavedAt.After(seen[account]) {
			return "", false
		}
		seen[account] = st.SavedAt
		return account, true
	}
	entries, _ := os.ReadDir(d)
	for _, e := range entries {
		newSignIn(e.Name())
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			if account, ok := newSignIn(ev.Name); ok {
				signedIn(account)
			}
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			log.Warn("watching the OAuth sign-ins", "err", err)
		}
	}
}

// accountOf is the account of a token file's name.
func accountOf(name string) (string, bool) {
	esc, ok := strings.CutPrefix(name, "token-")
	if !ok {
		return "", false
	}
	esc, ok = strings.CutSuffix(esc, ".json")
	if !ok {
		return "", false
	}
	account, err := url.PathUnescape(esc)
	return account, err == nil && account != ""
}
