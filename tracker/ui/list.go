package ui

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
)

// The sent copies: the dashboard's front page.

// listView is the list page.
type listView struct {
	Filter string // store.Filter*
	Days   int    // "no human open in N days"
	Query  string
	In     string // requested search mode
	Tabs   []tab
	Days3  []tab // the day choices of the unopened filter

	Rows      []rowView
	Older     string // URL of the next (older) page, "" at the end
	Newest    string // URL of the first page, when this is not it
	ScannedTo time.Time
	TooMany   bool
	SearchIn  string // the mode the search used
	OtherMode string // URL of the same search in the other mode
	Week      weekView
	SMTP      string // where to point a mail client (the empty state)
}

type tab struct {
	Label  string
	URL    string
	Active bool
}

// weekView sums the last 7 days and the queue.
type weekView struct {
	Sent, FirstOpens, OpensHuman, OpensMachine int
	ClicksHuman, ClicksMachine                 int
	Waiting, Deferred                          int
}

// listParams are the list's query parameters, checked.
type listParams struct {
	filter, q, in string
	days          int
	before        *store.Cursor
}

func parseListParams(v url.Values) (listParams, string) {
	p := listParams{filter: v.Get("f"), q: strings.TrimSpace(v.Get("q")), in: v.Get("in")}
	switch p.filter {
	case store.FilterAll, store.FilterOpened, store.FilterClicked, store.FilterUnopened, store.FilterPending, store.FilterFailed, store.FilterUntracked:
	default:
		return p, "f: want opened, clicked, unopened, pending, failed or untracked"
	}
	switch p.in {
	case "", store.SearchRecipient, store.SearchText:
	default:
		return p, "in: want rcpt or text"
	}
	if len(p.q) > 200 {
		return p, "q: at most 200 characters"
	}
	if d := v.Get("days"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 || n > 3650 {
			return p, "days: want a whole number of days from 0 to 3650"
		}
		p.days = n
	}
	if b := v.Get("before"); b != "" {
		c, err := store.ParseCursor(b)
		if err != nil {
			return p, "before: not a position in the list (follow the Older link)"
		}
		p.before = &c
	}
	return p, ""
}

// url is the list's URL with p's parameters.
func (p listParams) url() string {
	v := url.Values{}
	if p.filter != "" {
		v.Set("f", p.filter)
	}
	if p.filter == store.FilterUnopened {
		v.Set("days", strconv.Itoa(p.days))
	}
	if p.q != "" {
		v.Set("q", p.q)
	}
	if p.in != "" {
		v.Set("in", p.in)
	}
	if p.before != nil {
		v.Set("before", p.before.String())
	}
	if len(v) == 0 {
		return "/ui/"
	}
	return "/ui/?" + v.Encode()
}

// listPageSize is how many copies a page shows.
const listPageSize = 50

func (c *call) list() {
	p, bad := parseListParams(c.r.URL.Query())
	if bad != "" {
		c.h.fail(c.w, c.r, http.StatusBadRequest, bad)
		return
	}
	q := store.ListQuery{Filter: p.filter, Search: p.q, SearchIn: p.in, Before: p.before, Limit: listPageSize}
	if p.filter == store.FilterUnopened {
		q.QueuedBefore = c.h.now().Add(-time.Duration(p.days) * 24 * time.Hour)
	}
	page, err := c.h.opt.Store.List(q)
	if err != nil {
		c.internal("the list of sent copies", err)
		return
	}
	v := &listView{Filter: p.filter, Days: p.days, Query: p.q, In: p.in, ScannedTo: page.ScannedTo,
		TooMany: page.TooMany, SearchIn: page.SearchIn, Tabs: listTabs(p), Days3: dayTabs(p)}
	for _, m := range page.Messages {
		v.Rows = append(v.Rows, rowOf(m))
	}
	if page.Next != nil {
		older := p
		older.before = page.Next
		v.Older = older.url()
	}
	if p.before != nil {
		first := p
		first.before = nil
		v.Newest = first.url()
	}
	if p.q != "" {
		other := p
		other.before = nil
		other.in = store.SearchText
		if page.SearchIn == store.SearchText {
			other.in = store.SearchRecipient
		}
		v.OtherMode = other.url()
	}
	v.Week = c.week()
	if len(v.Rows) == 0 && p.q == "" && p.filter == "" {
		if st, err := c.h.opt.Status(); err == nil { // the empty state says where to send
			v.SMTP = st.SMTPListen
		}
	}
	c.h.render(c.w, c.r, http.StatusOK, "list", &pageData{Title: "Sent", Nav: "sent", CSRF: c.sess.csrf, Live: true, List: v})
}

func listTabs(p listParams) []tab {
	var tabs []tab
	for _, f := range []struct{ filter, label string }{
		{store.FilterAll, "All"}, {store.FilterOpened, "Opened"}, {store.FilterClicked, "Clicked"}, {store.FilterUnopened, "Not opened"},
		{store.FilterPending, "Waiting"}, {store.FilterFailed, "Bounced"}, {store.FilterUntracked, "Not tracked"},
	} {
		t := p
		t.filter, t.before = f.filter, nil
		tabs = append(tabs, tab{Label: f.label, URL: t.url(), Active: p.filter == f.filter})
	}
	return tabs
}

// dayTabs are the choices of "no human open in N days".
func dayTabs(p listParams) []tab {
	var tabs []tab
	for _, d := range []int{0, 1, 3, 7, 14, 30} {
		t := p
		t.filter, t.days, t.before = store.FilterUnopened, d, nil
		label := "in " + strconv.Itoa(d) + " days"
		switch d {
		case 0:
			label = "yet"
		case 1:
			label = "in 1 day"
		}
		tabs = append(tabs, tab{Label: label, URL: t.url(), Active: p.days == d})
	}
	return tabs
}

// week sums the last seven days' activity and counts the queue.
func (c *call) week() weekView {
	var w weekView
	now := c.h.now()
	acts, err := c.h.opt.Store.ActivityBetween(now.Add(-7*24*time.Hour), now.Add(time.Hour))
	if err != nil {
		c.h.log.Error("dashboard: activity", "err", err)
	}
	for _, a := range acts {
		w.Sent += a.Sent
		w.FirstOpens += a.FirstHuman
		w.OpensHuman += a.OpensHuman
		w.OpensMachine += a.OpensMachine
		w.ClicksHuman += a.ClicksHuman
		w.ClicksMachine += a.ClicksMachine
	}
	for _, e := range c.h.opt.Queue() {
		w.Waiting++
		if e.Status == record.StatusDeferred {
			w.Deferred++
		}
	}
	return w
}
