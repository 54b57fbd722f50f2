package cli

import (
	"fmt"
	"net"

	"pixelrelay/config"
	"pixelrelay/relay/oauth"
)

// finishInit reports what was written, runs the checks unless noCheck,
// and prints the mail client settings and the next commands. A failed
// check fails the command (exit 1) after all that was printed.
func (e *env) finishInit(files setupFiles, a *answers, noCheck bool) error {
	p, _ := presetOf(a.provider)
	fmt.Fprintf(e.stdout, "\nWrote %s\n", displayPath(files.config))
	if files.password != "" {
		fmt.Fprintf(e.stdout, "  and %s (the %s, readable by you only)\n", displayPath(files.password), p.secret)
	}
	if files.clientSecret != "" {
		fmt.Fprintf(e.stdout, "  and %s (the OAuth client secret, readable by you only)\n", displayPath(files.clientSecret))
	}
	cfg, err := validConfig(files.config)
	if err != nil {
		return err
	}
	var failure string
	if !noCheck && p.name != "outbox" {
		failure = e.runChecks(cfg, p)
	}
	e.printClientSettings(cfg, p)
	e.printNext(files.config, a)
	if loopbackURL(a.baseURL) && p.name != "outbox" {
		e.note("tracking.base_url %s is reached from this machine only: opens elsewhere are not counted until it is a public URL (README: Expose the tracker over HTTPS)", a.baseURL)
	}
	if failure != "" {
		return fmt.Errorf("%s is written, but %s; fix it and run pixelrelay init --force again, or edit the file", displayPath(files.config), failure)
	}
	return nil
}

// runChecks checks the SMTP login and the Sent folder, printing each
// result; it returns the first failure ("" when none).
func (e *env) runChecks(cfg *config.Config, p preset) string {
	up := cfg.Upstream
	fmt.Fprintln(e.stdout)
	if up.Auth == "oauth" {
		st, err := oauth.ReadStatus(cfg.DataDir, config.DefaultAccount)
		if err != nil || !st.SignedIn {
			fmt.Fprintln(e.stdout, "Not checked yet: the SMTP login and the Sent folder need the OAuth sign-in (pixelrelay auth login) first.")
			return ""
		}
	}
	who := up.Username
	if who == "" {
		who = "no login"
	}
	fmt.Fprintf(e.stdout, "Checking the SMTP login (%s at %s)... ", who, hostPort(up.URL))
	failure := checkLogin(cfg, p)
	if failure != "" {
		fmt.Fprintf(e.stdout, "failed:\n  %s\n", failure)
		return "the SMTP login failed: " + failure
	}
	fmt.Fprintln(e.stdout, "ok")
	if !up.SentFolderOn() || up.IMAP() == "" {
		return ""
	}
	fmt.Fprintf(e.stdout, "Checking the Sent folder (IMAP at %s)... ", hostPort(up.IMAP()))
	mailbox, failure := checkSent(cfg, p)
	if failure != "" {
		fmt.Fprintf(e.stdout, "failed:\n  %s\n", failure)
		return "the Sent folder check failed: " + failure
	}
	fmt.Fprintf(e.stdout, "ok (%s)\n", mailbox)
	return ""
}

// printClientSettings tells how to point mail clients at the relay.
func (e *env) printClientSettings(cfg *config.Config, p preset) {
	host, port, err := net.SplitHostPort(cfg.SMTP.Listen)
	if err != nil {
		host, port = cfg.SMTP.Listen, ""
	}
	auth := "none"
	if len(cfg.SMTP.Users) > 0 {
		auth = "the [[smtp.users]] of the config"
	}
	sends := "pixelrelay sends on to " + p.title + " over TLS"
	if p.name == "outbox" {
		sends = "pixelrelay writes the copies to its outbox"
	}
	fmt.Fprintf(e.stdout, "\nPoint your mail client's outgoing (SMTP) server at the relay:\n")
	fmt.Fprint(e.stdout, renderPlain([][]string{
		{"  server", host},
		{"  port", port},
		{"  security", "none (plain SMTP on this machine's loopback; " + sends + ")"},
		{"  authentication", auth},
	}))
}

// printNext prints the commands to run next.
func (e *env) printNext(path string, a *answers) {
	flag := ""
	if found, err := config.Find(""); err != nil || found != path {
		flag = " --config " + displayPath(path)
	}
	fmt.Fprintln(e.stdout, "\nNext:")
	if a.oauth {
		fmt.Fprintln(e.stdout, "  create the OAuth client if not done yet (README: OAuth sign-in), then sign in once:")
		fmt.Fprintf(e.stdout, "    pixelrelay auth login%s\n", flag)
	}
	fmt.Fprintln(e.stdout, "  run the relay and the tracker (README: Run as a service, to keep it running):")
	fmt.Fprintf(e.stdout, "    pixelrelay serve%s\n", flag)
}
