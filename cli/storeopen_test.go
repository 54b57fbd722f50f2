package cli

import (
	"path/filepath"
	"strings"
	"testing"

	"pixelrelay/config"
	"pixelrelay/tracker/store"
)

// TestOpenStore: "bolt" opens the file in data_dir; a second open of it
// is a one-line "locked" error; a PostgreSQL that cannot be reached is an
// error naming the key, and so is --tracker-only on PostgreSQL.
func TestOpenStore(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	st, err := openStore(cfg, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if s, err := st.Stats(); err != nil || s.Path != filepath.Join(cfg.DataDir, "pixelrelay.db") {
		t.Fatalf("stats %+v, %v", s, err)
	}
	if _, err := openStore(cfg, store.Options{}); err == nil || !strings.Contains(err.Error(), "is locked") {
		t.Errorf("second open: %v", err)
	}
	cfg.Store.URL = "postgres://px@" + closedAddr(t) + "/px?connect_timeout=5"
	if _, err := openStore(cfg, store.Options{}); err == nil || !strings.HasPrefix(err.Error(), "store.url:") {
		t.Errorf("postgres down: %v", err)
	}
	if _, err := openStore(cfg, store.Options{TrackerOnly: true}); err == nil || !strings.Contains(err.Error(), "not supported with store.url=postgres") {
		t.Errorf("postgres --tracker-only: %v", err)
	}
}
