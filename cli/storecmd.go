package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"pixelrelay/tracker/store"
	"pixelrelay/tracker/store/pg"
)

func storeCommand() *command {
	return &command{
		name:    "store",
		summary: "move the database to a shared PostgreSQL",
		help: `Usage: pixelrelay store migrate --to postgres://USER@HOST/DB [--json] [--config FILE]
       pixelrelay store schema [--json]

Copies the embedded database (data_dir/pixelrelay.db) into a PostgreSQL
database: every copy with its opens, clicks, delivery events and link
URLs, the hourly counts, and the webhook events still waiting and each
endpoint's state. The database's schema is made or upgraded first. It is
safe to run again: copies already there are skipped with everything of
theirs. Stop serve first (it holds the file); then set store.url to the
same URL and start serve. Progress goes to stderr; the counts to stdout.

store schema prints the PostgreSQL schema version this pixelrelay applies
(serve and store migrate apply the versions a database lacks).

Flags:
  --to URL        the PostgreSQL database (as store.url)
  --json          print the counts (or the version) as JSON
  --config FILE   the config file naming data_dir

Example:
  pixelrelay store migrate --to postgres://pixelrelay@db.internal/pixelrelay
`,
		run: runStore,
	}
}

func runStore(e *env, args []string) error {
	fs, cfgPath := newFlags("store")
	to := fs.String("to", "", "")
	asJSON := fs.Bool("json", false, "")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 || (pos[0] != "migrate" && pos[0] != "schema") {
		return usagef("store needs a subcommand: pixelrelay store migrate --to postgres://... (or schema)")
	}
	if err := noArgs(pos[1:]); err != nil {
		return err
	}
	if pos[0] == "schema" {
		if *asJSON {
			return writeValue(e.stdout, map[string]int{"schema_version": pg.SchemaVersion()})
		}
		_, err := fmt.Fprintf(e.stdout, "PostgreSQL schema version %d\n", pg.SchemaVersion())
		return err
	}
	if !strings.HasPrefix(*to, "postgres://") && !strings.HasPrefix(*to, "postgresql://") {
		return usagef("store migrate needs --to postgres://USER@HOST/DB")
	}
	cfg, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	src, err := store.OpenStore(cfg.DBPath(), store.Options{Log: log})
	if errors.Is(err, bolt.ErrTimeout) {
		return fmt.Errorf("database %s is in use: stop pixelrelay serve first", cfg.DBPath())
	}
	if err != nil {
		return err
	}
	defer src.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	dst, err := pg.Open(ctx, *to, store.Options{Log: log})
	if err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	defer dst.Close()
	fmt.Fprintf(e.stderr, "pixelrelay: copying %s into %s…\n", cfg.DBPath(), pg.Redact(*to))
	start, last := time.Now(), time.Now()
	res, err := dst.MoveFrom(ctx, src, func(r pg.MoveResult) {
		if time.Since(last) >= 2*time.Second {
			last = time.Now()
			fmt.Fprintf(e.stderr, "pixelrelay: %d copies copied, %d already there, %d opens, %d clicks so far\n", r.Copies, r.Skipped, r.Opens, r.Clicks)
		}
	})
	if err != nil {
		return err
	}
	if *asJSON {
		return writeValue(e.stdout, res)
	}
	_, err = fmt.Fprintf(e.stdout, "copied %d copies (%d were already there), %d opens, %d clicks, %d delivery events, %d link URLs, %d webhook events in %v\n",
		res.Copies, res.Skipped, res.Opens, res.Clicks, res.Events, res.Links, res.Webhooks, time.Since(start).Round(time.Millisecond))
	return err
}

// writeValue prints v as indented JSON.
func writeValue(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeJSON(w, b)
}
