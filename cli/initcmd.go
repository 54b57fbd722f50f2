package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/term"

	"pixelrelay/config"
)

const initHelp = `Usage: pixelrelay init [--provider P] [--address ADDR] [--upstream URL] [--base-url URL]
                       [--password-stdin] [--oauth] [--client-id ID] [--client-secret-file FILE]
                       [--oauth-auth-url URL --oauth-token-url URL]
                       [--imap-url URL] [--ca-file FILE] [--force] [--no-check] [--check] [--json]
                       [--config FILE]

Guided setup. Asks for what it needs (on a terminal; answers given as flags
are not asked), writes a commented config file, keeps the password in a
file beside it that only you can read (0600), checks the SMTP login and the
IMAP Sent folder, and prints how to point mail clients at the relay.
Without a terminal on stdin every answer comes from the flags: a missing one
is an error (exit 2).

The file goes to --config FILE, else $PIXELRELAY_CONFIG, else
$XDG_CONFIG_HOME/pixelrelay/config.toml (~/.config/pixelrelay/config.toml).
An existing file is never replaced without --force (exit 1).

Flags:
  --provider P             gmail, microsoft (Microsoft 365, Outlook.com), icloud,
                           smtp (another server: --upstream) or outbox (copies are
                           written as files under data_dir/outbox; nothing is sent)
  --address ADDR           your address; it is also the login name (smtp: the
                           login name, empty for a server without login)
  --upstream URL           smtp only: smtp://host:587 (STARTTLS) or smtps://host:465
  --base-url URL           where recipients' mail clients reach the tracker
                           (default http://127.0.0.1:8025: this machine only)
  --password-stdin         read the (app) password from stdin (first line)
  --oauth                  sign in with OAuth instead of a password (gmail,
                           microsoft): then run pixelrelay auth login
  --client-id ID           the OAuth client's id (with --oauth)
  --client-secret-file F   a file holding the OAuth client's secret (with --oauth;
                           Google's Desktop clients have one, Microsoft's public
                           clients none)
  --oauth-auth-url URL, --oauth-token-url URL
                           smtp only, with --oauth: the OAuth provider's endpoints
  --imap-url URL           smtp only: the IMAP server of the account's Sent folder
                           (imaps://host:993 or imap://host:143 with STARTTLS);
                           turns the Sent folder clean-up on
  --ca-file FILE           extra CA certificates (PEM) to trust for the servers
  --force                  replace an existing config file (and its password file)
  --no-check               do not sign in to check the login and the Sent folder
  --check                  write nothing: check the login and the Sent folder of the
                           config file in use (after pixelrelay auth login, or an edit)
  --json                   print {"config_file", "password_file", "client_secret_file",
                           "checks": [{"check", "result", "detail"}], "smtp_listen",
                           "next"} instead of the text (questions go to stderr)
  --config FILE            where to write the config file

Examples:
  pixelrelay init
  printf '%s\n' "$APP_PASSWORD" | pixelrelay init --provider gmail \
      --address you@gmail.com --base-url https://track.example.com --password-stdin
  pixelrelay init --provider microsoft --address you@example.com --oauth \
      --client-id 00000000-0000-0000-0000-000000000000 --base-url https://track.example.com
`

func initCommand() *command {
	return &command{
		name:    "init",
		summary: "guided setup: write a config for Gmail, Microsoft 365, iCloud or any SMTP server",
		help:    initHelp,
		run:     runInit,
	}
}

// initFlags are init's flags as given.
type initFlags struct {
	answers
	passwordStdin    bool
	clientSecretFile string
	force, noCheck   bool
	asJSON           bool
	checkOnly        bool
	configPath       string
	set              map[string]bool // the flags given on the command line
}

func parseInitFlags(args []string) (*initFlags, error) {
	fs, cfgPath := newFlags("init")
	f := &initFlags{set: map[string]bool{}}
	fs.StringVar(&f.provider, "provider", "", "")
	fs.StringVar(&f.address, "address", "", "")
	fs.StringVar(&f.upstream, "upstream", "", "")
	fs.StringVar(&f.baseURL, "base-url", "", "")
	fs.BoolVar(&f.passwordStdin, "password-stdin", false, "")
	fs.BoolVar(&f.oauth, "oauth", false, "")
	fs.StringVar(&f.clientID, "client-id", "", "")
	fs.StringVar(&f.clientSecretFile, "client-secret-file", "", "")
	fs.StringVar(&f.authURL, "oauth-auth-url", "", "")
	fs.StringVar(&f.tokenURL, "oauth-token-url", "", "")
	fs.StringVar(&f.imapURL, "imap-url", "", "")
	fs.StringVar(&f.caFile, "ca-file", "", "")
	fs.BoolVar(&f.force, "force", false, "")
	fs.BoolVar(&f.noCheck, "no-check", false, "")
	fs.BoolVar(&f.asJSON, "json", false, "")
	fs.BoolVar(&f.checkOnly, "check", false, "")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	if err := noArgs(pos); err != nil {
		return nil, err
	}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	f.configPath = *cfgPath
	return f, f.secretFromFile()
}

// secretFromFile reads --client-secret-file.
func (f *initFlags) secretFromFile() error {
	if f.clientSecretFile == "" {
		return nil
	}
	b, err := os.ReadFile(expandTilde(f.clientSecretFile))
	if err != nil {
		return fmt.Errorf("--client-secret-file: %w", err)
	}
	f.clientSecret = strings.TrimSpace(string(b))
	return nil
}

func runInit(e *env, args []string) error {
	f, err := parseInitFlags(args)
	if err != nil {
		return err
	}
	if f.checkOnly {
		return e.checkExisting(f)
	}
	path := initTarget(f.configPath)
	if err := refuseExisting(path, f.force); err != nil {
		return err
	}
	q := e.asker()
	if f.asJSON {
		q.out = e.stderr // stdout is for the JSON
	}
	if f.passwordStdin {
		if q.interactive {
			return usagef("--password-stdin needs the password piped in, not a terminal")
		}
		if f.password, err = readPassword(q.in); err != nil {
			return err
		}
	}
	if q.interactive {
		fmt.Fprintf(q.out, "Setting up pixelrelay: a few questions, then the config goes to %s\n(Ctrl-C stops without writing anything).\n", displayPath(path))
	}
	if err := gather(&f.answers, f.set, q); err != nil {
		return err
	}
	files, err := writeSetup(path, &f.answers)
	if err != nil {
		return err
	}
	return e.finishInit(files, f, q)
}

// initTarget is where init writes: --config, $PIXELRELAY_CONFIG, else
// the per-user config file.
func initTarget(flagPath string) string {
	files := config.SearchPath(flagPath)
	return files[len(files)-1]
}

// refuseExisting fails when path exists and --force was not given.
func refuseExisting(path string, force bool) error {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	case st.IsDir():
		return fmt.Errorf("%s is a directory", displayPath(path))
	case !force:
		return fmt.Errorf("%s already exists: pass --force to replace it, or --config FILE to write another file", displayPath(path))
	}
	return nil
}

// readPassword reads the first line of r.
func readPassword(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, 64<<10))
	if err != nil {
		return "", fmt.Errorf("reading the password from stdin: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimRight(line, "\r")
	if line == "" {
		return "", usagef("--password-stdin: stdin holds no password")
	}
	return line, nil
}

// asker returns the prompter for e: interactive when stdin is a terminal.
func (e *env) asker() *asker {
	q := &asker{in: e.stdin, out: e.stdout}
	if e.stdin == nil {
		q.in = os.Stdin
		fd := int(os.Stdin.Fd())
		if term.IsTerminal(fd) {
			q.interactive = true
			q.readSecret = func() (string, error) { return readNoEcho(fd, q.out) }
		}
	}
	return q
}

// readNoEcho reads a line from the terminal fd without echo. Interrupted
// (Ctrl-C), it gives the terminal its echo back before exiting.
func readNoEcho(fd int, out io.Writer) (string, error) {
	st, err := term.GetState(fd)
	if err != nil {
		return "", err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-sig:
			term.Restore(fd, st)
			fmt.Fprintln(out)
			os.Exit(130) // as a shell reports SIGINT; nothing was written yet
		case <-done:
		}
	}()
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(out)
	return string(b), err
}

// expandTilde expands a leading "~/".
func expandTilde(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return p
}
