package ui

import (
	"net/http"
	"sort"
	"strings"
	"time"

	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
	"pixelrelay/tracker/token"
)

// A copy's timeline: queued, every delivery attempt, sent, and every open
// (and click), newest first, with who or what it was and why.

// timelineOpens bounds the opens a timeline shows (the newest), and
// timelineClicks its clicks.
const (
	timelineOpens  = 200
	timelineClicks = 200
)

type timelineView struct {
	Row          rowView
	Steps        []step
	Hidden       int // opens beyond timelineOpens, not shown
	HiddenClicks int // clicks beyond timelineClicks, not shown
}

// step is one entry of the timeline.
type step struct {
	At     time.Time
	Kind   string // the CSS modifier: queued, deferred, sent, failed, human, machine, click, botclick, folder
	Title  string
	Detail string // an error, a reason
	URL    string // a click's link
	Meta   []string
}

func (c *call) timeline() {
	// A tracked copy is named by its tracking id, an untracked one by
	// QUEUEID/recipient (record.UntrackedID); both are lowercase.
	id := strings.ToLower(strings.TrimPrefix(c.r.URL.Path, "/ui/m/"))
	if !token.ValidID(id) && (!record.IsUntrackedID(id) || len(id) > 600) {
		c.h.fail(c.w, c.r, http.StatusNotFound, "That is not a tracking id.")
		return
	}
	m, found, err := c.h.opt.Store.ByKey(id)
	if err != nil {
		c.internal("the copy", err)
		return
	}
	if !found {
		c.h.fail(c.w, c.r, http.StatusNotFound, "There is no copy with tracking id "+id+" (purged, or never sent).")
		return
	}
	events, err := c.h.opt.Store.Events(id)
	if err != nil {
		c.internal("the delivery history", err)
		return
	}
	v := &timelineView{Row: rowOf(m)}
	opens, clicks, ok := c.hits(v)
	if !ok {
		return
	}
	v.Steps = steps(v.Row, events, opens, clicks)
	title := v.Row.Subject
	if title == "" {
		title = "(no subject)"
	}
	c.h.render(c.w, c.r, http.StatusOK, "timeline", &pageData{Title: title, Nav: "sent", CSRF: c.sess.csrf, Live: true, Timeline: v})
}

// hits reads a tracked copy's newest opens and clicks (at most
// timelineOpens and timelineClicks) and notes in v how many are left out.
func (c *call) hits(v *timelineView) (opens []store.Open, clicks []store.Click, ok bool) {
	if !v.Row.Tracked {
		return nil, nil, true
	}
	var err error
	if opens, err = c.h.opt.Store.Opens(store.OpenQuery{ID: v.Row.ID, Limit: timelineOpens + 1}); err != nil {
		c.internal("the opens", err)
		return nil, nil, false
	}
	if len(opens) > timelineOpens {
		opens = opens[:timelineOpens]
		v.Hidden = v.Row.OpensTotal - timelineOpens
	}
	if v.Row.ClicksTotal == 0 {
		return opens, nil, true
	}
	if clicks, err = c.h.opt.Store.Clicks(store.ClickQuery{ID: v.Row.ID, Limit: timelineClicks + 1}); err != nil {
		c.internal("the clicks", err)
		return nil, nil, false
	}
	if len(clicks) > timelineClicks {
		clicks = clicks[:timelineClicks]
		v.HiddenClicks = v.Row.ClicksTotal - timelineClicks
	}
	return opens, clicks, true
}

// steps builds the timeline, newest first.
func steps(r rowView, events []store.Event, opens []store.Open, clicks []store.Click) []step {
	var s []step
	if !r.Tracked {
		s = append(s, step{At: r.QueuedAt, Kind: "untracked", Title: untrackedTitle(r.UntrackedReason)})
	}
	s = append(s, step{At: r.QueuedAt, Kind: "queued", Title: "Accepted from the mail client", Meta: []string{"from " + orNull(r.From)}})
	sentSeen := false
	for _, e := range events {
		switch e.Status {
		case record.StatusDeferred:
			s = append(s, step{At: e.At, Kind: "deferred", Title: "Delivery attempt failed; will retry", Detail: e.Error})
		case record.StatusSent:
			sentSeen = true
			s = append(s, step{At: e.At, Kind: "sent", Title: "Delivered to the upstream"})
		case record.StatusFailed:
			s = append(s, step{At: e.At, Kind: "failed", Title: "Bounced: not delivered", Detail: e.Error})
		case record.StatusQueued:
			s = append(s, step{At: e.At, Kind: "queued", Title: "Queued again"})
		}
	}
	if !sentSeen && !r.SentAt.IsZero() { // recorded before delivery events were kept
		s = append(s, step{At: r.SentAt, Kind: "sent", Title: "Delivered to the upstream"})
	}
	for _, o := range opens {
		s = append(s, openStep(o))
	}
	for _, k := range clicks {
		s = append(s, clickStep(k))
	}
	sort.SliceStable(s, func(i, j int) bool { return s[i].At.After(s[j].At) })
	if r.SentFolder != "" && r.SentFolder != "off" {
		s = append([]step{{Kind: "folder", Title: "Sent folder: " + r.SentFolder}}, s...)
	}
	return s
}

// openStep describes one open: a person (perhaps through a mail
// provider's image proxy) or a machine, and the rule that said so.
func openStep(o store.Open) step {
	st := step{At: o.OpenedAt, Kind: "human", Title: "Opened by a person", Detail: openReason(o)}
	switch {
	case o.Bot:
		st.Kind, st.Title = "machine", "Machine fetch: "+botLabel(o.BotType)
	case o.Proxy != "":
		st.Title = "Opened by a person, through " + proxyLabel(o.Proxy)
	}
	if o.First {
		st.Title += " (first time)"
	}
	return withClient(st, o.IP, o.City, o.Country, o.UserAgent)
}

// clickStep describes one click: a person's or a machine's (a security
// gateway following the links, the hidden honeypot link), with its link
// and the rule that decided.
func clickStep(k store.Click) step {
	st := step{At: k.ClickedAt, Kind: "click", Title: "Clicked by a person", Detail: k.Reason, URL: k.URL}
	switch {
	case k.URL == "":
		st.Kind, st.Title = "botclick", "Machine fetched the hidden trap link"
	case k.Bot:
		st.Kind, st.Title = "botclick", "Machine click: "+botLabel(k.BotType)
	}
	if k.First {
		st.Title += " (first time)"
	}
	return withClient(st, k.IP, k.City, k.Country, k.UserAgent)
}

// withClient adds who fetched: the address, where it is, the user agent.
func withClient(st step, ip, city, country, ua string) step {
	st.Meta = append(st.Meta, ip)
	if loc := strings.TrimSpace(strings.Join([]string{city, country}, " ")); loc != "" {
		st.Meta = append(st.Meta, loc)
	}
	if ua != "" {
		st.Meta = append(st.Meta, shortUA(ua))
	}
	return st
}

// botLabel names a machine class for people.
func botLabel(t string) string {
	switch t {
	case "apple_mpp":
		return "Apple Mail Privacy Protection"
	case "scanner":
		return "security scanner"
	case "prefetch":
		return "prefetch or preview"
	case "":
		return "unknown"
	}
	return strings.ReplaceAll(t, "_", " ")
}

func proxyLabel(p string) string {
	switch p {
	case "gmail":
		return "Gmail's image proxy"
	case "yahoo":
		return "Yahoo's image proxy"
	}
	return p + "'s image proxy"
}

func orNull(s string) string {
	if s == "" {
		return "<> (null sender)"
	}
	return s
}
