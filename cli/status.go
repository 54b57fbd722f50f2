package cli

import (
	"fmt"
	"maps"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"pixelrelay/config"
	"pixelrelay/relay/spool"
	"pixelrelay/tracker/httpd"
	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
)

func statusCommand() *command {
	return &command{
		name:    "status",
		summary: "the running server: config file, listeners, upstream, key, queue, database",
		help: `Usage: pixelrelay status [--json] [--config FILE]

Asks the running server what it is doing: its version, the config file it
loaded, where it listens, where copies go, the current tracking key version,
how many copies wait in the queue, and the database's size and counts.
Damaged spool files (moved aside) and opens that were answered but not
stored get a line of their own when there are any.

Flags:
  --json          print the admin API's JSON instead of text
  --config FILE   the config file naming the server's address and data_dir

Example:
  pixelrelay status
`,
		run: runStatus,
	}
}

func runStatus(e *env, args []string) error {
	var st statusResponse
	c, printed, err := getSimple(e, "status", "/api/status", args, &st)
	if err != nil || printed {
		return err
	}
	rows := statusRows(&st.StatusResponse)
	if st.Role == "tracker" {
		rows = trackerOnlyRows(rows)
	}
	rows = append(rows, splitRows(&st, e.now())...)
	if c.config != st.ConfigFile {
		// Worth knowing when the two disagree (a refused key, say).
		mine := c.config
		if mine == "" {
			mine = "none"
		}
		rows[1][1] += " (this command read " + clean(mine) + ")"
	}
	_, err = fmt.Fprint(e.stdout, renderPlain(rows))
	return err
}

func statusRows(st *httpd.StatusResponse) [][]string {
	configFile := st.ConfigFile
	if configFile == "" {
		configFile = "none (built-in defaults)"
	}
	db := st.Database
	dbLine := size(db.SizeBytes)
	if db.SizeBytes > 0 {
		dbLine += fmt.Sprintf(" (%d%% free)", db.FreeBytes*100/db.SizeBytes)
	}
	if db.Path != "" {
		dbLine = db.Path + ", " + dbLine
	}
	rows := [][]string{
		{"version", st.Version},
		{"config file", configFile},
	}
	if st.ConfigProblem != "" {
		rows = append(rows, []string{"config warning", st.ConfigProblem})
	}
	rows = append(rows, [][]string{
		{"data dir", st.DataDir},
		{"smtp listen", st.SMTPListen},
		{"http listen", st.HTTPListen},
		{"upstream", st.Upstream},
		{"tracking key", "version " + strconv.Itoa(st.TrackingKeyVersion)},
		{"queue", queueLine(st.Queue)},
	}...)
	if n := st.Queue[httpd.QueueDamaged]; n > 0 {
		// Spool files the queue could not use: kept for a person to read.
		rows = append(rows, []string{"damaged", fmt.Sprintf("%d (moved aside in %s; see the server log)",
			n, filepath.Join((&config.Config{DataDir: st.DataDir}).SpoolDir(), spool.DamagedDir))})
	}
	rows = append(rows, [][]string{
		{"database", dbLine},
		{"tracked copies", copiesLine(db)},
		{"opens", fmt.Sprintf("%d (%d human, %d bot)", db.Opens, db.OpensHuman, db.Opens-db.OpensHuman)},
		{"clicks", fmt.Sprintf("%d (%d human, %d bot)", db.Clicks, db.ClicksHuman, db.Clicks-db.ClicksHuman)},
	}...)
	if db.Dropped > 0 {
		rows = append(rows, []string{"dropped opens", fmt.Sprintf("%d since start (store errors; see the server log)", db.Dropped)})
	}
	if db.LimiterRefused > 0 {
		rows = append(rows, []string{"refused opens", fmt.Sprintf("%d since start (dedup/per-IP tables full: a flood from many addresses? see the server log)", db.LimiterRefused)})
	}
	if sf := st.SentFolder; sf != nil && (sf.Pending > 0 || sf.Replaced > 0 || sf.Failed > 0) {
		rows = append(rows, []string{"sent folder", fmt.Sprintf("%d pending, %d replaced, %d failed since start",
			sf.Pending, sf.Replaced, sf.Failed)})
	}
	if len(st.Accounts) > 1 {
		for _, a := range st.Accounts {
			rows = append(rows, []string{"account " + a.Name, accountLine(a)})
		}
	}
	for _, h := range st.Webhooks {
		rows = append(rows, []string{"webhook " + h.Name, webhookLine(h)})
	}
	for _, r := range rows {
		r[1] = clean(r[1])
	}
	return rows
}

// accountLine is one account on the status page: "smtp://smtp.example:587
// for @work.example, smtp user bob; oauth; Sent folder on; 2 waiting: 2
// deferred".
func accountLine(a httpd.AccountStatus) string {
	parts := []string{a.Upstream}
	var who []string
	who = append(who, a.Senders...)
	for _, u := range a.SMTPUsers {
		who = append(who, "smtp user "+u)
	}
	if len(who) > 0 {
		parts[0] += " for " + strings.Join(who, ", ")
	} else if a.Name == config.DefaultAccount {
		parts[0] += " for every other sender"
	}
	if a.Auth == "oauth" {
		parts = append(parts, "OAuth")
	}
	parts = append(parts, "Sent folder "+a.SentFolder, "queue "+queueLine(a.Queue))
	return strings.Join(parts, "; ")
}

// copiesLine is the number of tracked copies, and of the untracked ones
// when there are any: "12 (and 3 not tracked)".
func copiesLine(db store.Stats) string {
	s := strconv.Itoa(db.Copies - db.Untracked)
	if db.Untracked > 0 {
		s += fmt.Sprintf(" (and %d not tracked)", db.Untracked)
	}
	return s
}

// queueLine is "3 waiting: 2 queued, 1 deferred" or "empty". Damaged
// entries are not waiting: statusRows shows them on their own line.
func queueLine(q map[string]int) string {
	q = maps.Clone(q)
	delete(q, httpd.QueueDamaged)
	total := 0
	for _, n := range q {
		total += n
	}
	if total == 0 {
		return "empty"
	}
	states := []string{record.StatusQueued, record.StatusDeferred}
	for s := range q {
		if s != record.StatusQueued && s != record.StatusDeferred {
			states = append(states, s)
		}
	}
	sort.Strings(states[2:])
	var parts []string
	for _, s := range states {
		if q[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", q[s], s))
		}
	}
	return fmt.Sprintf("%d waiting: %s", total, strings.Join(parts, ", "))
}

func queueCommand() *command {
	return &command{
		name:    "queue",
		summary: "copies waiting in the spool: next attempt and last error",
		help: `Usage: pixelrelay queue [--json] [--config FILE]

Lists the copies waiting to be delivered (queued, or deferred after a
temporary failure), oldest first as the server gives them, with the number of
attempts, when the next one is due, and the last error.

Flags:
  --json          print the admin API's JSON instead of a table
  --config FILE   the config file naming the server's address and data_dir

Example:
  pixelrelay queue
`,
		run: runQueue,
	}
}

func runQueue(e *env, args []string) error {
	var resp httpd.QueueResponse
	_, printed, err := getSimple(e, "queue", "/api/queue", args, &resp)
	if err != nil || printed {
		return err
	}
	if len(resp.Queue) == 0 {
		_, err := fmt.Fprintln(e.stdout, "the queue is empty")
		return err
	}
	_, err = fmt.Fprint(e.stdout, queueTable(resp.Queue, e.now()).render(e.width))
	return err
}

func queueTable(entries []record.QueueEntry, now time.Time) *table {
	t := &table{
		header: []string{"RECIPIENTS", "STATUS", "ATTEMPTS", "QUEUED", "NEXT ATTEMPT", "LAST ERROR"},
		flex:   map[int]int{0: 16, 5: 12},
	}
	for _, q := range entries {
		next := stamp(q.NextAttempt, now)
		if !q.NextAttempt.IsZero() && !q.NextAttempt.After(now) {
			next = "now"
		}
		lastErr := q.LastError
		if lastErr == "" {
			lastErr = "-"
		}
		t.add(strings.Join(q.Recipients, ", "), q.Status, strconv.Itoa(q.Attempts),
			stamp(q.QueuedAt, now), next, lastErr)
	}
	accounts := make([]string, len(entries))
	for i, q := range entries {
		accounts[i] = q.Account
	}
	t.accountColumn(1, accounts)
	return t
}

// getSimple is the common part of a command that takes only --json and
// --config: parse the arguments, connect, GET path into v. With --json it
// prints the API's body as it came and reports printed.
func getSimple(e *env, name, path string, args []string, v any) (c *client, printed bool, err error) {
	fs, cfgPath := newFlags(name)
	asJSON := fs.Bool("json", false, "")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return nil, false, err
	}
	if err := noArgs(pos); err != nil {
		return nil, false, err
	}
	if c, err = e.connect(*cfgPath); err != nil {
		return nil, false, err
	}
	body, err := c.getJSON(path, nil, v)
	if err != nil {
		return nil, false, err
	}
	if *asJSON {
		return c, true, writeJSON(e.stdout, body)
	}
	return c, false, nil
}
