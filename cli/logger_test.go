package cli

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// Logs carry durations as Go duration strings in every format, never as
// integer nanoseconds (slog's JSON default).
func TestLogDurations(t *testing.T) {
	for _, format := range []string{"json", "text", "auto"} { // auto: not a terminal, so JSON
		var b bytes.Buffer
		log, err := newLogger(&b, format, "info")
		if err != nil {
			t.Fatal(err)
		}
		log.Info("shutting down", "grace", 20*time.Second, "took", 1500*time.Microsecond,
			slog.Group("purge", "duration", 90*time.Minute), "count", 3)
		out := b.String()
		if format != "text" {
			var m map[string]any
			if err := json.Unmarshal(b.Bytes(), &m); err != nil {
				t.Fatalf("%s: not JSON: %v\n%s", format, err, out)
			}
			if m["grace"] != "20s" || m["took"] != "1.5ms" || m["purge"].(map[string]any)["duration"] != "1h30m0s" || m["count"] != 3.0 {
				t.Errorf("%s: %s", format, out)
			}
			continue
		}
		for _, want := range []string{"grace=20s", "took=1.5ms", "purge.duration=1h30m0s", "count=3"} {
			if !strings.Contains(out, want) {
				t.Errorf("text: lacks %q: %s", want, out)
			}
		}
	}
}
