package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"

	"pixelrelay/config"
	"pixelrelay/metrics"
	"pixelrelay/tracker/httpd"
	"pixelrelay/tracker/store"
	"pixelrelay/tracker/webhook"
)

// serveTracker runs the tracker's part alone (serve --tracker-only): the
// pixel, the admin API, the relay API and the store; no SMTP listener and
// no queue. It blocks until SIGINT/SIGTERM.
func serveTracker(path string, cfg *config.Config, watcher *config.Watcher, sp *split, st store.DB,
	hooks *webhook.Manager, met *metrics.Metrics, sigc <-chan os.Signal, log *slog.Logger) error {
	current := watcher.Current
	httpLn, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http.listen: %w", err)
	}
	lns := &listeners{
		http: binding{key: "http.listen", want: cfg.HTTP.Listen, ln: httpLn},
		errc: make(chan error, 4),
		log:  log,
	}
	hopt := httpd.Options{Config: current, Store: st, Keys: sp.keys, Version: Version, ConfigNote: watcher.Note, Log: log, Metrics: met}
	sp.httpOptions(&hopt, st, current)
	web := httpd.New(hopt)
	lns.http.serve = web.Serve
	watchStoreMetrics(met, st)

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	dataDir := cfg.DataDir
	watcher.Subscribe(func(old, new *config.Config) {
		applyReload(old, new, dataDir, lns, st, nil, log)
	})
	watcher.Subscribe(func(_, new *config.Config) { hooks.Apply(webhookConfigs(new, log)) })
	go func() { lns.report(watcher.Run(ctx)) }()
	go web.RunPurge(ctx)
	log.Info("pixelrelay tracker is running (--tracker-only: no SMTP relay here)",
		"version", Version, "config", displayPath(path), "http", httpLn.Addr().String(),
		"base_url", cfg.Tracking.BaseURL, "data_dir", cfg.DataDir)
	log.Info("pair a relay with: pixelrelay keys export --name NAME --out relay.key   (then `pixelrelay keys import relay.key` on the relay)")
	lns.start()

	err = waitForStop(sigc, lns.errc, watcher, lns, log)
	lns.stop()
	log.Info("shutting down: no new connections; finishing in-flight requests", "grace", shutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	sp.shutdown()
	if e := web.Shutdown(sctx); e != nil {
		log.Warn("http shutdown", "err", e)
	}
	stop()
	log.Info("stopped")
	return err
}

// restartKeys warns about changed keys that take effect only after a
// restart: where the store and the tracker are.
func restartKeys(old, new *config.Config, log *slog.Logger) {
	for _, k := range []struct {
		key      string
		was, now string
	}{
		{"store.url", redactStoreURL(old.Store.URL), redactStoreURL(new.Store.URL)},
		{"tracker.remote_url", old.Tracker.RemoteURL, new.Tracker.RemoteURL},
		{"tracker.remote_key_file", old.Tracker.RemoteKeyFile, new.Tracker.RemoteKeyFile},
	} {
		if k.was != k.now {
			log.Warn(k.key+" changed; it takes effect after a restart", "key", k.key, "in_use", k.was)
		}
	}
}

// redactStoreURL hides a password in store.url.
func redactStoreURL(s string) string {
	c := config.Config{Upstream: config.Upstream{URL: s}}
	return c.UpstreamRedacted()
}
