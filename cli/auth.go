package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"pixelrelay/config"
	"pixelrelay/relay/oauth"
)

const authHelp = `Usage: pixelrelay auth login [--account NAME] [--no-browser] [--timeout DUR] [--config FILE]
       pixelrelay auth status [--json] [--config FILE]

login signs an account whose auth = "oauth" in with its provider (Google,
Microsoft or the oauth_auth_url/oauth_token_url of the config): it opens the
provider's consent page in the browser (or only prints its URL), waits for
the browser to come back to a loopback address of this machine
(http://127.0.0.1:PORT/, for Microsoft http://localhost:PORT/; PKCE), and
stores the refresh token in data_dir/oauth (readable by its owner only). A
running serve uses the new sign-in at its next delivery: copies that waited
for it go out then. Run it again whenever a delivery error says so.

status shows each account's sign-in method and, for OAuth accounts, whether
a refresh token is stored, when the current access token expires, the last
refresh and the last refresh error (as recorded in data_dir/oauth by serve).

Flags:
  --account NAME  the [[accounts]] block to sign in (default: [upstream])
  --no-browser    only print the URL; open it in a browser on this machine
                  (on a machine without one: ssh -L PORT:127.0.0.1:PORT to it
                  and open the URL on yours)
  --timeout DUR   how long to wait for the sign-in (default 5m)
  --json          status: print {"accounts":[...]} instead of a table
  --config FILE   the config file naming the accounts and data_dir

Example:
  pixelrelay auth login --account work
`

func authCommand() *command {
	return &command{
		name:    "auth",
		summary: "OAuth sign-in of upstream accounts (login, status)",
		help:    authHelp,
		run:     runAuth,
	}
}

func runAuth(e *env, args []string) error {
	fs, cfgPath := newFlags("auth")
	account := fs.String("account", config.DefaultAccount, "")
	noBrowser := fs.Bool("no-browser", false, "")
	timeout := fs.Duration("timeout", 5*time.Minute, "")
	asJSON := fs.Bool("json", false, "")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("auth needs a subcommand: pixelrelay auth login or pixelrelay auth status")
	}
	if err := noArgs(pos[1:]); err != nil {
		return err
	}
	cfg, err := validConfig(*cfgPath)
	if err != nil {
		return err
	}
	switch pos[0] {
	case "login":
		return e.authLogin(cfg, *account, *noBrowser, *timeout)
	case "status":
		return e.authStatus(cfg, *asJSON)
	}
	return usagef("unknown auth subcommand %q (login or status)", pos[0])
}

// validConfig loads the config file; a file with problems is refused in
// one line.
func validConfig(flagPath string) (*config.Config, error) {
	path, err := config.Find(flagPath)
	if err != nil {
		return nil, err
	}
	cfg, err := config.LoadValid(path)
	var ps config.Problems
	if errors.As(err, &ps) && len(ps) > 0 {
		return nil, fmt.Errorf("config %s is invalid: %s (%d problem(s); see pixelrelay config check)",
			displayPath(path), ps[0], len(ps))
	}
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", displayPath(path), err)
	}
	return cfg, nil
}

func (e *env) authLogin(cfg *config.Config, name string, noBrowser bool, timeout time.Duration) error {
	a, ok := cfg.Account(name)
	if !ok {
		var names []string
		for _, a := range cfg.Accounts() {
			names = append(names, a.Name)
		}
		return fmt.Errorf("no account %q in the config (accounts: %s)", name, strings.Join(names, ", "))
	}
	if a.Auth != "oauth" {
		return fmt.Errorf("account %s does not use OAuth (auth = %q): set auth = \"oauth\" and its oauth_* keys first", name, a.Auth)
	}
	open := func(url string) error {
		fmt.Fprintf(e.stdout, "Sign in account %s (%s) with its provider at this URL:\n\n  %s\n\n", name, a.Username, url)
		if noBrowser {
			fmt.Fprintln(e.stdout, "Open it in a browser on this machine (the provider sends the browser back to a loopback address here).")
		} else if err := openBrowser(url); err != nil {
			fmt.Fprintf(e.stdout, "Could not open a browser (%v): open the URL yourself.\n", err)
		}
		fmt.Fprintf(e.stdout, "Waiting up to %s for the sign-in...\n", timeout)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	st, err := oauth.Login(ctx, oauth.FromConfig(cfg.DataDir, a), open)
	if err != nil {
		return fmt.Errorf("sign-in of account %s: %w", name, err)
	}
	fmt.Fprintf(e.stdout, "Signed in account %s (access token valid until %s); the refresh token is in %s. A running serve uses it at its next delivery.\n",
		name, stamp(st.Expiry, e.now()), oauth.TokenPath(cfg.DataDir, name))
	return nil
}

// AuthAccount is one account in `auth status --json`.
type AuthAccount struct {
	Account  string `json:"account"`
	Method   string `json:"method"` // "password" | "oauth" | "none"
	Provider string `json:"provider,omitempty"`
	Username string `json:"username,omitempty"`
	oauth.Status
}

func (e *env) authStatus(cfg *config.Config, asJSON bool) error {
	var out []AuthAccount
	for _, a := range cfg.Accounts() {
		r := AuthAccount{Account: a.Name, Method: a.Auth, Provider: a.OAuthProvider, Username: a.Username}
		switch {
		case a.Auth == "oauth":
			st, err := oauth.ReadStatus(cfg.DataDir, a.Name)
			if err != nil {
				return err
			}
			r.Status = st
		case a.Username == "":
			r.Method = "none"
		}
		r.Status.Account = a.Name
		out = append(out, r)
	}
	if asJSON {
		return printJSON(e.stdout, struct {
			Accounts []AuthAccount `json:"accounts"`
		}{out})
	}
	t := &table{header: []string{"ACCOUNT", "METHOD", "USER", "SIGNED IN", "TOKEN EXPIRES", "LAST REFRESH", "LAST ERROR"},
		flex: map[int]int{6: 20}}
	now := e.now()
	for _, r := range out {
		if r.Method != "oauth" {
			t.add(r.Account, r.Method, r.Username, "-", "-", "-", "-")
			continue
		}
		signed := "no"
		if r.SignedIn {
			signed = stamp(r.SavedAt, now)
		}
		lastErr := r.LastError
		if lastErr == "" {
			lastErr = "-"
		}
		t.add(r.Account, methodName(r), r.Username, signed, stamp(r.Expiry, now), stamp(r.LastRefresh, now), lastErr)
	}
	fmt.Fprint(e.stdout, t.render(e.width))
	return nil
}

func methodName(r AuthAccount) string {
	if slices.Contains([]string{oauth.Google, oauth.Microsoft}, r.Provider) {
		return "oauth (" + r.Provider + ")"
	}
	return "oauth"
}

// warnSignIns logs each OAuth account nobody signed in yet.
func warnSignIns(log *slog.Logger, cfg *config.Config) {
	for _, a := range cfg.Accounts() {
		if a.Auth != "oauth" {
			continue
		}
		if st, err := oauth.ReadStatus(cfg.DataDir, a.Name); err == nil && !st.SignedIn {
			log.Warn("account "+a.Name+" uses OAuth but is not signed in: run "+oauth.LoginCommand(a.Name)+" (its copies wait until then)",
				"account", a.Name)
		}
	}
}
