package cli

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"pixelrelay/tracker/httpd"
	"pixelrelay/tracker/store"
)

func clicksCommand() *command {
	return &command{
		name:    "clicks",
		summary: "clicks on tracked links of one copy (ID), of one recipient (--to), or the most recent",
		help: `Usage: pixelrelay clicks [ID] [--to ADDR] [--since WHEN] [--limit N] [--json] [--config FILE]

Shows who clicked which link, newest first, as "opens" shows opens. With ID
(a tracking id, as "messages" shows it; a click or pixel URL works too) it
shows that copy and each of its clicks with the rule that decided; --to
keeps one recipient's clicks (case-insensitive); with neither, the most
recent clicks. KIND is "human" or "bot:scanner", "bot:prefetch", ...: a
security gateway that follows every link at delivery, a fetch of the hidden
honeypot link (URL "-") or of several links within two seconds is a
machine's. A person's click also counts as an open of the copy (see
"messages").

Flags:
  --to ADDR       only clicks on copies sent to ADDR
  --since WHEN    only clicks since WHEN: an RFC 3339 time, a date
                  (2026-11-22, local midnight) or a duration back (24h, 7d)
  --limit N       at most N clicks (default 100, at most 500)
  --json          print the admin API's JSON instead of a table
  --config FILE   the config file naming the server's address and data_dir

Examples:
  pixelrelay clicks --to bob@example.com --since 7d
  pixelrelay clicks k7q2m4xwah3bdf5a --json
`,
		run: runClicks,
	}
}

func runClicks(e *env, args []string) error {
	fs, cfgPath := newFlags("clicks")
	to := fs.String("to", "", "")
	since := &whenFlag{name: "since", now: e.now}
	fs.Var(since, "since", "")
	limit := &limitFlag{n: defaultLimit}
	fs.Var(limit, "limit", "")
	asJSON := fs.Bool("json", false, "")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("clicks takes one tracking id at most (got %q and %q)", pos[0], pos[1])
	}
	id := ""
	if len(pos) == 1 {
		if id, err = trackingID(pos[0]); err != nil {
			return err
		}
	}
	e.warnCapped(limit)
	c, err := e.connect(*cfgPath)
	if err != nil {
		return err
	}
	q := url.Values{}
	setQuery(q, "id", id)
	setQuery(q, "to", strings.TrimSpace(*to))
	if since.set {
		q.Set("since", since.t.Format(time.RFC3339))
	}
	q.Set("limit", strconv.Itoa(limit.n))
	var resp httpd.ClicksResponse
	body, err := c.getJSON("/api/clicks", q, &resp)
	if ae, ok := errors.AsType[*apiError](err); ok && ae.code == http.StatusNotFound && id != "" {
		return fmt.Errorf("no tracked copy has the id %s (pixelrelay messages lists them)", id)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e.stdout, body)
	}
	if id != "" {
		return e.showCopyClicks(c, id, resp.Clicks, limit.n)
	}
	return e.showClicks(resp.Clicks, limit.n, *to != "" || since.set)
}

// clickKind says how a click was counted: human or bot:TYPE.
func clickKind(c store.Click) string {
	switch {
	case c.Bot && c.BotType != "":
		return "bot:" + c.BotType
	case c.Bot:
		return "bot"
	}
	return "human"
}

// clickURL is the URL column: "-" for the honeypot.
func clickURL(c store.Click) string {
	if c.URL == "" {
		return "-"
	}
	return c.URL
}

// showClicks prints clicks of many copies, each with its copy.
func (e *env) showClicks(clicks []store.Click, limit int, filtered bool) error {
	if len(clicks) == 0 {
		msg := "no clicks yet"
		if filtered {
			msg = "no clicks match"
		}
		_, err := fmt.Fprintln(e.stdout, msg)
		return err
	}
	now := e.now()
	t := &table{
		header: []string{"CLICKED", "KIND", "RECIPIENT", "URL", "ID"},
		flex:   map[int]int{2: 16, 3: 16},
		paint:  kindPainter(e.color, 1),
	}
	for _, c := range clicks {
		t.add(stamp(c.ClickedAt, now), clickKind(c), c.Recipient, clickURL(c), c.TrackingID)
	}
	if _, err := fmt.Fprint(e.stdout, t.render(e.width)); err != nil {
		return err
	}
	e.moreNote(len(clicks), limit, "clicks")
	return nil
}

// showCopyClicks prints one copy, its clicks and a summary line.
func (e *env) showCopyClicks(c *client, id string, clicks []store.Click, limit int) error {
	now := e.now()
	msg := c.message(id)
	if len(clicks) == 0 {
		_, err := fmt.Fprintf(e.stdout, "no clicks yet for %s\n", clean(id))
		return err
	}
	rows := [][]string{{"copy", clean(id)}, {"to", clean(clicks[0].Recipient)}, {"subject", clean(clicks[0].Subject)}}
	fmt.Fprint(e.stdout, renderPlain(rows))
	fmt.Fprintln(e.stdout)
	t := &table{
		header: []string{"CLICKED", "KIND", "IP", "URL", "REASON"},
		flex:   map[int]int{3: 16, 4: 8},
		paint:  kindPainter(e.color, 1),
	}
	for _, k := range clicks {
		kind := clickKind(k)
		if k.First {
			kind += " (first)"
		}
		t.add(stamp(k.ClickedAt, now), kind, k.IP, clickURL(k), k.Reason)
	}
	fmt.Fprint(e.stdout, t.render(e.width))
	fmt.Fprintln(e.stdout)
	_, err := fmt.Fprintln(e.stdout, clickSummary(clicks, msg, now))
	e.moreNote(len(clicks), limit, "clicks")
	return err
}

// clickSummary is the last line of `clicks ID`: totals and the first
// human click, from the copy's record when there is one (the list may be
// cut by --limit).
func clickSummary(clicks []store.Click, msg *store.Message, now time.Time) string {
	total, human := len(clicks), 0
	var first *time.Time
	for _, c := range clicks {
		if !c.Bot {
			human++
			if c.First || first == nil || c.ClickedAt.Before(*first) {
				t := c.ClickedAt
				first = &t
			}
		}
	}
	if msg != nil {
		total, human, first = msg.ClicksTotal, msg.ClicksHuman, msg.FirstHumanClick
	}
	s := fmt.Sprintf("%s, %d human, %d bot", plural(total, "click"), human, total-human)
	if first == nil {
		return s + "; no human click yet"
	}
	return s + "; first human click " + stamp(*first, now)
}
