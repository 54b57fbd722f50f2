package ui

import (
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"
	_ "time/tzdata" // the viewer's zone, by name, on any host

	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
)

//go:embed templates/*.html
var templateFS embed.FS

// pageData is what every template gets; each page fills in its part.
type pageData struct {
	Title string
	Nav   string // the active menu entry
	CSRF  string
	TZ    string // the zone the page was rendered for
	Error string
	Live  bool // the page refreshes itself on news

	List     *listView
	Timeline *timelineView
	Activity *activityView
	Queue    *queueView
	Status   *statusView
}

// pageNames are the templates/NAME.html pages, each defining "main".
var pageNames = []string{"list", "timeline", "activity", "queue", "status", "login", "signedin", "error"}

// parsePages parses templates/layout.html with each page.
func parsePages() map[string]*template.Template {
	base := template.Must(template.New("layout").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		pages[name] = template.Must(template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name+".html"))
	}
	return pages
}

var funcs = template.FuncMap{
	"when":       timeTag,
	"at":         timeAt,
	"rel":        relative,
	"static":     staticURL,
	"plural":     plural,
	"bytes":      humanBytes,
	"f1":         f1,
	"short":      short,
	"ua":         shortUA,
	"botLabel":   botLabel,
	"proxyLabel": proxyLabel,
	"recipients": joinRecipients,
	"div2":       func(n int) int { return n / 2 },
	"addf":       func(a, b float64) float64 { return a + b },
}

// timeTag is a <time> element: the relative time as text, the exact time
// as its title (the page's script rewrites both in the viewer's zone).
func timeTag(t time.Time) template.HTML {
	if t.IsZero() {
		return ""
	}
	iso := t.UTC().Format(time.RFC3339)
	return template.HTML(fmt.Sprintf(`<time datetime="%s" title="%s" data-rel>%s</time>`,
		iso, t.UTC().Format("2006-01-02 15:04:05 UTC"), template.HTMLEscapeString(relative(t))))
}

// timeAt is a <time> element with the exact time as text (the page's
// script shows it in the viewer's zone, with how long ago it was).
func timeAt(t time.Time) template.HTML {
	if t.IsZero() {
		return ""
	}
	return template.HTML(fmt.Sprintf(`<time datetime="%s" title="%s" data-abs>%s</time>`,
		t.UTC().Format(time.RFC3339Nano), t.UTC().Format("2006-01-02 15:04:05 UTC"), t.UTC().Format("Mon 2 Jan, 15:04:05 UTC")))
}

// nowFunc is the clock relative times are measured against (tests set it).
var nowFunc = time.Now

// relative says how long ago t was, the way a person would.
func relative(t time.Time) string {
	d := nowFunc().Sub(t)
	switch {
	case d < -time.Minute:
		return "in " + span(-d)
	case d < time.Minute:
		return "just now"
	case d < 48*time.Hour:
		return span(d) + " ago"
	case d < 30*24*time.Hour:
		return fmt.Sprintf("%d days ago", int(d/(24*time.Hour)))
	}
	return t.UTC().Format("2 Jan 2006")
}

func span(d time.Duration) string {
	switch {
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d/time.Hour))
	}
	return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// tzCookie holds the viewer's time zone name (set by the page's script).
const tzCookie = "pixelrelay_tz"

// zoneName is the viewer's zone from the cookie, if it names a real zone.
func zoneName(r *http.Request) string {
	if c, err := r.Cookie(tzCookie); err == nil && len(c.Value) < 64 {
		if _, err := time.LoadLocation(c.Value); err == nil && c.Value != "" && c.Value != "Local" {
			return c.Value
		}
	}
	return "UTC"
}

func zoneOf(r *http.Request) *time.Location {
	loc, err := time.LoadLocation(zoneName(r))
	if err != nil {
		return time.UTC
	}
	return loc
}

// badge is one coloured label.
type badge struct {
	Class string // the CSS modifier: queued, deferred, sent, failed, opened, machine, clicked, untracked
	Text  string
	Title string
}

// rowView is one copy as the pages show it. Fields other engineers' work
// adds to MESSAGE (clicks, tracked, account, sent folder) are read through
// messageExtras, so the pages show them as soon as the store has them.
type rowView struct {
	ID, Recipient, From, Subject, MessageID string
	QueuedAt, SentAt, FirstHumanOpen        time.Time
	Status, LastError                       string
	OpensTotal, OpensHuman                  int
	extras
}

// extras are the MESSAGE fields that are zero until the store records them.
type extras struct {
	Tracked         bool
	UntrackedReason string
	Account         string
	SentFolder      string
	ClicksTotal     int
	ClicksHuman     int
	FirstHumanClick time.Time
}

func rowOf(m store.Message) rowView {
	r := rowView{ID: m.Key, Recipient: m.Recipient, From: m.From, Subject: m.Subject, MessageID: m.MessageID,
		QueuedAt: m.QueuedAt, Status: m.Status, LastError: m.LastError, OpensTotal: m.OpensTotal, OpensHuman: m.OpensHuman}
	if m.SentAt != nil {
		r.SentAt = *m.SentAt
	}
	if m.FirstHumanOpen != nil {
		r.FirstHumanOpen = *m.FirstHumanOpen
	}
	r.extras = messageExtras(m)
	return r
}

// OpensMachine is the number of machine fetches.
func (r rowView) OpensMachine() int { return r.OpensTotal - r.OpensHuman }

// ClicksMachine is the number of machine clicks (scanners, the honeypot).
func (r rowView) ClicksMachine() int { return r.ClicksTotal - r.ClicksHuman }

// Badges are the copy's labels: its delivery state, then what the
// recipient did.
func (r rowView) Badges() []badge {
	var b []badge
	switch r.Status {
	case record.StatusQueued:
		b = append(b, badge{"queued", "Queued", "Waiting for its first delivery attempt"})
	case record.StatusDeferred:
		b = append(b, badge{"deferred", "Retrying", "Deferred: " + r.LastError})
	case record.StatusFailed:
		b = append(b, badge{"failed", "Bounced", "Not delivered: " + r.LastError})
	default:
		b = append(b, badge{"sent", "Sent", "Accepted by the upstream"})
	}
	switch {
	case !r.Tracked:
		b = append(b, badge{"untracked", "Not tracked", untrackedTitle(r.UntrackedReason)})
	case r.OpensHuman > 0:
		b = append(b, badge{"opened", "Opened", plural(r.OpensHuman, "open", "opens") + " by a person"})
	case r.OpensTotal > 0:
		b = append(b, badge{"machine", "Machine only", "Only machine fetches (Apple Mail Privacy Protection, a security scanner or a prefetch): nobody has been seen reading it"})
	}
	if r.ClicksHuman > 0 {
		b = append(b, badge{"clicked", "Clicked", plural(r.ClicksHuman, "click", "clicks") + " by a person"})
	}
	return b
}

func untrackedTitle(reason string) string {
	if reason == "" {
		return "Sent without a pixel"
	}
	return "Sent without a pixel: " + reason
}

// Waiting reports whether the copy is still in the queue.
func (r rowView) Waiting() bool {
	return r.Status == record.StatusQueued || r.Status == record.StatusDeferred
}

// Short cuts s to n characters (on a rune boundary) with an ellipsis.
func short(s string, n int) string {
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// shortUA is a user agent cut for a table cell.
func shortUA(ua string) string { return short(strings.TrimSpace(ua), 72) }
