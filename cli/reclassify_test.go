package cli

import (
	"strings"
	"testing"
)

func TestReclassify(t *testing.T) {
	f := sampleAPI()
	cfg := startAPI(t, f)
	code, out, errOut := run(0, "reclassify", "--since", "2026-11-01", "--config", cfg)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if q := f.last().URL.Query().Get("since"); !strings.HasPrefix(q, "2026-11-01T") && !strings.HasPrefix(q, "2026-10-31T") {
		t.Errorf("since sent as %q", q)
	}
	for _, want := range []string{
		"reclassified 120 opens of 40 copies: 31 changed class",
		"CLASS          BEFORE  AFTER",
		"bot:apple_mpp  20      22",
		"bot:scanner    0       29",
		"human          90      59",
		"proxy:gmail    10      10",
		"reclassified 3 clicks of 1 copy: 2 changed class",
		"bot:scanner  0       2",
		"human        3       1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if code, _, errOut := run(0, "reclassify", "now", "--config", cfg); code != 2 || errOut == "" {
		t.Errorf("an argument: exit %d %q", code, errOut)
	}
	if code, _, errOut := run(0, "reclassify", "--since", "whenever", "--config", cfg); code != 2 || !strings.Contains(errOut, "since") {
		t.Errorf("bad --since: exit %d %q", code, errOut)
	}
}
