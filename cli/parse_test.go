package cli

import (
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 11, 22, 16, 3, 30, 0, time.UTC)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantPos  []string
		wantJSON bool
		wantTo   string
		wantErr  string // substring of a *usageError; "help" for errHelp
	}{
		{name: "none", args: nil},
		{name: "flag after id", args: []string{"ID", "--json"}, wantPos: []string{"ID"}, wantJSON: true},
		{name: "flag before id", args: []string{"--json", "ID"}, wantPos: []string{"ID"}, wantJSON: true},
		{name: "value flag around id", args: []string{"--to", "a@b", "ID", "--json"}, wantPos: []string{"ID"}, wantJSON: true, wantTo: "a@b"},
		{name: "equals form", args: []string{"ID", "--to=a@b"}, wantPos: []string{"ID"}, wantTo: "a@b"},
		{name: "single dash", args: []string{"-json", "ID"}, wantPos: []string{"ID"}, wantJSON: true},
		{name: "two positionals", args: []string{"A", "--json", "B"}, wantPos: []string{"A", "B"}, wantJSON: true},
		{name: "double dash ends flags", args: []string{"--", "--json"}, wantPos: []string{"--json"}},
		{name: "double dash after positional", args: []string{"A", "--", "--json"}, wantPos: []string{"A", "--json"}},
		{name: "unknown flag", args: []string{"ID", "--frobnicate"}, wantErr: "unknown flag --frobnicate"},
		{name: "missing value", args: []string{"--to"}, wantErr: "flag --to needs a value"},
		{name: "help", args: []string{"ID", "--help"}, wantErr: "help"},
		{name: "short help", args: []string{"-h"}, wantErr: "help"},
		{name: "bad bool", args: []string{"--json=maybe"}, wantErr: "json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, _ := newFlags("x")
			asJSON := fs.Bool("json", false, "")
			to := fs.String("to", "", "")
			pos, err := parseArgs(fs, tt.args)
			switch {
			case tt.wantErr == "help":
				if !errors.Is(err, errHelp) {
					t.Fatalf("err = %v, want errHelp", err)
				}
				return
			case tt.wantErr != "":
				var ue *usageError
				if !errors.As(err, &ue) || !strings.Contains(ue.msg, tt.wantErr) {
					t.Fatalf("err = %v, want usage error containing %q", err, tt.wantErr)
				}
				return
			case err != nil:
				t.Fatalf("unexpected error %v", err)
			}
			if !reflect.DeepEqual(pos, tt.wantPos) {
				t.Errorf("positional = %q, want %q", pos, tt.wantPos)
			}
			if *asJSON != tt.wantJSON || *to != tt.wantTo {
				t.Errorf("json=%v to=%q, want json=%v to=%q", *asJSON, *to, tt.wantJSON, tt.wantTo)
			}
		})
	}
}

func TestLimitFlag(t *testing.T) {
	tests := []struct {
		in         string
		want       int
		wantCapped bool
		wantErr    bool
	}{
		{"1", 1, false, false},
		{"100", 100, false, false},
		{"500", 500, false, false},
		{"501", 500, true, false},
		{"100000", 500, true, false},
		{"0", 0, false, true},
		{"-3", 0, false, true},
		{"ten", 0, false, true},
		{"", 0, false, true},
	}
	for _, tt := range tests {
		l := &limitFlag{n: defaultLimit}
		err := l.Set(tt.in)
		if tt.wantErr {
			if err == nil || !strings.Contains(err.Error(), "whole number from 1 to 500") {
				t.Errorf("Set(%q) err = %v, want one saying what is accepted", tt.in, err)
			}
			continue
		}
		if err != nil || l.n != tt.want || l.capped != tt.wantCapped {
			t.Errorf("Set(%q) = %d capped=%v err=%v, want %d capped=%v", tt.in, l.n, l.capped, err, tt.want, tt.wantCapped)
		}
	}
}

func TestParseWhen(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
	}{
		{"2026-11-20T10:00:00Z", time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)},
		{"2026-11-20T10:00:00+02:00", time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)},
		{"2026-11-20T10:00:00.5Z", time.Date(2026, 11, 20, 10, 0, 0, 5e8, time.UTC)},
		{"2026-11-20", time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)},
		{"24h", testNow.Add(-24 * time.Hour)},
		{"90m", testNow.Add(-90 * time.Minute)},
		{"7d", testNow.Add(-7 * 24 * time.Hour)},
		{" 3d ", testNow.Add(-3 * 24 * time.Hour)},
	}
	for _, tt := range tests {
		got, err := parseWhen(tt.in, testNow)
		if err != nil || !got.Equal(tt.want) || got.Location() != time.UTC {
			t.Errorf("parseWhen(%q) = %v, %v; want %v UTC", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "yesterday", "2026-13-01", "2026/11/20", "-7d", "-24h", "7 days", "d", "1w"} {
		_, err := parseWhen(bad, testNow)
		if err == nil {
			t.Errorf("parseWhen(%q) accepted", bad)
			continue
		}
		for _, want := range []string{"RFC 3339", "2026-11-22", "24h", "7d"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("parseWhen(%q) error %q does not mention %q", bad, err, want)
			}
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"90d", 90 * 24 * time.Hour},
		{"1d", 24 * time.Hour},
		{"36h", 36 * time.Hour},
		{"90m", 90 * time.Minute},
		{"0s", 0},
	}
	for _, tt := range tests {
		got, err := parseDuration(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "90", "ninety days", "-1d", "-5h", "3x", "2026-11-20"} {
		_, err := parseDuration(bad)
		if err == nil {
			t.Errorf("parseDuration(%q) accepted", bad)
			continue
		}
		if !strings.Contains(err.Error(), "Go duration") || !strings.Contains(err.Error(), "90d") {
			t.Errorf("parseDuration(%q) error %q does not say what is accepted", bad, err)
		}
	}
}

func TestAPIAddr(t *testing.T) {
	tests := []struct{ in, want string }{
		{"127.0.0.1:8025", "127.0.0.1:8025"},
		{"0.0.0.0:8025", "127.0.0.1:8025"},
		{":8025", "127.0.0.1:8025"},
		{"[::]:8025", "[::1]:8025"},
		{"[::1]:9000", "[::1]:9000"},
		{"localhost:8025", "localhost:8025"},
		{"192.0.2.7:80", "192.0.2.7:80"},
	}
	for _, tt := range tests {
		got, err := apiAddr(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("apiAddr(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := apiAddr("8025"); err == nil || !strings.Contains(err.Error(), "http.listen") {
		t.Errorf("apiAddr(\"8025\") err = %v, want one naming http.listen", err)
	}
}

func TestTrackingID(t *testing.T) {
	const id = "k7q2m4xwah3bdf5a"
	tok := id + "abcdefghijklmnopqrstuvwxyz234567"
	for _, in := range []string{id, strings.ToUpper(id), " " + id + " ", tok, "http://127.0.0.1:8025/o/" + tok + ".gif"} {
		got, err := trackingID(in)
		if err != nil || got != id {
			t.Errorf("trackingID(%q) = %q, %v; want %q", in, got, err, id)
		}
	}
	for _, bad := range []string{"", "k7q2m4xw", id + "a", "k7q2m4xwah3bdf5!", "k7q2m4xwah3bdf51"} {
		_, err := trackingID(bad)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(ue.msg, "not a tracking id") {
			t.Errorf("trackingID(%q) err = %v, want a usage error", bad, err)
		}
	}
}

func TestHoistConfig(t *testing.T) {
	tests := []struct{ in, want []string }{
		{[]string{"opens", "--config", "f"}, []string{"opens", "--config", "f"}},
		{[]string{"--config", "f", "opens", "ID"}, []string{"opens", "--config", "f", "ID"}},
		{[]string{"--config=f", "status"}, []string{"status", "--config=f"}},
		{[]string{"--config", "f"}, []string{}},
		{[]string{"--help"}, []string{"--help"}},
	}
	for _, tt := range tests {
		got := hoistConfig(tt.in)
		if len(got) == 0 && len(tt.want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("hoistConfig(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestUnknownCommandSuggests(t *testing.T) {
	tests := []struct{ in, want string }{
		{"open", `unknown command "open" (did you mean opens?)`},
		{"Status", `unknown command "Status" (did you mean status?)`},
		{"mesages", `unknown command "mesages" (did you mean messages?)`},
		{"nonsense", `unknown command "nonsense"`},
		{"x", `unknown command "x"`},
	}
	for _, tt := range tests {
		if got := unknownCommand(tt.in).Error(); got != tt.want {
			t.Errorf("unknownCommand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestHTTPClientIgnoresProxies(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://192.0.2.1:3128")
	tr := newHTTPClient().Transport.(*http.Transport)
	if tr.Proxy != nil {
		req, _ := http.NewRequest("GET", "http://192.0.2.50:8025/api/status", nil)
		if u, _ := tr.Proxy(req); u != nil {
			t.Errorf("admin API requests would go through proxy %v", u)
		}
	}
}
