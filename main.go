// Command pixelrelay is an SMTP relay that adds a per-recipient tracking
// pixel to HTML mail, and the HTTP tracker that records the opens.
package main

import (
	"os"
	// The time zone database, so that $TZ works for the times the commands
	// show also on a machine without one (minimal containers): 450 KB.
	_ "time/tzdata"

	"pixelrelay/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
