package cli

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"pixelrelay/config"
	"pixelrelay/relay/oauth"
)

// InitResponse is what `init --json` prints.
type InitResponse struct {
	ConfigFile       string `json:"config_file"`
	PasswordFile     string `json:"password_file,omitempty"`
	ClientSecretFile string `json:"client_secret_file,omitempty"`
	// Checks: the SMTP login and the Sent folder, in that order; none
	// with --no-check or the outbox.
	Checks []InitCheck `json:"checks"`
	// SMTPListen is where mail clients submit (no TLS, no AUTH unless
	// smtp.users).
	SMTPListen string `json:"smtp_listen"`
	// Next are the commands to run next.
	Next []string `json:"next"`
}

// InitCheck is one check of init.
type InitCheck struct {
	Check  string `json:"check"`  // "smtp_login" | "sent_folder"
	Result string `json:"result"` // "ok" | "failed" | "not checked"
	Detail string `json:"detail"` // the mailbox, or why it failed or was not checked
}

// finishInit runs the checks unless noCheck and reports what was written,
// how to point mail clients at the relay and the next commands. A failed
// check fails the command (exit 1) after all that was printed.
func (e *env) finishInit(files setupFiles, f *initFlags, q *asker) error {
	a := &f.answers
	p, _ := presetOf(a.provider)
	r := InitResponse{ConfigFile: files.config, PasswordFile: files.password, ClientSecretFile: files.clientSecret,
		Checks: []InitCheck{}, Next: nextCommands(files.config, a)}
	cfg, err := validConfig(files.config)
	if err != nil {
		return err
	}
	r.SMTPListen = cfg.SMTP.Listen
	if !f.asJSON {
		e.printWritten(r, p)
	}
	if a.oauth && q.interactive && !f.asJSON && e.signInNow(q, cfg) {
		r.Next = r.Next[1:] // no pixelrelay auth login
	}
	if !f.noCheck && p.name != "outbox" {
		r.Checks = runChecks(e.progress(f.asJSON), cfg, p, true)
	}
	if err := e.printInit(r, cfg, p, f.asJSON); err != nil {
		return err
	}
	e.initNotes(a, p)
	if err := failedCheck(r); err != nil {
		return fmt.Errorf("%s is written, but %w; fix it and run pixelrelay init --force again, or edit the file and check it with pixelrelay init --check", displayPath(files.config), err)
	}
	return nil
}

// progress is where the checks tell how they go: nowhere with --json.
func (e *env) progress(asJSON bool) io.Writer {
	if asJSON {
		return io.Discard
	}
	return e.stdout
}

// printInit prints r as JSON, or the mail client settings and the next
// commands.
func (e *env) printInit(r InitResponse, cfg *config.Config, p preset, asJSON bool) error {
	if asJSON {
		return printJSON(e.stdout, r)
	}
	e.printClientSettings(cfg, p)
	e.printNext(r.Next)
	return nil
}

// initNotes are the warnings about what was written.
func (e *env) initNotes(a *answers, p preset) {
	if os.Getenv(config.EnvUpstreamPassword) != "" && a.password != "" {
		e.note("$%s is set: it overrides the password file (for serve and for these checks)", config.EnvUpstreamPassword)
	}
	if loopbackURL(a.baseURL) && p.name != "outbox" {
		e.note("tracking.base_url %s is reached from this machine only: opens elsewhere are not counted until it is a public URL (README: Expose the tracker over HTTPS)", a.baseURL)
	}
}

// signInNow offers the OAuth sign-in at once; true when it was done.
func (e *env) signInNow(q *asker, cfg *config.Config) bool {
	ans, err := q.ask(question{flag: "oauth", prompt: "Sign in now (yes, no)", def: "yes",
		help: "The relay needs one sign-in with the provider (pixelrelay auth login): it opens the consent page in your browser.",
		check: func(s string) error {
			if s != "yes" && s != "no" {
				return fmt.Errorf("want yes or no, not %q", s)
			}
			return nil
		}})
	if err != nil || ans != "yes" {
		return false
	}
	if err := e.authLogin(cfg, config.DefaultAccount, false, 5*time.Minute); err != nil {
		fmt.Fprintf(q.out, "The sign-in failed: %v\nRun pixelrelay auth login once the OAuth client is ready.\n", oneLine(err.Error()))
		return false
	}
	return true
}

func (e *env) printWritten(r InitResponse, p preset) {
	fmt.Fprintf(e.stdout, "\nWrote %s\n", displayPath(r.ConfigFile))
	if r.PasswordFile != "" {
		fmt.Fprintf(e.stdout, "  and %s (the %s, readable by you only)\n", displayPath(r.PasswordFile), p.secret)
	}
	if r.ClientSecretFile != "" {
		fmt.Fprintf(e.stdout, "  and %s (the OAuth client secret, readable by you only)\n", displayPath(r.ClientSecretFile))
	}
}

var checkNames = map[string]string{"smtp_login": "SMTP login", "sent_folder": "Sent folder"}

// runChecks checks the SMTP login and then the Sent folder, telling w
// about each as it goes. With waitSignIn an OAuth account nobody signed
// in yet is not checked (init just wrote it); else that fails the check.
func runChecks(w io.Writer, cfg *config.Config, p preset, waitSignIn bool) []InitCheck {
	up := cfg.Upstream
	fmt.Fprintln(w)
	sent := up.SentFolderOn() && up.IMAP() != ""
	if up.Auth == "oauth" && waitSignIn {
		if st, err := oauth.ReadStatus(cfg.DataDir, config.DefaultAccount); err != nil || !st.SignedIn {
			const why = "needs the OAuth sign-in first (pixelrelay auth login)"
			fmt.Fprintln(w, "Not checked yet: the SMTP login and the Sent folder "+why+".")
			out := []InitCheck{{"smtp_login", "not checked", why}}
			if sent {
				out = append(out, InitCheck{"sent_folder", "not checked", why})
			}
			return out
		}
	}
	who := up.Username
	if who == "" {
		who = "no login"
	}
	fmt.Fprintf(w, "Checking the SMTP login (%s at %s)... ", who, hostPort(up.URL))
	out := []InitCheck{result(w, "smtp_login", "", checkLogin(cfg, p))}
	if !sent || out[0].Result != "ok" {
		return out
	}
	fmt.Fprintf(w, "Checking the Sent folder (IMAP at %s)... ", hostPort(up.IMAP()))
	mailbox, failure := checkSent(cfg, p)
	return append(out, result(w, "sent_folder", mailbox, failure))
}

// result is one check's outcome, printed to w.
func result(w io.Writer, check, detail, failure string) InitCheck {
	if failure != "" {
		fmt.Fprintf(w, "failed:\n  %s\n", failure)
		return InitCheck{check, "failed", failure}
	}
	if detail != "" {
		fmt.Fprintf(w, "ok (%s)\n", detail)
	} else {
		fmt.Fprintln(w, "ok")
	}
	return InitCheck{check, "ok", detail}
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

// nextCommands are the commands to run after init.
func nextCommands(path string, a *answers) []string {
	flag := ""
	if found, err := config.Find(""); err != nil || found != path {
		flag = " --config " + displayPath(path)
	}
	var out []string
	if a.oauth {
		out = append(out, "pixelrelay auth login"+flag)
	}
	return append(out, "pixelrelay serve"+flag)
}

// printNext prints the commands to run next, each after what it is for.
func (e *env) printNext(cmds []string) {
	fmt.Fprintln(e.stdout, "\nNext:")
	for _, c := range cmds {
		what := "run the relay and the tracker (README: Run as a service, to keep it running):"
		if strings.HasPrefix(c, "pixelrelay auth login") {
			what = "create the OAuth client if not done yet (README: Sign in with OAuth), then sign in once:"
		}
		fmt.Fprintf(e.stdout, "  %s\n    %s\n", what, c)
	}
}

// checkExisting is init --check: the checks of the config file in use.
func (e *env) checkExisting(f *initFlags) error {
	for name := range f.set {
		if name != "check" && name != "json" && name != "config" {
			return usagef("--check takes no other flag than --config and --json, not --%s", name)
		}
	}
	path, err := config.Find(f.configPath)
	if err != nil {
		return err
	}
	if path == "" {
		return fmt.Errorf("no config file to check (run pixelrelay init first)")
	}
	cfg, err := validConfig(path)
	if err != nil {
		return err
	}
	p, ok := presetOf(cfg.Upstream.Provider())
	if !ok {
		p, _ = presetOf("smtp")
	}
	r := InitResponse{ConfigFile: path, Checks: []InitCheck{}, SMTPListen: cfg.SMTP.Listen}
	if cfg.Upstream.URL != "outbox" && cfg.Upstream.URL != "" {
		r.Checks = runChecks(e.progress(f.asJSON), cfg, p, false)
	}
	if f.asJSON {
		if err := printJSON(e.stdout, r); err != nil {
			return err
		}
	}
	if err := failedCheck(r); err != nil {
		return fmt.Errorf("%s: %w", displayPath(path), err)
	}
	return nil
}

// failedCheck is the error of the first failed check, nil when none.
func failedCheck(r InitResponse) error {
	for _, c := range r.Checks {
		if c.Result == "failed" {
			return fmt.Errorf("the %s check failed: %s", checkNames[c.Check], c.Detail)
		}
	}
	return nil
}
