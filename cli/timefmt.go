package cli

import (
	"fmt"
	"time"
)

// stamp shows t in now's time zone (the local one: $TZ, else the system's)
// plus how long ago (or ahead) it is: "2026-11-22 15:03 CET (2h ago)".
// JSON output keeps the API's UTC RFC 3339 times.
func stamp(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(now.Location()).Format("2006-01-02 15:04 MST") + " (" + relative(t, now) + ")"
}

// stampPtr is stamp for optional times; none is shown for nil.
func stampPtr(t *time.Time, now time.Time, none string) string {
	if t == nil || t.IsZero() {
		return none
	}
	return stamp(*t, now)
}

// relative says how far t is from now in one rounded-down unit:
// "just now", "5m ago", "2h ago", "3d ago", "in 10m".
func relative(t, now time.Time) string {
	d := now.Sub(t)
	future := d < 0
	if future {
		d = -d
	}
	if d < time.Minute {
		if future {
			return "in under a minute"
		}
		return "just now"
	}
	var s string
	switch {
	case d < time.Hour:
		s = fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%dh", int(d/time.Hour))
	default:
		s = fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

// size shows a byte count the way people read it: "812 B", "12.4 MB".
func size(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, u := range []string{"kB", "MB", "GB", "TB"} {
		f /= unit
		if f < unit {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	return fmt.Sprintf("%.1f PB", f/unit)
}
