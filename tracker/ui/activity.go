package ui

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"pixelrelay/tracker/store"
)

// Opens and clicks over time, human and machine apart: a bar chart drawn
// here as SVG (no chart library, no inline style), with the day and hour
// boundaries of the viewer's time zone, and the most recent opens and
// clicks below.

// chart geometry, in the SVG's own units (it is stretched to the width).
const (
	chartW = 1000.0
	chartH = 240.0
)

type activityView struct {
	Range  string
	Ranges []tab
	Zone   string
	Bars   []bar
	Labels []xlabel // one per bar; empty where no label fits
	Grid   []grid
	Max    int
	Totals store.Activity
	Recent []recentOpen
	Clicks bool // any click in the range: show them
	// RecentClicks are the latest clicks (shown when there are any).
	RecentClicks []store.Click
}

// bar is one period: the opens as a stacked human (bottom) and machine
// (top) bar, beside it (when the range has clicks) the clicks stacked the
// same way, and an invisible full-height target carrying the tooltip.
type bar struct {
	X, W, SlotX, SlotW float64
	Opens, Clicks      stack
	Title              string
}

// stack is one bar of two parts, people's at the bottom.
type stack struct {
	X, W               float64
	HumanY, HumanH     float64
	MachineY, MachineH float64
	Human, Machine     int
}

// lay sets the stack's heights for human and machine counts at scale.
func (s *stack) lay(x, w float64, human, machine int, scale float64) {
	s.X, s.W, s.Human, s.Machine = x, w, human, machine
	s.HumanH = float64(human) * scale
	s.HumanY = chartH - s.HumanH
	s.MachineH = float64(machine) * scale
	s.MachineY = s.HumanY - s.MachineH
}

// xlabel is the text under a bar; a minor one is left out on a phone.
type xlabel struct {
	Text  string
	Minor bool
}

type grid struct {
	Y     float64
	Value int
}

type recentOpen struct {
	store.Open
	Reason string
}

// rangeSpec is one choice of the range selector.
type rangeSpec struct {
	key, label string
	buckets    int
	hourly     bool
	labelEvery int
}

var ranges = []rangeSpec{
	{"24h", "24 hours", 24, true, 3},
	{"7d", "7 days", 7, false, 1},
	{"30d", "30 days", 30, false, 5},
	{"90d", "90 days", 90, false, 15},
	{"365d", "A year", 365, false, 61},
}

func (c *call) activity() {
	key := c.r.URL.Query().Get("range")
	if key == "" {
		key = "7d"
	}
	var spec rangeSpec
	for _, r := range ranges {
		if r.key == key {
			spec = r
		}
	}
	if spec.key == "" {
		c.h.fail(c.w, c.r, http.StatusBadRequest, "range: want 24h, 7d, 30d, 90d or 365d")
		return
	}
	loc := zoneOf(c.r)
	starts := bucketStarts(c.h.now().In(loc), spec)
	acts, err := c.h.opt.Store.ActivityBetween(starts[0], starts[len(starts)-1])
	if err != nil {
		c.internal("the activity", err)
		return
	}
	v := &activityView{Range: key, Zone: loc.String()}
	for _, r := range ranges {
		v.Ranges = append(v.Ranges, tab{Label: r.label, URL: "/ui/activity?range=" + r.key, Active: r.key == key})
	}
	sums := bucketize(acts, starts, &v.Totals)
	v.Clicks = v.Totals.ClicksHuman+v.Totals.ClicksMachine > 0
	v.draw(sums, starts, spec)
	opens, err := c.h.opt.Store.Opens(store.OpenQuery{Limit: 30})
	if err != nil {
		c.internal("the recent opens", err)
		return
	}
	for _, o := range opens {
		v.Recent = append(v.Recent, recentOpen{Open: o, Reason: openReason(o)})
	}
	if v.RecentClicks, err = c.h.opt.Store.Clicks(store.ClickQuery{Limit: 30}); err != nil {
		c.internal("the recent clicks", err)
		return
	}
	c.h.render(c.w, c.r, http.StatusOK, "activity", &pageData{Title: "Activity", Nav: "activity", CSRF: c.sess.csrf, Live: true, Activity: v})
}

// bucketStarts returns the n+1 boundaries of the range's periods, ending
// with the period that holds now: hours, or midnights in now's zone.
func bucketStarts(now time.Time, spec rangeSpec) []time.Time {
	out := make([]time.Time, spec.buckets+1)
	for i := 0; i <= spec.buckets; i++ {
		k := i - spec.buckets + 1 // the last bucket (k = 0) holds now
		if spec.hourly {
			out[i] = now.Truncate(time.Hour).Add(time.Duration(k) * time.Hour)
		} else {
			y, m, d := now.Date()
			out[i] = time.Date(y, m, d+k, 0, 0, 0, 0, now.Location())
		}
	}
	return out
}

// bucketize sums hourly counts into the periods starting at starts (each
// hour goes to the period holding its start) and adds them to total.
func bucketize(acts []store.Activity, starts []time.Time, total *store.Activity) []store.Activity {
	sums := make([]store.Activity, len(starts)-1)
	i := 0
	for _, a := range acts {
		for i < len(sums) && !a.Start.Before(starts[i+1]) {
			i++
		}
		if i == len(sums) {
			break
		}
		if a.Start.Before(starts[i]) {
			continue
		}
		sums[i].Add(a)
		total.Add(a)
	}
	return sums
}

// draw lays the bars out: each period's slot holds its opens bar and,
// when the range has clicks, a narrower clicks bar to its right.
func (v *activityView) draw(sums []store.Activity, starts []time.Time, spec rangeSpec) {
	peak := 0
	for _, s := range sums {
		peak = max(peak, s.OpensHuman+s.OpensMachine, s.ClicksHuman+s.ClicksMachine)
	}
	v.Max = niceCeil(peak)
	slot := chartW / float64(len(sums))
	scale := chartH / float64(v.Max)
	for i, s := range sums {
		x := float64(i) * slot
		b := bar{SlotX: x, SlotW: slot}
		if v.Clicks {
			b.Opens.lay(x+slot*0.1, slot*0.46, s.OpensHuman, s.OpensMachine, scale)
			b.Clicks.lay(x+slot*0.6, slot*0.3, s.ClicksHuman, s.ClicksMachine, scale)
		} else {
			b.Opens.lay(x+slot*0.12, slot*0.76, s.OpensHuman, s.OpensMachine, scale)
		}
		b.Title = fmt.Sprintf("%s: %s by people, %s by machines", periodName(starts[i], spec),
			plural(s.OpensHuman, "open", "opens"), plural(s.OpensMachine, "open", "opens"))
		if v.Clicks {
			b.Title += fmt.Sprintf("; %s by people, %s by machines",
				plural(s.ClicksHuman, "click", "clicks"), plural(s.ClicksMachine, "click", "clicks"))
		}
		v.Bars = append(v.Bars, b)
		var label xlabel
		if k := (len(sums) - 1 - i) / spec.labelEvery; (len(sums)-1-i)%spec.labelEvery == 0 {
			label = xlabel{Text: tickName(starts[i], spec), Minor: k%2 == 1}
		}
		v.Labels = append(v.Labels, label)
	}
	for _, f := range []int{1, 2, 3, 4} {
		val := v.Max * f / 4
		v.Grid = append(v.Grid, grid{Y: chartH - float64(val)*scale, Value: val})
	}
}

// niceCeil is the chart's top: four grid steps of a round size (1, 1.2,
// 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten) that reach n.
func niceCeil(n int) int {
	need := max((n+3)/4, 1)
	for p := 1; ; p *= 10 {
		for _, m := range []int{10, 12, 15, 20, 25, 30, 40, 50, 60, 80} {
			if step := m * p / 10; step*10 == m*p && step >= need {
				return 4 * step
			}
		}
	}
}

func periodName(t time.Time, spec rangeSpec) string {
	if spec.hourly {
		return t.Format("Mon 2 Jan 15:00") + "–" + t.Add(time.Hour).Format("15:00")
	}
	return t.Format("Mon 2 Jan")
}

func tickName(t time.Time, spec rangeSpec) string {
	switch {
	case spec.hourly:
		return t.Format("15:04")
	case spec.buckets <= 7:
		return t.Format("Mon 2")
	}
	return t.Format("2 Jan")
}

// Y of a bar's value in the chart, as a string for SVG attributes.
func f1(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) }
