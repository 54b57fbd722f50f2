// Command pixelrelay is an SMTP relay that adds a per-recipient tracking
// pixel to HTML mail, and the HTTP tracker that records the opens.
package main

import (
	"os"

	"pixelrelay/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
