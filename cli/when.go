package cli

import (
	"fmt"
	"strings"
	"time"

	"pixelrelay/config"
)

const (
	whenAccepted = "want an RFC 3339 time (2026-11-22T14:03:00Z), a date (2026-11-22) or a duration back from now (24h, 7d)"
	durAccepted  = "want a Go duration (36h, 90m) or a number of days (90d)"
)

// parseWhen reads a WHEN: an RFC 3339 time, a date YYYY-MM-DD (midnight
// in now's time zone, the one times are shown in), or a duration back from
// now (24h, 7d), as the server does (config.ParseWhen). The result is in
// UTC.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseInLocation(time.DateOnly, strings.TrimSpace(s), now.Location()); err == nil {
		return d.UTC(), nil
	}
	t, err := config.ParseWhen(s, now)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: %s", strings.TrimSpace(s), whenAccepted)
	}
	return t.UTC(), nil
}

// parseDuration reads a DUR: a Go duration ("36h") or a number of days
// ("90d"), as the config file's durations. Negative durations are refused.
func parseDuration(s string) (time.Duration, error) {
	d, err := config.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: %s", strings.TrimSpace(s), durAccepted)
	}
	return d, nil
}

// whenFlag is --since WHEN, parsed against the command's clock.
type whenFlag struct {
	name string
	now  func() time.Time
	t    time.Time
	set  bool
}

func (w *whenFlag) String() string { return "" }

func (w *whenFlag) Set(s string) error {
	t, err := parseWhen(s, w.now())
	if err != nil {
		return fmt.Errorf("--%s %w", w.name, err)
	}
	w.t, w.set = t, true
	return nil
}

// durFlag is a DUR flag such as --older-than.
type durFlag struct {
	name string
	d    time.Duration
	set  bool
}

func (f *durFlag) String() string { return "" }

func (f *durFlag) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil {
		return fmt.Errorf("--%s %w", f.name, err)
	}
	if d == 0 {
		return fmt.Errorf("--%s %q: want more than zero", f.name, strings.TrimSpace(s))
	}
	f.d, f.set = d, true
	return nil
}
