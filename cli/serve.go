package cli

import (
	"fmt"
	"io"
)

// runServe runs `pixelrelay serve`: the SMTP relay and the HTTP tracker in
// one process until SIGINT/SIGTERM.
func runServe(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "pixelrelay: serve is not wired yet")
	return 1
}
