package cli

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"pixelrelay/tracker/httpd"
	"pixelrelay/tracker/store"
)

func messagesCommand() *command {
	return &command{
		name:    "messages",
		summary: "copies sent, tracked or not, with delivery status, open and click counts",
		help: `Usage: pixelrelay messages [--to ADDR] [--since WHEN] [--unopened] [--limit N] [--json] [--config FILE]

Lists every recipient's copy, newest first, with its delivery status, its
opens (HUMAN counts people, including mail providers' image proxies; OPENS
counts every fetch, bots too), the first human open and CLICKS, the
people's clicks on its links (a person's click also counts as a human open
when the pixel never loaded). The ID column is
what "pixelrelay opens ID" takes. A copy without a pixel says why in place
of its first open ("not tracked: no HTML part", "excluded", "sender",
"signed", "dkim", ...) and has no ID.

Flags:
  --to ADDR       only copies sent to ADDR (case-insensitive)
  --since WHEN    only copies since WHEN: an RFC 3339 time, a date
                  (2026-11-22, local midnight) or a duration back (24h, 7d)
  --unopened      only tracked copies nobody has opened yet (no human open)
  --limit N       at most N copies (default 100, at most 500)
  --json          print the admin API's JSON instead of a table
  --config FILE   the config file naming the server's address and data_dir

Example: who has not opened what I sent in the last three days?
  pixelrelay messages --unopened --since 3d
`,
		run: runMessages,
	}
}

func runMessages(e *env, args []string) error {
	fs, cfgPath := newFlags("messages")
	to := fs.String("to", "", "")
	since := &whenFlag{name: "since", now: e.now}
	fs.Var(since, "since", "")
	unopened := fs.Bool("unopened", false, "")
	limit := &limitFlag{n: defaultLimit}
	fs.Var(limit, "limit", "")
	asJSON := fs.Bool("json", false, "")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	e.warnCapped(limit)
	c, err := e.connect(*cfgPath)
	if err != nil {
		return err
	}
	q := url.Values{}
	setQuery(q, "to", strings.TrimSpace(*to))
	if since.set {
		q.Set("since", since.t.Format(time.RFC3339))
	}
	if *unopened {
		q.Set("unopened", "true")
	}
	q.Set("limit", strconv.Itoa(limit.n))
	var resp httpd.MessagesResponse
	body, err := c.getJSON("/api/messages", q, &resp)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e.stdout, body)
	}
	if len(resp.Messages) == 0 {
		msg := "no messages yet"
		switch {
		case *unopened:
			msg = "no unopened messages"
		case *to != "" || since.set:
			msg = "no messages match"
		}
		_, err := fmt.Fprintln(e.stdout, msg)
		return err
	}
	_, err = fmt.Fprint(e.stdout, messagesTable(resp.Messages, e.now()).render(e.width))
	e.moreNote(len(resp.Messages), limit.n, "messages")
	return err
}

func messagesTable(msgs []store.Message, now time.Time) *table {
	t := &table{
		header: []string{"SENT", "RECIPIENT", "SUBJECT", "STATUS", "HUMAN", "OPENS", "FIRST HUMAN OPEN", "CLICKS", "ID"},
		flex:   map[int]int{1: 16, 2: 12},
	}
	for _, m := range msgs {
		if !m.Tracked {
			t.add(stampPtr(m.SentAt, now, "-"), m.Recipient, m.Subject, m.Status,
				"-", "-", "not tracked: "+m.UntrackedReason, "-", "-")
			continue
		}
		t.add(stampPtr(m.SentAt, now, "-"), m.Recipient, m.Subject, m.Status,
			strconv.Itoa(m.OpensHuman), strconv.Itoa(m.OpensTotal),
			stampPtr(m.FirstHumanOpen, now, "-"), strconv.Itoa(m.ClicksHuman), m.TrackingID)
	}
	sentFolderColumn(t, msgs)
	accounts := make([]string, len(msgs))
	for i, m := range msgs {
		accounts[i] = m.Account
	}
	t.accountColumn(2, accounts)
	return t
}

// sentFolderColumn adds SENT FOLDER before ID when a listed message's
// account has the Sent folder on ("pending", "replaced", "failed: ...").
func sentFolderColumn(t *table, msgs []store.Message) {
	values := make([]string, len(msgs))
	on := false
	for i, m := range msgs {
		values[i] = m.SentFolder
		switch m.SentFolder {
		case "", "off":
			values[i] = "-"
		default:
			on = true
		}
	}
	if on {
		t.insertColumn(len(t.header)-1, "SENT FOLDER", values)
	}
}
