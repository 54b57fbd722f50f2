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
	"pixelrelay/tracker/token"
)

func opensCommand() *command {
	return &command{
		name:    "opens",
		summary: "opens of one tracked copy (ID), of one recipient (--to), or the most recent",
		help: `Usage: pixelrelay opens [ID] [--to ADDR] [--since WHEN] [--limit N] [--json] [--config FILE]

Shows who opened what, newest first. With ID (a tracking id, as "messages"
shows it; a whole pixel URL or token works too) it shows that copy and each of its opens; --to keeps one
recipient's opens (case-insensitive); with neither, the most recent opens.
KIND says how an open was counted: "human", "proxy:gmail" (a mail provider's
image proxy fetching for a person: counted as human) or "bot:apple_mpp",
"bot:scanner", "bot:prefetch", "bot:self" (machine fetches and the sender's
own views: not counted). With ID, REASON says which rule decided, e.g.
"network: Microsoft Exchange Online Protection 40.107.0.0/16"; if it is
wrong, tracking.networks_file can take a network back and
"pixelrelay reclassify" fixes the stored opens.

Flags:
  --to ADDR       only opens of copies sent to ADDR
  --since WHEN    only opens since WHEN: an RFC 3339 time, a date
                  (2026-11-22, local midnight) or a duration back (24h, 7d)
  --limit N       at most N opens (default 100, at most 500)
  --json          print the admin API's JSON instead of a table
  --config FILE   the config file naming the server's address and data_dir

Examples:
  pixelrelay opens --to bob@example.com --since 7d
  pixelrelay opens k7q2m4xwah3bdf5a --json
`,
		run: runOpens,
	}
}

func runOpens(e *env, args []string) error {
	fs, cfgPath := newFlags("opens")
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
		return usagef("opens takes one tracking id at most (got %q and %q)", pos[0], pos[1])
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
	var resp httpd.OpensResponse
	body, err := c.getJSON("/api/opens", q, &resp)
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
		return e.showCopyOpens(c, id, resp.Opens, limit.n)
	}
	return e.showOpens(resp.Opens, limit.n, *to != "" || since.set)
}

// trackingID reads the ID argument: a tracking id as "messages" shows it,
// in any case; a whole token, pixel URL or click URL is also taken (the
// first token.IDLen characters of a token are the id).
func trackingID(s string) (string, error) {
	id := strings.ToLower(strings.TrimSpace(s))
	if i := strings.LastIndex(id, "/o/"); i >= 0 {
		id = strings.TrimSuffix(id[i+3:], ".gif")
	} else if i := strings.LastIndex(id, "/c/"); i >= 0 {
		id = id[i+3:]
	}
	if len(id) == token.Len || len(id) == token.LinkLen {
		id = id[:token.IDLen]
	}
	if !token.ValidID(id) {
		return "", usagef("%q is not a tracking id (%d letters and digits, as pixelrelay messages shows them)", s, token.IDLen)
	}
	return id, nil
}

func setQuery(q url.Values, key, value string) {
	if value != "" {
		q.Set(key, value)
	}
}

// kind says how an open was counted: human, proxy:NAME or bot:TYPE.
func kind(o store.Open) string {
	switch {
	case o.Bot && o.BotType != "":
		return "bot:" + o.BotType
	case o.Bot:
		return "bot"
	case o.Proxy != "":
		return "proxy:" + o.Proxy
	}
	return "human"
}

// showOpens prints opens of many copies, each with its copy.
func (e *env) showOpens(opens []store.Open, limit int, filtered bool) error {
	if len(opens) == 0 {
		if filtered {
			_, err := fmt.Fprintln(e.stdout, "no opens match")
			return err
		}
		_, err := fmt.Fprintln(e.stdout, "no opens yet")
		return err
	}
	now := e.now()
	t := &table{
		header: []string{"OPENED", "KIND", "RECIPIENT", "SUBJECT", "ID"},
		flex:   map[int]int{2: 16, 3: 12},
		paint:  kindPainter(e.color, 1),
	}
	for _, o := range opens {
		t.add(stamp(o.OpenedAt, now), kind(o), o.Recipient, o.Subject, o.TrackingID)
	}
	if _, err := fmt.Fprint(e.stdout, t.render(e.width)); err != nil {
		return err
	}
	e.moreNote(len(opens), limit, "opens")
	return nil
}

// moreNote tells on stderr that a list may have been cut at --limit.
func (e *env) moreNote(n, limit int, what string) {
	if n >= limit {
		if limit < maxLimit {
			e.note("showing the newest %d %s; --limit N shows more (up to %d)", n, what, maxLimit)
		} else {
			e.note("showing the newest %d %s; --since narrows the list", n, what)
		}
	}
}

// showCopyOpens prints one copy, its opens and a summary line.
func (e *env) showCopyOpens(c *client, id string, opens []store.Open, limit int) error {
	now := e.now()
	msg := c.message(id)
	if len(opens) == 0 && msg == nil {
		_, err := fmt.Fprintf(e.stdout, "no opens yet for %s\n", clean(id))
		return err
	}
	fmt.Fprint(e.stdout, renderPlain(copyRows(id, opens, msg, now)))
	fmt.Fprintln(e.stdout)
	if len(opens) == 0 {
		_, err := fmt.Fprintf(e.stdout, "no opens yet for %s\n", clean(id))
		return err
	}
	t := &table{
		header: []string{"OPENED", "KIND", "IP", "REASON", "USER AGENT"},
		flex:   map[int]int{3: 8, 4: 5},
		paint:  kindPainter(e.color, 1),
	}
	for _, o := range opens {
		k := kind(o)
		if o.First {
			k += " (first)"
		}
		reason := o.Reason
		if reason == "" {
			reason = "-" // stored before reasons were
		}
		t.add(stamp(o.OpenedAt, now), k, o.IP, reason, o.UserAgent)
	}
	fmt.Fprint(e.stdout, t.render(e.width))
	fmt.Fprintln(e.stdout)
	_, err := fmt.Fprintln(e.stdout, summary(opens, msg, now))
	e.moreNote(len(opens), limit, "opens")
	return err
}

// copyRows describes the copy: from its message record when the server
// has one for this id, else from what its opens carry.
func copyRows(id string, opens []store.Open, msg *store.Message, now time.Time) [][]string {
	var rcpt, subject string
	var sent *time.Time
	if msg != nil {
		rcpt, subject, sent = msg.Recipient, msg.Subject, msg.SentAt
	} else {
		o := opens[0]
		rcpt, subject, sent = o.Recipient, o.Subject, o.SentAt
	}
	rows := [][]string{
		{"copy", clean(id)},
		{"to", clean(rcpt)},
		{"subject", clean(subject)},
		{"sent", stampPtr(sent, now, "not yet")},
	}
	if msg != nil {
		status := msg.Status
		if msg.LastError != "" {
			status += " (" + msg.LastError + ")"
		}
		rows = append(rows, []string{"status", clean(status)})
	}
	return rows
}

// summary is the last line of `opens ID`: totals and the first human open.
// The message record's counts are complete; the opens may be cut by
// --limit, so they are used only when there is no record.
func summary(opens []store.Open, msg *store.Message, now time.Time) string {
	total, human := 0, 0
	var first *time.Time
	if msg != nil {
		total, human, first = msg.OpensTotal, msg.OpensHuman, msg.FirstHumanOpen
	} else {
		total = len(opens)
		for _, o := range opens {
			if !o.Bot {
				human++
			}
		}
		first = firstHuman(opens)
	}
	s := fmt.Sprintf("%s, %d human, %d bot", plural(total, "open"), human, total-human)
	if first == nil {
		return s + "; no human open yet"
	}
	return s + "; first human open " + stamp(*first, now)
}

// firstHuman is the open marked first, else the earliest human one.
func firstHuman(opens []store.Open) *time.Time {
	var first *time.Time
	for _, o := range opens {
		if o.First {
			t := o.OpenedAt
			return &t
		}
		if !o.Bot && (first == nil || o.OpenedAt.Before(*first)) {
			t := o.OpenedAt
			first = &t
		}
	}
	return first
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// message fetches the copy's record, if the server can select by id
// (GET /api/messages?id=). A server that ignores id answers with other
// copies; those are not taken. Errors just mean no record.
func (c *client) message(id string) *store.Message {
	var resp httpd.MessagesResponse
	if _, err := c.getJSON("/api/messages", url.Values{"id": {id}, "limit": {"1"}}, &resp); err != nil {
		return nil
	}
	for i := range resp.Messages {
		if resp.Messages[i].TrackingID == id {
			return &resp.Messages[i]
		}
	}
	return nil
}
