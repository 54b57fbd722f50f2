package cli

import (
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"time"

	"pixelrelay/config"
	"pixelrelay/tracker/httpd"
)

func keysCommand() *command {
	return &command{
		name:    "keys",
		summary: "rotate tracking keys; pair relays with a public tracker",
		help:    keysHelp,
		run:     runKeys,
	}
}

func runKeys(e *env, args []string) error {
	fs, cfgPath := newFlags("keys")
	asJSON := fs.Bool("json", false, "")
	name := fs.String("name", "relay", "")
	out := fs.String("out", "", "")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("keys needs a subcommand: pixelrelay keys rotate (or export, import, relays, revoke)")
	}
	if pos[0] != "rotate" {
		return runKeysPairing(e, pos[0], pos[1:], *cfgPath, *name, *out, *asJSON)
	}
	if err := noArgs(pos[1:]); err != nil {
		return err
	}
	c, err := e.connect(*cfgPath)
	if err != nil {
		return err
	}
	body, err := c.do(http.MethodPost, "/api/keys/rotate", nil, queryTimeout)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e.stdout, body)
	}
	var r httpd.RotateResponse
	if err := c.decode(body, &r); err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "tracking key version %d is now current; tokens made with older versions keep working\n", r.Version)
	return err
}

func purgeCommand() *command {
	return &command{
		name:    "purge",
		summary: "delete old opens, clicks and delivered copies and compact the database",
		help: `Usage: pixelrelay purge [--older-than DUR] [--json] [--config FILE]

Deletes the opens and clicks older than DUR, and the copies delivered (or
failed) before then with all their opens, clicks and links, from the
running server's database, then compacts the database file (queued or
deferred copies stay). Without --older-than the configured
tracking.retention (default 90d) applies. The server keeps answering pixels
while it purges. Progress goes to stderr; the result to stdout.

Flags:
  --older-than DUR   a Go duration (36h) or a number of days (90d)
  --json             print the admin API's JSON instead of text
  --config FILE      the config file naming the server's address and data_dir

Example:
  pixelrelay purge --older-than 30d
`,
		run: runPurge,
	}
}

// purgeTick is how often purge says it is still working.
var purgeTick = 10 * time.Second

func runPurge(e *env, args []string) error {
	fs, cfgPath := newFlags("purge")
	older := &durFlag{name: "older-than"}
	fs.Var(older, "older-than", "")
	asJSON := fs.Bool("json", false, "")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	c, err := e.connect(*cfgPath)
	if err != nil {
		return err
	}
	q := url.Values{}
	what := "the configured retention"
	if older.set {
		q.Set("older_than", older.d.String())
		what = config.Duration(older.d).String()
	}
	fmt.Fprintf(e.stderr, "pixelrelay: purging opens, clicks and delivered copies older than %s at %s, then compacting the database…\n", what, c.addr)
	start := time.Now()
	stop := e.ticker(start)
	body, err := c.do(http.MethodPost, "/api/purge", q, purgeTimeout)
	stop()
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e.stdout, body)
	}
	var r httpd.PurgeResponse
	if err := c.decode(body, &r); err != nil {
		return err
	}
	_, err = fmt.Fprintln(e.stdout, purgeLine(r))
	return err
}

// ticker prints "still purging" on stderr every purgeTick until stopped.
func (e *env) ticker(start time.Time) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(purgeTick)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				fmt.Fprintf(e.stderr, "pixelrelay: still purging (%s)…\n", now.Sub(start).Round(time.Second))
			}
		}
	}()
	return func() { close(done); <-finished }
}

func purgeLine(r httpd.PurgeResponse) string {
	took := (time.Duration(r.DurationMS) * time.Millisecond).Round(10 * time.Millisecond)
	s := fmt.Sprintf("deleted %s, %s and %s; database %s before, %s after", plural(r.Deleted, "open"),
		plural(r.DeletedClicks, "click"), plural(r.DeletedCopies, "delivered copy record"), size(r.SizeBefore), size(r.SizeAfter))
	if r.Compacted {
		s += " (compacted)"
	}
	return s + fmt.Sprintf("; took %s", took)
}

func versionCommand() *command {
	return &command{
		name:    "version",
		summary: "print the version",
		help: `Usage: pixelrelay version [--json]

Prints pixelrelay's version.

Flags:
  --json          print {"version": ..., "go": ...} instead of text

Example:
  pixelrelay version
`,
		run: runVersion,
	}
}

// VersionResponse is what `version --json` prints.
type VersionResponse struct {
	Version string `json:"version"`
	Go      string `json:"go"` // the Go release it was built with
}

func runVersion(e *env, args []string) error {
	fs, _ := newFlags("version")
	asJSON := fs.Bool("json", false, "")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, VersionResponse{Version: Version, Go: runtime.Version()})
	}
	_, err = fmt.Fprintln(e.stdout, "pixelrelay", Version)
	return err
}
