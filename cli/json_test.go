package cli

import (
	"strings"
	"testing"
)

// The API's bodies end in a newline (json.Encoder); --json output must end
// in exactly one, not an empty line.
func TestJSONEndsInOneNewline(t *testing.T) {
	cfg := startAPI(t, sampleAPI())
	for _, args := range [][]string{
		{"opens", "--json"},
		{"opens", "k7q2m4xwah3bdf5a", "--json"},
		{"messages", "--json"},
		{"queue", "--json"},
		{"status", "--json"},
		{"keys", "rotate", "--json"},
		{"purge", "--json"},
	} {
		code, out, errOut := run(0, append(args, "--config", cfg)...)
		if code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, code, errOut)
		}
		if !strings.HasSuffix(out, "}\n") || strings.HasSuffix(out, "\n\n") {
			t.Errorf("%v: output ends in %q, want one newline after the JSON", args, out[max(0, len(out)-8):])
		}
	}
}
