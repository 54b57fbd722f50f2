package cli

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"

	"pixelrelay/tracker/httpd"
	"pixelrelay/tracker/store"
)

func reclassifyCommand() *command {
	return &command{
		name:    "reclassify",
		summary: "classify stored opens and clicks again with the current rules and networks",
		help: `Usage: pixelrelay reclassify [--since WHEN] [--json] [--config FILE]

Classifies the stored opens and clicks again with the rules, the built-in
networks, tracking.networks_file and tracking.apple_ranges_file in force in
the running server, and prints the counts per class before and after. A
copy's human-open and human-click counts, first human open and click and
"first" flags follow, so an update of the rules or networks fixes past
numbers (an open a person's click made goes with that click). What was not stored with an open
(request headers, a HEAD before it, the sender's address) is not looked at
again: verdicts that rested on it stay.

Flags:
  --since WHEN    only opens since WHEN: an RFC 3339 time, a date
                  (2026-11-22, midnight UTC) or a duration back (24h, 7d)
  --json          print the admin API's JSON instead of a table
  --config FILE   the config file naming the server's address and data_dir

Example:
  pixelrelay reclassify --since 30d
`,
		run: runReclassify,
	}
}

func runReclassify(e *env, args []string) error {
	fs, cfgPath := newFlags("reclassify")
	since := &whenFlag{name: "since", now: e.now}
	fs.Var(since, "since", "")
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
	if since.set {
		q.Set("since", since.t.Format(time.RFC3339))
	}
	body, err := c.do(http.MethodPost, "/api/reclassify", q, purgeTimeout)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e.stdout, body)
	}
	var r httpd.ReclassifyResponse
	if err := c.decode(body, &r); err != nil {
		return err
	}
	return e.showReclassify(r)
}

// showReclassify prints, for opens and then clicks, a summary line and
// the counts per class.
func (e *env) showReclassify(r httpd.ReclassifyResponse) error {
	if err := e.showReclassified(store.ReclassifyResult(r), "open"); err != nil || r.Clicks == nil || r.Clicks.Examined == 0 {
		return err
	}
	fmt.Fprintln(e.stdout)
	return e.showReclassified(*r.Clicks, "click")
}

// showReclassified prints one summary line and table (what: "open" or
// "click").
func (e *env) showReclassified(r store.ReclassifyResult, what string) error {
	line := fmt.Sprintf("reclassified %s of %s: %d changed class", plural(r.Examined, what), plural(r.Copies, "copy"), r.Changed)
	if r.Copies != 1 {
		line = fmt.Sprintf("reclassified %s of %d copies: %d changed class", plural(r.Examined, what), r.Copies, r.Changed)
	}
	if _, err := fmt.Fprintln(e.stdout, line); err != nil {
		return err
	}
	if r.Examined == 0 {
		return nil
	}
	classes := map[string]bool{}
	for k := range r.Before {
		classes[k] = true
	}
	for k := range r.After {
		classes[k] = true
	}
	names := make([]string, 0, len(classes))
	for k := range classes {
		names = append(names, k)
	}
	sort.Strings(names)
	t := &table{header: []string{"CLASS", "BEFORE", "AFTER"}, paint: kindPainter(e.color, 0)}
	for _, k := range names {
		t.add(k, strconv.Itoa(r.Before[k]), strconv.Itoa(r.After[k]))
	}
	fmt.Fprintln(e.stdout)
	_, err := fmt.Fprint(e.stdout, t.render(e.width))
	return err
}
