package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"90m", 90 * time.Minute, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"10s", 10 * time.Second, ""},
		{"0", 0, ""},
		{"0s", 0, ""},
		{"90d", 90 * 24 * time.Hour, ""},
		{"1d", 24 * time.Hour, ""},
		{"0d", 0, ""},
		{"1.5d", 36 * time.Hour, ""},
		{" 7d ", 7 * 24 * time.Hour, ""},
		{"-2d", -48 * time.Hour, ""},
		{"-5m", -5 * time.Minute, ""},
		{"", 0, "empty duration"},
		{"d", 0, `invalid duration "d"`},
		{"1d12h", 0, `invalid duration "1d12h"`},
		{"90", 0, `invalid duration "90"`},
		{"ninety days", 0, `invalid duration "ninety days"`},
		{"1e3d", 0, `invalid duration "1e3d"`},
		{"0x10d", 0, `invalid duration "0x10d"`},
		{"infd", 0, `invalid duration "infd"`},
		{"NaNd", 0, `invalid duration "NaNd"`},
		{"+-1d", 0, `invalid duration "+-1d"`},
		{"1_0d", 0, `invalid duration "1_0d"`},
		{"999999999d", 0, "too long"},
		{"1D", 0, `invalid duration "1D"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseDuration(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestDurationText(t *testing.T) {
	tests := []struct {
		d    Duration
		want string
	}{
		{Duration(90 * 24 * time.Hour), "90d"},
		{Duration(24 * time.Hour), "1d"},
		{Duration(36 * time.Hour), "36h0m0s"},
		{Duration(time.Minute), "1m0s"},
		{0, "0s"},
	}
	for _, tt := range tests {
		if got := tt.d.String(); got != tt.want {
			t.Errorf("Duration(%d).String() = %q, want %q", tt.d, got, tt.want)
		}
		b, _ := tt.d.MarshalText()
		var back Duration
		if err := back.UnmarshalText(b); err != nil || back != tt.d {
			t.Errorf("round trip of %q = %v, %v; want %v", b, back, err, tt.d)
		}
	}
	var d Duration
	if err := d.UnmarshalText([]byte("soon")); err == nil {
		t.Error(`UnmarshalText("soon") succeeded`)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    Size
		wantErr string
	}{
		{"35MB", 35 << 20, ""},
		{"35mb", 35 << 20, ""},
		{"35 MB", 35 << 20, ""},
		{"35M", 35 << 20, ""},
		{"35MiB", 35 << 20, ""},
		{"512KB", 512 << 10, ""},
		{"512k", 512 << 10, ""},
		{"1GB", 1 << 30, ""},
		{"1GiB", 1 << 30, ""},
		{"1.5MB", 3 << 19, ""},
		{"0.5KB", 512, ""},
		{"100B", 100, ""},
		{"36700160", 36700160, ""},
		{"0", 0, ""},
		{"", 0, "invalid size"},
		{"MB", 0, "invalid size"},
		{"-1MB", 0, "invalid size"},
		{"+1MB", 0, "invalid size"},
		{"1e6", 0, "invalid size"},
		{"0x100", 0, "invalid size"},
		{"1_000", 0, "invalid size"},
		{"1..5MB", 0, "invalid size"},
		{"35 megabytes", 0, "invalid size"},
		{"inf", 0, "invalid size"},
		{"NaN", 0, "invalid size"},
		{"1TB", 0, "invalid size"},
		{"9223372036854775807GB", 0, "too large"},
		{"99999999999999999999", 0, "invalid size"},
		{"99999999999999999999.5GB", 0, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSize(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestSizeText(t *testing.T) {
	tests := []struct {
		z    Size
		want string
	}{
		{35 << 20, "35MB"},
		{512 << 10, "512KB"},
		{2 << 30, "2GB"},
		{1536 << 10, "1536KB"},
		{1000, "1000"},
		{0, "0"},
	}
	for _, tt := range tests {
		if got := tt.z.String(); got != tt.want {
			t.Errorf("Size(%d).String() = %q, want %q", tt.z, got, tt.want)
		}
		b, _ := tt.z.MarshalText()
		var back Size
		if err := back.UnmarshalText(b); err != nil || back != tt.z {
			t.Errorf("round trip of %q = %v, %v; want %v", b, back, err, tt.z)
		}
		if tt.z.Bytes() != int64(tt.z) {
			t.Errorf("Bytes() = %d", tt.z.Bytes())
		}
	}
	var z Size
	if err := z.UnmarshalText([]byte("big")); err == nil {
		t.Error(`UnmarshalText("big") succeeded`)
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr string
	}{
		{"2026-01-02T15:04:05Z", time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC), ""},
		{"2026-01-02T15:04:05.5+02:00", time.Date(2026, 1, 2, 13, 4, 5, 5e8, time.UTC), ""},
		{"2026-01-02", time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), ""},
		{"24h", now.Add(-24 * time.Hour), ""},
		{"7d", now.Add(-7 * 24 * time.Hour), ""},
		{"90m", now.Add(-90 * time.Minute), ""},
		{"0s", now, ""},
		{"-1h", time.Time{}, "must not be negative"},
		{"yesterday", time.Time{}, `invalid time "yesterday": use an RFC 3339 time (2026-01-02T15:04:05Z), a date (2026-01-02) or a duration back from now (24h, 7d)`},
		{"2026-13-01", time.Time{}, "use an RFC 3339 time"},
		{"2026-01-02 15:04", time.Time{}, "use an RFC 3339 time"},
		{"", time.Time{}, "use an RFC 3339 time"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseWhen(tt.in, now)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseWhen(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !got.Equal(tt.want) {
				t.Fatalf("ParseWhen(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}
