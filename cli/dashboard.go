package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"runtime"
	"time"

	"pixelrelay/tracker/httpd"
)

func dashboardCommand() *command {
	return &command{
		name:    "dashboard",
		summary: "print (and open) a one-time sign-in link for the web dashboard",
		help: `Usage: pixelrelay dashboard [--no-browser] [--json] [--config FILE]

Asks the running server for a one-time sign-in link to its web dashboard
(/ui/ on http.listen), prints it and opens it in the default browser. The
link works once, within 5 minutes; the browser then keeps a session cookie
(7 days, or until the server restarts). The dashboard also takes the admin
key in its sign-in form.

Flags:
  --no-browser    only print the link (on a server without a desktop, or to
                  open it in another browser)
  --json          print {"url", "expires_at"} instead of text
  --config FILE   the config file naming the server's address and data_dir

Example:
  pixelrelay dashboard
`,
		run: runDashboard,
	}
}

// openBrowser opens a URL in the desktop's browser without waiting for it
// (a variable so tests can see what would be opened).
var openBrowser = func(url string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", url)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	default:
		cmd = exec.Command("xdg-open", url)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait()
	return nil
}

func runDashboard(e *env, args []string) error {
	fs, cfgPath := newFlags("dashboard")
	noBrowser := fs.Bool("no-browser", false, "")
	asJSON := fs.Bool("json", false, "")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	c, err := e.connect(*cfgPath)
	if err != nil {
		return err
	}
	body, err := c.do(http.MethodPost, "/api/dashboard/login", nil, queryTimeout)
	if err != nil {
		return err
	}
	var r httpd.DashboardLoginResponse
	if err := c.decode(body, &r); err != nil {
		return err
	}
	link := c.base + r.Path
	if *asJSON {
		out, _ := json.Marshal(struct {
			URL       string    `json:"url"`
			ExpiresAt time.Time `json:"expires_at"`
		}{link, r.ExpiresAt})
		return writeJSON(e.stdout, out)
	}
	mins := max(int(r.ExpiresAt.Sub(e.now()).Round(time.Minute)/time.Minute), 1)
	fmt.Fprintf(e.stdout, "Sign in to the dashboard with this link (it works once, within %d minutes):\n\n  %s\n\n", mins, link)
	if *noBrowser {
		return nil
	}
	if err := openBrowser(link); err != nil {
		fmt.Fprintf(e.stderr, "pixelrelay: no browser opened (%v); open the link above yourself\n", oneLine(err.Error()))
	}
	return nil
}
