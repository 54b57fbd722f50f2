package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"pixelrelay/tracker/httpd"
)

// runIn runs the CLI with the fixed clock in loc, as Main does with the
// local time zone.
func runIn(loc *time.Location, args ...string) (code int, stdout, stderr string) {
	var out, errb strings.Builder
	e := &env{stdout: &out, stderr: &errb, now: func() time.Time { return testNow.In(loc) }}
	code = e.main(args)
	return code, out.String(), errb.String()
}

// Text output shows times in the local time zone; JSON keeps UTC.
func TestTimesInLocalZone(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	cfg := startAPI(t, sampleAPI())
	for _, tc := range []struct {
		loc  *time.Location
		args []string
		want []string
	}{
		{tokyo, []string{"opens", "k7q2m4xwah3bdf5a"}, []string{
			"sent     2026-11-22 21:03 JST (4h ago)",
			"2026-11-23 00:03 JST (1h ago)  human",
			"first human open 2026-11-22 23:03 JST (2h ago)",
		}},
		{ny, []string{"opens"}, []string{"2026-11-22 10:33 EST (30m ago)"}},
		{tokyo, []string{"messages"}, []string{"2026-11-22 21:03 JST (4h ago)"}},
		{ny, []string{"queue"}, []string{"2026-11-22 11:08 EST (in 5m)"}},
		{time.UTC, []string{"opens"}, []string{"2026-11-22 15:33 UTC (30m ago)"}},
	} {
		code, out, errOut := runIn(tc.loc, append(tc.args, "--config", cfg)...)
		if code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", tc.args, code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s %v: output lacks %q:\n%s", tc.loc, tc.args, w, out)
			}
		}
	}
	// JSON: the API's UTC RFC 3339 times, whatever the zone.
	_, out, _ := runIn(tokyo, "opens", "--json", "--config", cfg)
	var r httpd.OpensResponse
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"opened_at": "2026-11-22T15:03:30Z"`) {
		t.Errorf("JSON times are not UTC RFC 3339:\n%s", out)
	}
}

// A date given to --since is midnight where the user is.
func TestSinceDateIsLocalMidnight(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	f := sampleAPI()
	cfg := startAPI(t, f)
	if code, _, errOut := runIn(tokyo, "opens", "--since", "2026-11-20", "--config", cfg); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if got := f.find("/api/opens").URL.Query().Get("since"); got != "2026-11-19T15:00:00Z" {
		t.Errorf("since = %s, want 2026-11-19T15:00:00Z (midnight in Tokyo)", got)
	}
}

// The real binary follows $TZ (its tz database is built in, so this holds
// on a machine without one too).
func TestBinaryFollowsTZ(t *testing.T) {
	bin := buildBinary(t)
	cfg := startAPI(t, sampleAPI())
	for tz, want := range map[string]string{"Asia/Tokyo": " JST (", "America/New_York": " EST (", "UTC": " UTC ("} {
		code, out, errOut := runBinary(t, bin, []string{"TZ=" + tz, "PIXELRELAY_ADMIN_KEY=" + testKey}, "messages", "--config", cfg)
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("TZ=%s: exit %d, output lacks %q:\n%s%s", tz, code, want, out, errOut)
		}
	}
}
