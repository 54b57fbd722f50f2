package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"pixelrelay/config"
	"pixelrelay/tracker/httpd"
	"pixelrelay/tracker/record"
	"pixelrelay/tracker/remote"
	"pixelrelay/tracker/store"
	"pixelrelay/tracker/store/pg"
	"pixelrelay/tracker/ui"
	"pixelrelay/tracker/webhook"
)

// The store seam: every part of serve takes a store.DB, and these are the
// narrower interfaces its callers declare for themselves.
var (
	_ httpd.Store         = store.DB(nil)
	_ httpd.Enqueuer      = store.DB(nil)
	_ httpd.LimitSetter   = store.DB(nil)
	_ httpd.Reclassifier  = store.DB(nil)
	_ httpd.ClickStore    = store.DB(nil)
	_ httpd.ClickEnqueuer = store.DB(nil)
	_ ui.Store            = store.DB(nil)
	_ remote.TrackerStore = store.DB(nil)
	_ remote.RelayStore   = store.DB(nil)
	_ webhook.Outbox      = store.DB(nil)
	_ record.Recorder     = store.DB(nil)
)

// openStore opens the store store.url names: the embedded bbolt file in
// data_dir ("bolt") or a shared PostgreSQL database (postgres://...).
func openStore(cfg *config.Config, opt store.Options) (store.DB, error) {
	if cfg.StorePostgres() {
		if opt.TrackerOnly {
			return nil, fmt.Errorf("store.url: serve --tracker-only (the split deployment) is not supported with store.url=postgres yet; run serve without it")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, err := pg.Open(ctx, cfg.Store.URL, opt)
		if err != nil {
			return nil, fmt.Errorf("store.url: %w", err)
		}
		return st, nil
	}
	st, err := store.OpenStore(cfg.DBPath(), opt)
	if err == nil {
		return st, nil
	}
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("database %s is locked: is another pixelrelay serve running with data_dir %s?", cfg.DBPath(), cfg.DataDir)
	}
	if errors.Is(err, store.ErrDamaged) {
		return nil, fmt.Errorf("%w; move the file aside (keep it for recovery) to start with an empty database", err)
	}
	return nil, err // the store's errors name the file
}
