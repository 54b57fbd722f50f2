package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

const day = 24 * time.Hour

// ParseDuration parses a Go duration ("90m", "1h30m") or a number of days
// ("90d", "1.5d"). Units cannot be mixed with days ("1d12h" is an error; write
// "36h").
func ParseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, errors.New(`empty duration: use a Go duration like "90m" or a number of days like "90d"`)
	}
	if num, ok := strings.CutSuffix(t, "d"); ok {
		n, err := strconv.ParseFloat(num, 64)
		if err != nil || !isDecimal(strings.TrimPrefix(num, "-")) {
			return 0, fmt.Errorf(`invalid duration %q: use a Go duration like "90m" or a number of days like "90d"`, s)
		}
		v := math.Round(n * float64(day))
		if math.Abs(v) >= float64(math.MaxInt64) { // 2⁶³: one past the largest Duration
			return 0, fmt.Errorf("invalid duration %q: too long", s)
		}
		return time.Duration(v), nil
	}
	d, err := time.ParseDuration(t)
	if err != nil {
		return 0, fmt.Errorf(`invalid duration %q: use a Go duration like "90m" or a number of days like "90d"`, s)
	}
	return d, nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseDuration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler; it writes String.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// String formats whole days as "5d" and everything else as a Go duration.
func (d Duration) String() string {
	v := time.Duration(d)
	if v != 0 && v%day == 0 {
		return strconv.FormatInt(int64(v/day), 10) + "d"
	}
	return v.String()
}

// Size units. KB, MB and GB are binary (1024-based), as in most mail
// software; KiB, MiB and GiB are accepted as the same thing.
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
	{"kb", 1 << 10}, {"mb", 1 << 20}, {"gb", 1 << 30},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30},
	{"b", 1},
}

// ParseSize parses a byte count: a plain number of bytes ("36700160") or a
// number with a unit, case-insensitive, optionally with a fraction and a
// space: "512KB", "35MB", "1.5 GB". KB/MB/GB mean 1024, 1024² and 1024³
// bytes. Fractions are rounded down to whole bytes.
func ParseSize(s string) (Size, error) {
	bad := fmt.Errorf(`invalid size %q: use a number of bytes or a size like "512KB", "35MB", "1GB"`, s)
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	if !isDecimal(t) {
		return 0, bad
	}
	if !strings.Contains(t, ".") {
		n, err := strconv.ParseInt(t, 10, 64)
		if err != nil {
			return 0, bad
		}
		if n > math.MaxInt64/mult {
			return 0, fmt.Errorf("invalid size %q: too large", s)
		}
		return Size(n * mult), nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil {
		return 0, bad
	}
	v := f * float64(mult)
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return Size(v), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseSize.
func (z *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*z = v
	return nil
}

// MarshalText implements encoding.TextMarshaler; it writes String.
func (z Size) MarshalText() ([]byte, error) { return []byte(z.String()), nil }

// String formats exact multiples as "35MB", "512KB" or "1GB", and anything
// else as a number of bytes.
func (z Size) String() string {
	n := int64(z)
	switch {
	case n != 0 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GB"
	case n != 0 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MB"
	case n != 0 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KB"
	}
	return strconv.FormatInt(n, 10)
}

// Bytes returns the size as an int64.
func (z Size) Bytes() int64 { return int64(z) }

// ParseWhen parses a point in time given on the command line or in an API
// query: an RFC 3339 time ("2026-01-02T15:04:05Z"), a date ("2026-01-02",
// midnight UTC), or a duration back from now ("24h", "7d").
func ParseWhen(s string, now time.Time) (time.Time, error) {
	t := strings.TrimSpace(s)
	if v, err := time.Parse(time.RFC3339Nano, t); err == nil {
		return v, nil
	}
	if v, err := time.Parse(time.DateOnly, t); err == nil {
		return v.UTC(), nil
	}
	if d, err := ParseDuration(t); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("invalid time %q: a duration back from now must not be negative", s)
		}
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf(`invalid time %q: use an RFC 3339 time (2026-01-02T15:04:05Z), a date (2026-01-02) or a duration back from now (24h, 7d)`, s)
}

// isDecimal reports whether s is digits with at most one decimal point and
// at least one digit: what strconv would accept without signs, exponents,
// underscores, hex, Inf or NaN.
func isDecimal(s string) bool {
	digits, dots := 0, 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}
