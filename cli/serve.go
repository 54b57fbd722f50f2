package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"pixelrelay/config"
	"pixelrelay/metrics"
	"pixelrelay/relay/deliver"
	"pixelrelay/relay/oauth"
	"pixelrelay/relay/queue"
	"pixelrelay/relay/smtpd"
	"pixelrelay/tracker/httpd"
	"pixelrelay/tracker/senders"
	"pixelrelay/tracker/store"
	"pixelrelay/tracker/token"
	"pixelrelay/tracker/webhook"
)

// shutdownGrace bounds how long in-flight SMTP transactions and deliveries
// may take to finish after SIGINT/SIGTERM.
const shutdownGrace = 20 * time.Second

func serveCommand() *command {
	return &command{
		name:    "serve",
		summary: "run the SMTP relay and the HTTP tracker until SIGINT/SIGTERM",
		help: `Usage: pixelrelay serve [--tracker-only] [--config FILE] [--log-format auto|text|json] [--json] [--log-level LEVEL]

Runs the SMTP relay and the HTTP tracker until SIGINT or SIGTERM. The config
file reloads by itself when it changes, and a config file that appears in the
search path (or the one in use disappearing) is picked up too; SIGHUP reloads
at once.

With --tracker-only it runs the tracker's part alone, for a public host
that relays elsewhere (tracker.remote_url) register their copies with:
the pixel, the admin API, the relay API (/relay/) and the database; no
SMTP listener and no queue. Pair a relay with ` + "`pixelrelay keys export`" + `.

Flags:
  --tracker-only       run the tracker alone (a split deployment's public host)
  --config FILE        the config file (default: $PIXELRELAY_CONFIG,
                       ./pixelrelay.toml, $XDG_CONFIG_HOME/pixelrelay/config.toml,
                       else built-in defaults)
  --log-format FORMAT  auto (text on a terminal, JSON otherwise), text or json
  --json               log JSON lines: the same as --log-format json
  --log-level LEVEL    debug, info, warn or error (default info)

Example:
  pixelrelay serve --config ~/.config/pixelrelay/config.toml
`,
		run: runServe,
	}
}

// runServe runs `pixelrelay serve`: the SMTP relay and the HTTP tracker in
// one process until SIGINT/SIGTERM.
func runServe(e *env, args []string) error {
	fs, cfgPath := newFlags("serve")
	logFormat := fs.String("log-format", "auto", "")
	logLevel := fs.String("log-level", "info", "")
	asJSON := fs.Bool("json", false, "")
	trackerOnly := fs.Bool("tracker-only", false, "")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("serve takes no arguments (got %q)", pos[0])
	}
	if *asJSON {
		if *logFormat != "auto" && *logFormat != "json" {
			return usagef("--json and --log-format %s disagree", *logFormat)
		}
		*logFormat = "json"
	}
	log, err := newLogger(e.stderr, *logFormat, *logLevel)
	if err != nil {
		return usagef("%v", err)
	}
	slog.SetDefault(log)
	if err := serve(*cfgPath, *trackerOnly, log); err != nil {
		return errors.New(joinLines(err))
	}
	return nil
}

// newLogger makes the process logger: text on a terminal, JSON otherwise.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: want debug, info, warn or error, got %q", level)
	}
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: durationText}
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = "text"
		}
	}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: want auto, text or json, got %q", format)
}

// durationText writes durations as Go duration strings ("1.5s", "20s") in
// every format: slog's JSON handler would write them as integer
// nanoseconds, which nobody reads at a glance.
func durationText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// joinLines folds a multi-line error (config problems) into one line.
func joinLines(err error) string {
	return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
}

// serve wires the parts together and blocks until a signal. trackerOnly
// runs the tracker's part alone (serveTracker).
func serve(flagPath string, trackerOnly bool, log *slog.Logger) error {
	// Catch signals from the start: a SIGTERM while starting up then stops
	// the server gracefully once it is up, instead of killing it midway.
	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigc)
	path, err := config.Find(flagPath)
	if err != nil {
		return err
	}
	cfg, err := config.LoadValid(path)
	if err != nil {
		return fmt.Errorf("config %s: %w", displayPath(path), err)
	}
	for _, w := range cfg.Warnings() {
		log.Warn("config: "+w.Reason, "key", w.Key)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	keys, err := token.OpenKeyring(cfg.SecretsPath())
	if err != nil {
		return err
	}
	sp, err := newSplit(cfg, keys, trackerOnly, log)
	if err != nil {
		return err
	}
	watcher, err := config.NewWatcher(path, cfg, log)
	if err != nil {
		return err
	}
	// A config file that appears later (or one that takes precedence) is
	// picked up too.
	watcher.SetSearch(config.SearchPath(flagPath))
	current := watcher.Current

	met := metrics.New(Version)
	stOpt := storeOptions(cfg, log)
	sp.storeOptions(&stOpt, current)
	stOpt.OnHit = func(o store.HitOutcome, h *store.Hit) { met.Pixel(o.String(), hitClass(h)) }
	stOpt.OnClick = func(o store.HitOutcome, h *store.ClickHit) { met.Click(o.String(), clickClass(h)) }
	st, err := openStore(cfg, stOpt)
	if err != nil {
		return err
	}
	defer st.Close()
	// Webhook workers stop before the store closes (defers run in reverse).
	hooks := webhook.New(webhookOptions(st, log))
	defer hooks.Close()
	hooks.Apply(webhookConfigs(cfg, log))
	if trackerOnly {
		return serveTracker(path, cfg, watcher, sp, st, hooks, met, sigc, log)
	}

	upstreams := deliver.NewAccounts(current, log)
	defer upstreams.Close()
	sent, err := startSentFolder(cfg.DataDir, current, st, met, log)
	if err != nil {
		return fmt.Errorf("sent folder jobs: %w", err)
	}
	defer sent.Close()
	q, err := queue.New(queue.Options{
		SentFolder:   sent.handOver,
		SentFolderOn: sent.on,
		Dir:          cfg.SpoolDir(),
		Config:       current,
		Upstream:     upstreams.For,
		Recorder:     st,
		Minter:       sp.minter(),
		Links:        sp.linkMinter(),
		Log:          log,
		Metrics:      met,
		NoFsync:      benchNoFsync(log),
		// In-flight deliveries get this long after the SMTP side stopped;
		// what is not done stays spooled for the next start.
		ShutdownTimeout: 10 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("spool %s: %w", cfg.SpoolDir(), err)
	}
	q.Reroute() // messages spooled for an account the config no longer has

	smtpLn, err := net.Listen("tcp", cfg.SMTP.Listen)
	if err != nil {
		return fmt.Errorf("smtp.listen: %w", err)
	}
	httpLn, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		smtpLn.Close()
		return fmt.Errorf("http.listen: %w", err)
	}

	smtpSrv := smtpd.New(current, q, log)
	smtpSrv.Metrics = met
	watchMetrics(met, q, st)
	watchWebhookMetrics(met, hooks)
	submitters := &senders.Set{} // tracking.self_window
	smtpSrv.OnAccepted = func(ip netip.Addr) { submitters.Note(ip, time.Now()) }
	lns := &listeners{
		smtp: binding{key: "smtp.listen", want: cfg.SMTP.Listen, ln: smtpLn, serve: smtpSrv.Serve},
		http: binding{key: "http.listen", want: cfg.HTTP.Listen, ln: httpLn},
		errc: make(chan error, 4),
		log:  log,
	}
	hopt := httpd.Options{
		Config:     current,
		Store:      st,
		Keys:       keys,
		Queue:      q,
		Webhooks:   hooks,
		Version:    Version,
		ConfigNote: watcher.Note,
		SMTPAddr:   lns.smtpAddr,
		Senders:    submitters,
		Log:        log,
		Metrics:    met,
		SentFolder: sent.counts,
	}
	sp.httpOptions(&hopt, st, current)
	hopt.CommitFirst = cfg.StorePostgres() // answered opens and clicks are committed
	web := httpd.New(hopt)
	lns.http.serve = web.Serve

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	dataDir := cfg.DataDir // in use until a restart
	watcher.Subscribe(func(old, new *config.Config) {
		applyReload(old, new, dataDir, lns, st, q, log)
	})
	watcher.Subscribe(func(_, new *config.Config) { hooks.Apply(webhookConfigs(new, log)) })

	go func() { lns.report(watcher.Run(ctx)) }()
	q.Start()
	go watchSignIns(ctx, dataDir, q, log)
	go web.RunPurge(ctx)
	synced := sp.start(ctx)
	// The listeners are bound: say so before the first client is answered.
	logStartup(log, cfg, path, smtpLn.Addr(), httpLn.Addr())
	lns.start()

	err = waitForStop(sigc, lns.errc, watcher, lns, log)
	lns.stop()

	log.Info("shutting down: no new connections; finishing in-flight transactions", "grace", shutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if e := smtpSrv.Shutdown(sctx); e != nil {
		log.Warn("smtp shutdown", "err", e)
	}
	if e := web.Shutdown(sctx); e != nil {
		log.Warn("http shutdown", "err", e)
	}
	stop()
	<-synced
	if e := q.Close(); e != nil {
		log.Warn("queue shutdown", "err", e)
	}
	log.Info("stopped")
	return err
}

// serveErr turns a listener's normal close (Shutdown, or a re-bind closing
// the old listener) into nil.
func serveErr(name string, err error) error {
	if err == nil || errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("%s server: %w", name, err)
}

// waitForStop blocks until SIGINT/SIGTERM or a listener fails; SIGHUP
// reloads the config and retries a listen address that could not be bound.
func waitForStop(sigc <-chan os.Signal, errc <-chan error, w *config.Watcher, lns *listeners, log *slog.Logger) error {
	for {
		select {
		case err := <-errc:
			if err != nil {
				return err
			}
		case sig := <-sigc:
			if sig != syscall.SIGHUP {
				log.Info("signal received", "signal", sig.String())
				return nil
			}
			log.Info("SIGHUP: reloading config")
			if err := w.Reload(); err != nil {
				log.Error("config reload failed; keeping the last good config", "problems", joinLines(err))
			}
			lns.apply(w.Current())
		}
	}
}

// applyReload pushes a new config into the parts that keep state. dataDir
// is the data_dir in use.
func applyReload(old, new *config.Config, dataDir string, lns *listeners, st store.DB, q *queue.Queue, log *slog.Logger) {
	st.SetLimits(new.Tracking.DedupWindow.D(), new.Tracking.IPHourlyLimit)
	if q != nil && (old.Upstream != new.Upstream || !reflect.DeepEqual(old.Named, new.Named)) {
		log.Info("upstream settings changed: retrying deferred copies now")
		q.Reroute()
		q.Kick()
	}
	lns.apply(new)
	if dataDir != new.DataDir {
		log.Warn("data_dir changed; it takes effect after a restart", "data_dir", new.DataDir, "in_use", dataDir)
	}
	restartKeys(old, new, log)
}

// watchSignIns retries the deferred copies at once when `pixelrelay auth
// login` stored a new sign-in (the copies that waited for it).
func watchSignIns(ctx context.Context, dataDir string, q *queue.Queue, log *slog.Logger) {
	err := oauth.WatchSignIns(ctx, dataDir, log, func(account string) {
		log.Info("new OAuth sign-in: retrying deferred copies now", "account", account)
		q.Kick()
	})
	if err != nil {
		log.Warn("cannot watch for OAuth sign-ins; copies that wait for one are retried on their schedule", "err", err)
	}
}

func storeOptions(cfg *config.Config, log *slog.Logger) store.Options {
	return store.Options{
		DedupWindow:   cfg.Tracking.DedupWindow.D(),
		IPHourlyLimit: cfg.Tracking.IPHourlyLimit,
		Log:           log,
	}
}

func displayPath(p string) string {
	if p == "" {
		return "(built-in defaults)"
	}
	return p
}

// logStartup tells a newcomer, in plain words, how to use what just started.
func logStartup(log *slog.Logger, cfg *config.Config, path string, smtpAddr, httpAddr net.Addr) {
	log.Info("pixelrelay is running",
		"version", Version,
		"config", displayPath(path),
		"smtp", smtpAddr.String(),
		"http", httpAddr.String(),
		"upstream", cfg.UpstreamRedacted(),
		"data_dir", cfg.DataDir)
	host, port, _ := net.SplitHostPort(smtpAddr.String())
	log.Info(fmt.Sprintf("point your mail client at SMTP server %s port %s (no TLS needed on loopback), e.g.: swaks --server %s --port %s --to you@example.com --h-Subject hello --body '<html><body>hi</body></html>' --add-header 'Content-Type: text/html'",
		host, port, host, port))
	for _, a := range cfg.Named {
		log.Info("account", "name", a.Name, "upstream", config.RedactURL(a.URL), "senders", a.Senders, "smtp_users", a.SMTPUsers)
	}
	if cfg.Upstream.URL == "outbox" {
		log.Info("upstream is the outbox: every outgoing copy is written as an .eml file under " + cfg.OutboxDir() + "/new (configure [upstream] url to send for real)")
	}
	self := selfCommand()
	log.Info("read opens with: " + self + " opens   (and " + self + " messages --unopened)")
	warnSignIns(log, cfg)
}

// benchNoFsync reports whether PIXELRELAY_BENCH_NO_FSYNC=1 asks for a spool
// without fsync. It exists only so `make bench` can show what durability
// costs (the "passthrough" row); with it a crash can lose acknowledged mail.
func benchNoFsync(log *slog.Logger) bool {
	if os.Getenv("PIXELRELAY_BENCH_NO_FSYNC") != "1" {
		return false
	}
	log.Warn("PIXELRELAY_BENCH_NO_FSYNC=1: the spool is NOT fsynced; a crash can lose acknowledged mail (benchmark only)")
	return true
}
