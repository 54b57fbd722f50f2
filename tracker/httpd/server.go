// Package httpd is the HTTP tracker and admin API: the pixel route that
// records opens, /healthz, and the /api/* routes the CLI talks to
// (CONTRACT.md "HTTP routes").
//
// Wiring, in `serve`:
//
//	s := httpd.New(httpd.Options{Config: watcher.Current, Store: st, Keys: keyring,
//		Queue: queue, Version: cli.Version, Log: log})
//	go s.Serve(listener)   // http.listen
//	go s.RunPurge(ctx)     // daily purge at tracking.retention
//	...
//	s.Shutdown(ctx)        // in-flight pixel requests finish and enqueue their opens
//	st.Close()             // then the store commits what is enqueued
//
// The pixel answer never depends on the store: the GIF is written and
// flushed first, then a genuine token's open is classified and handed to the
// store (Enqueue when the store has it, else Record). Config changes (hot
// reload) are picked up per request: trusted proxies, the Apple ranges file
// and the networks file, the prefetch and self windows, and the store's dedup window and per-IP limit (through
// SetLimits when the store has it). A changed http.listen is applied by the
// caller: Serve on the new listener, then close the old one. Serve calls
// share one http.Server, so connections accepted on the old listener keep
// being served and Shutdown waits for them too.
package httpd

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"pixelrelay/config"
	"pixelrelay/metrics"
	"pixelrelay/tracker/classify"
	"pixelrelay/tracker/record"
	"pixelrelay/tracker/senders"
	"pixelrelay/tracker/store"
	"pixelrelay/tracker/ui"
)

// Store is the part of the tracker's store the server uses.
// *store.Store implements it.
type Store interface {
	// Record stores a genuine open, applying dedup and the per-IP limit;
	// recorded is false when it was dropped by either.
	Record(store.Hit) (recorded bool, err error)
	// Copy returns the tracked copy with that id.
	Copy(trackingID string) (record.Copy, bool, error)
	Opens(store.OpenQuery) ([]store.Open, error)
	Messages(store.MessageQuery) ([]store.Message, error)
	Stats() (store.Stats, error)
	// Purge deletes opens older than before and compacts the file.
	Purge(ctx context.Context, before time.Time, progress func(deleted int)) (store.PurgeResult, error)
}

// Keys is the part of the token keyring the server uses.
// *token.Keyring implements it.
type Keys interface {
	// Verify returns the tracking id of a genuine token of any letter case.
	Verify(token string) (trackingID string, ok bool)
	// Rotate makes a new key version current and returns it.
	Rotate() (int, error)
	// Current returns the key version new tokens are made with.
	Current() int
	// AdminKey returns the /api/* bearer key.
	AdminKey() string
}

// Enqueuer is implemented by a Store that can take a hit without waiting for
// its commit (*store.Store does). The pixel handler uses it when present.
type Enqueuer interface {
	Enqueue(store.Hit) error
}

// LimitSetter is implemented by a Store whose dedup window and per-IP limit
// can change at run time (*store.Store does). The server applies
// tracking.dedup_window and tracking.ip_hourly_limit from each new config.
type LimitSetter interface {
	SetLimits(dedup time.Duration, ipHourly int)
}

// Reclassifier is implemented by a Store that can classify its stored
// opens again (*store.Store does); POST /api/reclassify needs it.
type Reclassifier interface {
	Reclassify(ctx context.Context, since time.Time, judge store.Judge) (store.ReclassifyResult, error)
}

// Options configures a Server. Config, Store and Keys are required.
type Options struct {
	// Config returns the config in force (hot reload swaps it).
	Config func() *config.Config
	Store  Store
	Keys   Keys
	// Queue lists the copies waiting in the spool; nil shows an empty queue.
	// When it is also a DamagedCounter, /api/status counts the damaged
	// spool entries it moved aside.
	Queue record.Queue
	// Webhooks answers /api/webhooks and /api/webhooks/test; nil shows no
	// endpoints.
	Webhooks Webhooks
	// Version is what /api/status reports.
	Version string
	// ConfigNote says why the config in force is not what the config file
	// says now (config.Watcher.Note), for /api/status; nil means never.
	ConfigNote func() string
	// SMTPAddr returns the address the SMTP listener is bound to right now
	// (a reload may move it), which /api/status reports; nil, or "" from
	// it, means smtp.listen from the config.
	SMTPAddr func() string
	// Senders holds the addresses that submitted mail through the relay
	// recently (tracking.self_window); nil: no fetch is "self".
	Senders *senders.Set
	// Log receives errors (rate-limited) and purge failures; nil means
	// slog.Default().
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// WaitForRecord makes the pixel handler call Store.Record (wait for the
	// commit) even when the store can Enqueue.
	WaitForRecord bool
	// CommitFirst answers a genuine pixel or click GET only after its open
	// or click is recorded (with a store whose Enqueue waits for the commit, as
	// PostgreSQL's does, a process killed mid-load then loses no answered
	// open); otherwise the pixel is flushed first and recorded after.
	CommitFirst bool
	// Metrics is served at /metrics (admin key required) and counts
	// forged and HEAD pixel and click requests, unknown click links and
	// purges; nil: no /metrics.
	Metrics *metrics.Metrics
	// PurgeDelay is how long RunPurge waits before its first purge
	// (default 1 minute); PurgeEvery is the interval after that (default 24h).
	PurgeDelay time.Duration
	PurgeEvery time.Duration

	// Split deployment (package remote). Relay, on a public tracker,
	// serves the relay API under /relay/ (it authenticates relays itself);
	// AdminRoutes serves the admin API routes this package does not know
	// (/api/relays), after the admin key is checked; Remote, on a relay
	// whose tracker runs elsewhere, is /api/status's "remote".
	Relay       http.Handler
	AdminRoutes http.Handler
	Remote      func() any
	// SentFolder counts the Sent folder jobs for /api/status's
	// "sent_folder"; nil leaves it out.
	SentFolder func() SentFolderCounts
	// KeepUnknown hands genuine tokens of copies the store does not know
	// to it anyway: a public tracker keeps them until the relay registers
	// the copy (store.Options.TrackerOnly).
	KeepUnknown bool
	// Role is "tracker" for a tracker without a relay (serve
	// --tracker-only): /api/status then shows no SMTP listener or upstream.
	Role string
}

// Timeouts and limits of the http.Server that Serve runs.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 15 * time.Second
	WriteTimeout      = 30 * time.Second // /api/purge lifts both for its own request
	IdleTimeout       = 120 * time.Second
	MaxHeaderBytes    = 32 << 10
)

// Server serves the tracker and the admin API.
type Server struct {
	opt Options
	log *slog.Logger
	now func() time.Time
	enq Enqueuer // nil: use Store.Record

	derived    atomic.Pointer[derived] // parsed from the current config
	defaultCfg *config.Config          // used while Options.Config returns nil

	purgeMu sync.Mutex // one purge at a time
	settled settledSet // ids whose copy was delivered long ago
	recent  recentSet  // HEADs and bursts of copies fetched lately

	errs     atomic.Int64 // recording errors since start
	errLogMu sync.Mutex
	errLast  time.Time
	errQuiet int64 // errors not logged since errLast

	// timeouts is the http.Server template Serve copies (tests shorten it).
	timeouts http.Server

	// pixelDone, when set (tests), is called when a pixel request is fully
	// handled: the client may have the pixel before its open is stored.
	pixelDone func()
	// clickDone, when set (tests), is called when a click URL request is
	// fully handled, its click handed to the store.
	clickDone func()

	ui *ui.Handler // the dashboard; nil when the store cannot feed it

	mu     sync.Mutex
	srv    *http.Server
	closed bool
	addr   atomic.Value // string: the address Serve listens on
}

// derived holds what the server computes from one config value.
type derived struct {
	cfg     *config.Config
	trusted []netip.Prefix
	cls     *classify.Classifier
	stamps  [2]fileStamp // of the network files cls was built from
	selfOn  bool         // the self rule applies: a window, smtp.listen off loopback
	checked atomic.Int64 // when they were last looked at (Unix ns)
}

// New returns a Server. It panics when a required option is missing, a
// programming error.
func New(opt Options) *Server {
	if opt.Config == nil || opt.Store == nil || opt.Keys == nil {
		panic("httpd.New: Config, Store and Keys are required")
	}
	s := &Server{opt: opt, log: opt.Log, now: opt.Now, defaultCfg: config.Default()}
	s.timeouts = http.Server{
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if e, ok := opt.Store.(Enqueuer); ok && !opt.WaitForRecord {
		s.enq = e
	}
	s.current()
	if us, ok := opt.Store.(ui.Store); ok {
		s.ui = ui.New(ui.Options{Store: us, AdminKey: opt.Keys.AdminKey, Status: s.uiStatus, Queue: s.queue,
			HTTPS: s.isHTTPS, Log: s.log, Now: s.now})
	}
	return s
}

// current returns the config in force and what is derived from it,
// rebuilding the derived part when the config pointer changed (a reload):
// trusted proxies, the Apple ranges file, the store's dedup and IP limits.
func (s *Server) current() *derived {
	cfg := s.opt.Config()
	if cfg == nil {
		cfg = s.defaultCfg
	}
	if d := s.derived.Load(); d != nil && d.cfg == cfg && !s.filesChanged(d) {
		return d
	}
	d := &derived{cfg: cfg, trusted: cfg.HTTP.TrustedPrefixes(), stamps: stampsOf(cfg), cls: s.classifier(cfg),
		selfOn: cfg.Tracking.SelfWindow > 0 && !config.IsLoopback(cfg.SMTP.Listen)}
	d.checked.Store(s.now().UnixNano())
	if ls, ok := s.opt.Store.(LimitSetter); ok {
		ls.SetLimits(cfg.Tracking.DedupWindow.D(), cfg.Tracking.IPHourlyLimit)
	}
	s.derived.Store(d)
	return d
}

// fileCheckEvery is how often the Apple ranges and networks files are
// looked at for changes: editing them applies without a config reload.
const fileCheckEvery = time.Second

// fileStamp identifies a version of a file.
type fileStamp struct {
	size int64
	mod  time.Time
}

// stampsOf returns the stamps of the config's network files (zero for
// none or unreadable).
func stampsOf(cfg *config.Config) [2]fileStamp {
	var out [2]fileStamp
	for i, path := range []string{cfg.Tracking.AppleRangesFile, cfg.Tracking.NetworksFile} {
		if path == "" {
			continue
		}
		if st, err := os.Stat(path); err == nil {
			out[i] = fileStamp{size: st.Size(), mod: st.ModTime()}
		}
	}
	return out
}

// filesChanged reports, at most once per fileCheckEvery, whether d's
// network files changed since d was made.
func (s *Server) filesChanged(d *derived) bool {
	if d.cfg.Tracking.AppleRangesFile == "" && d.cfg.Tracking.NetworksFile == "" {
		return false
	}
	now := s.now().UnixNano()
	last := d.checked.Load()
	if now-last < int64(fileCheckEvery) || !d.checked.CompareAndSwap(last, now) {
		return false
	}
	if stampsOf(d.cfg) == d.stamps {
		return false
	}
	s.log.Info("network files changed; reloading them", "apple_ranges_file", d.cfg.Tracking.AppleRangesFile, "networks_file", d.cfg.Tracking.NetworksFile)
	return true
}

// classifier builds the classifier of a config: the built-in networks,
// then tracking.apple_ranges_file, then tracking.networks_file. A file that
// cannot be read is logged and left out (config validation reports it too).
func (s *Server) classifier(cfg *config.Config) *classify.Classifier {
	var extra []classify.Network
	if path := cfg.Tracking.AppleRangesFile; path != "" {
		ranges, err := classify.LoadRanges(path)
		if err != nil {
			s.log.Error("apple ranges not loaded; using the built-in table only", "err", err)
		}
		extra = append(extra, classify.AppleNetworks(ranges)...)
	}
	if path := cfg.Tracking.NetworksFile; path != "" {
		nets, err := classify.LoadNetworks(path)
		if err != nil {
			s.log.Error("networks file not loaded; using the built-in table", "err", err)
		}
		extra = append(extra, nets...)
	}
	if len(extra) == 0 {
		return classify.Default()
	}
	return classify.New(extra)
}

// Handler returns the server's routes.
func (s *Server) Handler() http.Handler { return s }

// ServeHTTP routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/o/"):
		s.pixel(w, r)
	case strings.HasPrefix(p, "/c/"):
		s.click(w, r)
	case p == "/healthz":
		if !allow(w, r, http.MethodGet, http.MethodHead) {
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	case p == "/api" || strings.HasPrefix(p, "/api/"):
		s.api(w, r)
	case p == "/metrics":
		s.metrics(w, r)
	case p == "/ui" || strings.HasPrefix(p, "/ui/"):
		if s.ui == nil {
			http.NotFound(w, r)
			return
		}
		s.ui.ServeHTTP(w, r)
	case strings.HasPrefix(p, "/relay/") && s.opt.Relay != nil:
		s.opt.Relay.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

// Serve accepts connections on l until Shutdown. It returns nil after a
// Shutdown, or the error that stopped it (net.ErrClosed, wrapped, when the
// caller closed l). Serve may be called again with another listener, also
// while an earlier call still runs: all of them share one http.Server, and
// /api/status reports the address of the latest.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	if s.srv == nil {
		s.srv = &http.Server{
			Handler:           s,
			ReadHeaderTimeout: s.timeouts.ReadHeaderTimeout,
			ReadTimeout:       s.timeouts.ReadTimeout,
			WriteTimeout:      s.timeouts.WriteTimeout,
			IdleTimeout:       s.timeouts.IdleTimeout,
			MaxHeaderBytes:    s.timeouts.MaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		}
		if s.ui != nil {
			s.srv.RegisterOnShutdown(s.ui.Close) // live streams end, so Shutdown need not wait for them
		}
	}
	srv := s.srv
	s.addr.Store(l.Addr().String())
	s.mu.Unlock()
	err := srv.Serve(pixelListener{l})
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections and waits for in-flight requests
// (and the opens they record) until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Shutdown(ctx)
}

// RecordErrors returns how many opens could not be recorded (store errors)
// since start. The pixel was served for each of them.
func (s *Server) RecordErrors() int64 { return s.errs.Load() }

// recordError counts a recording error and logs it, at most once per
// errLogEvery, with the number of errors that were not logged.
func (s *Server) recordError(err error) {
	s.errs.Add(1)
	s.errLogMu.Lock()
	now := s.now()
	if now.Sub(s.errLast) < errLogEvery {
		s.errQuiet++
		s.errLogMu.Unlock()
		return
	}
	quiet := s.errQuiet
	s.errLast, s.errQuiet = now, 0
	s.errLogMu.Unlock()
	s.log.Error("open not recorded; the pixel was served", "err", err, "suppressed", quiet, "total", s.errs.Load())
}

const errLogEvery = 10 * time.Second
