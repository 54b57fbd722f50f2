// Package cli is pixelrelay's command line: serve and the daily commands.
package cli

import (
	"fmt"
	"io"
)

// Version is set at build time with -ldflags "-X pixelrelay/cli.Version=...".
var Version = "0.1.0-dev"

// Main runs one command and returns the process exit code:
// 0 success, 1 failure, 2 bad usage.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && args[0] == "version" {
		fmt.Fprintln(stdout, "pixelrelay", Version)
		return 0
	}
	fmt.Fprintln(stderr, "pixelrelay: not yet implemented")
	return 2
}
