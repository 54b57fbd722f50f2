package cli

import (
	"bufio"
	"fmt"
	"io"
	"net/url"
	"strings"
)

// answers are what init needs to write a config.
type answers struct {
	provider     string // a preset's name
	address      string // the login name; "" = no login (smtp only)
	upstream     string // upstream.url
	imapURL      string // upstream.imap_url; "" = the preset's
	caFile       string
	baseURL      string
	oauth        bool
	clientID     string
	clientSecret string
	authURL      string // oauth_auth_url: smtp only, with tokenURL
	tokenURL     string
	password     string
}

// preset is what init knows of a provider.
type preset struct {
	name   string // as --provider takes it
	title  string // as people call it
	smtp   string // upstream.url; "" = asked (smtp) or none (outbox)
	imap   string // upstream.imap_url
	oauth  string // upstream.oauth_provider; "" = no OAuth
	secret string // what the password is called
	// help explains the password question.
	help string
}

var presets = []preset{
	{name: "gmail", title: "Gmail", smtp: "smtp://smtp.gmail.com:587", imap: "imaps://imap.gmail.com:993",
		oauth: "google", secret: "app password",
		help: "A 16-letter app password: Google Account, Security, 2-Step Verification, App passwords (myaccount.google.com/apppasswords)."},
	{name: "microsoft", title: "Microsoft 365", smtp: "smtp://smtp.office365.com:587", imap: "imaps://outlook.office365.com:993",
		oauth: "microsoft", secret: "password",
		help: "The mailbox's password, or an app password where your organisation uses them; SMTP AUTH must be on for the mailbox."},
	{name: "icloud", title: "iCloud", smtp: "smtp://smtp.mail.me.com:587", imap: "imaps://imap.mail.me.com:993",
		secret: "app-specific password",
		help:   "An app-specific password: account.apple.com, Sign-In and Security, App-Specific Passwords."},
	{name: "smtp", title: "the SMTP server", secret: "password",
		help: "The password of that login at the server."},
	{name: "outbox", title: "the outbox"},
}

func presetOf(name string) (preset, bool) {
	for _, p := range presets {
		if p.name == name {
			return p, true
		}
	}
	return preset{}, false
}

// asker asks the user, one question at a time. Not interactive, it only
// says which flag is missing.
type asker struct {
	in          io.Reader
	out         io.Writer
	interactive bool
	// readSecret reads a line without echo; nil reads a plain line.
	readSecret func() (string, error)
	lines      *bufio.Reader
}

// question is one thing to ask.
type question struct {
	flag   string // the flag that answers it
	prompt string
	help   string // one line: why it is asked
	def    string // taken on an empty answer; "" = an answer is needed
	// optional: an empty answer is an answer.
	optional bool
	secret   bool
	check    func(string) error
}

// ask returns the answer to q. Not interactive, it returns q.def or a
// usage error naming the flag.
func (q *asker) ask(qu question) (string, error) {
	if !q.interactive {
		if qu.def != "" || qu.optional {
			return qu.def, nil
		}
		return "", usagef("--%s is needed (stdin is not a terminal, so init asks nothing)", qu.flag)
	}
	fmt.Fprintf(q.out, "\n%s\n", qu.help)
	for tries := 0; ; tries++ {
		ans, err := q.read(qu)
		if err != nil {
			return "", err
		}
		if ans == "" && !qu.optional {
			ans = qu.def
		}
		if ans == "" && !qu.optional {
			fmt.Fprintln(q.out, "  An answer is needed.")
		} else if err := check(qu, ans); err != nil {
			fmt.Fprintf(q.out, "  %v\n", err)
		} else {
			return ans, nil
		}
		if tries == 4 {
			return "", usagef("no usable answer for --%s", qu.flag)
		}
	}
}

func check(qu question, ans string) error {
	if qu.check == nil || (ans == "" && qu.optional) {
		return nil
	}
	return qu.check(ans)
}

// read prints the prompt and reads one answer.
func (q *asker) read(qu question) (string, error) {
	if qu.def != "" {
		fmt.Fprintf(q.out, "%s [%s]: ", qu.prompt, qu.def)
	} else {
		fmt.Fprintf(q.out, "%s: ", qu.prompt)
	}
	if qu.secret && q.readSecret != nil {
		s, err := q.readSecret()
		return strings.TrimSpace(s), err
	}
	if q.lines == nil {
		q.lines = bufio.NewReader(q.in)
	}
	line, err := q.lines.ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("no answer for --%s: %v", qu.flag, err)
	}
	return strings.TrimSpace(line), nil
}

// gather fills in a: each answer not given as a flag (set) is asked, and
// every answer checked.
func gather(a *answers, set map[string]bool, q *asker) error {
	if err := askOrCheck(q, set, &a.provider, providerQuestion()); err != nil {
		return err
	}
	p, _ := presetOf(a.provider)
	if err := gatherServer(a, set, q, p); err != nil {
		return err
	}
	if p.name != "outbox" {
		if err := gatherLogin(a, set, q, p); err != nil {
			return err
		}
	}
	return askOrCheck(q, set, &a.baseURL, question{flag: "base-url", prompt: "Tracker URL",
		help: "The URL recipients' mail clients load the pixel from and follow links through: a public https:// address\n" +
			"that reaches this machine's port 8025 (README: Expose the tracker over HTTPS). The default works on this machine only.",
		def: "http://127.0.0.1:8025", check: checkBaseURL})
}

// askOrCheck asks qu unless its flag was given; a given value is checked.
func askOrCheck(q *asker, set map[string]bool, v *string, qu question) error {
	if set[qu.flag] {
		if err := check(qu, *v); err != nil {
			return usagef("--%s: %v", qu.flag, err)
		}
		return nil
	}
	ans, err := q.ask(qu)
	*v = ans
	return err
}

func providerQuestion() question {
	var names []string
	for _, p := range presets {
		names = append(names, p.name)
	}
	return question{flag: "provider", prompt: "Provider (" + strings.Join(names, ", ") + ")",
		help: "Where pixelrelay sends your mail: gmail, microsoft (Microsoft 365, Outlook.com), icloud, smtp (another server),\n" +
			"or outbox (each copy is written as a file; nothing is sent: for trying it out).",
		check: func(s string) error {
			if _, ok := presetOf(s); !ok {
				return fmt.Errorf("unknown provider %q: want one of %s", s, strings.Join(names, ", "))
			}
			return nil
		}}
}

// gatherServer settles the upstream and IMAP URLs.
func gatherServer(a *answers, set map[string]bool, q *asker, p preset) error {
	if p.name != "smtp" {
		for _, fl := range []string{"upstream", "imap-url"} {
			if set[fl] {
				return usagef("--%s is for --provider smtp (%s has its own servers)", fl, p.name)
			}
		}
		a.upstream, a.imapURL = p.smtp, p.imap
		if p.name == "outbox" {
			a.upstream = "outbox"
		}
		return nil
	}
	if err := askOrCheck(q, set, &a.upstream, question{flag: "upstream", prompt: "SMTP server URL",
		help:  "Your provider's submission server: smtp://host:587 (STARTTLS) or smtps://host:465 (TLS).",
		check: checkUpstream}); err != nil {
		return err
	}
	return askOrCheck(q, set, &a.imapURL, question{flag: "imap-url", prompt: "IMAP server URL (empty: none)",
		help: "If that server files sent mail in your Sent folder, its IMAP server (imaps://host:993), so that pixelrelay\n" +
			"replaces the copies with pixels there by one clean copy. Leave it empty otherwise.",
		optional: true, check: checkIMAP})
}

// gatherLogin settles the address and how to sign in.
func gatherLogin(a *answers, set map[string]bool, q *asker, p preset) error {
	addr := question{flag: "address", prompt: "Your address",
		help: "Your email address at " + p.title + "; it is also the login name.", check: checkAddress}
	if p.name == "smtp" {
		addr = question{flag: "address", prompt: "Login name (empty: none)", optional: true,
			help: "The login name at that server, usually your address. Leave it empty if the server takes mail without a login."}
	}
	if err := askOrCheck(q, set, &a.address, addr); err != nil {
		return err
	}
	if a.address == "" {
		if set["password-stdin"] {
			return usagef("--password-stdin needs --address (the login name)")
		}
		return nil
	}
	if err := gatherMethod(a, set, q, p); err != nil {
		return err
	}
	if a.oauth {
		return gatherClient(a, set, q, p)
	}
	err := askOrCheck(q, set, &a.password, question{flag: "password-stdin", prompt: titleCase(p.secret) + " (not shown)",
		help: p.help, secret: true})
	if p.name == "gmail" {
		// Google shows app passwords in groups of four: "abcd efgh ijkl mnop".
		a.password = strings.ReplaceAll(a.password, " ", "")
	}
	return err
}

// gatherMethod settles password or OAuth.
func gatherMethod(a *answers, set map[string]bool, q *asker, p preset) error {
	custom := set["oauth-auth-url"] || set["oauth-token-url"]
	if custom && (p.name != "smtp" || !a.oauth) {
		return usagef("--oauth-auth-url and --oauth-token-url are for --provider smtp with --oauth")
	}
	if set["oauth"] {
		switch {
		case !a.oauth || p.oauth != "":
		case p.name != "smtp":
			return usagef("--oauth is for gmail and microsoft, and for smtp with --oauth-auth-url and --oauth-token-url")
		case a.authURL == "" || a.tokenURL == "":
			return usagef("--oauth with --provider smtp needs --oauth-auth-url and --oauth-token-url (the provider's endpoints)")
		}
		return nil
	}
	if p.oauth == "" || set["password-stdin"] {
		return nil
	}
	def, help := "password", "An app password is the simpler choice for a personal Gmail account with 2-Step Verification;\n"+
		"Google Workspace accounts whose admin turned app passwords off need oauth (an OAuth client you create first)."
	if p.name == "microsoft" {
		def, help = "oauth", "Microsoft 365 turns basic SMTP authentication off at the end of December 2026: choose oauth (an app\n"+
			"registration you create first) unless your admin keeps SMTP AUTH with passwords on."
	}
	if !q.interactive {
		return usagef("--password-stdin or --oauth is needed (stdin is not a terminal, so init asks nothing)")
	}
	method, err := q.ask(question{flag: "oauth", prompt: "Sign in with (password, oauth)", help: help, def: def,
		check: func(s string) error {
			if s != "password" && s != "oauth" {
				return fmt.Errorf("want password or oauth, not %q", s)
			}
			return nil
		}})
	a.oauth = method == "oauth"
	return err
}

// gatherClient settles the OAuth client.
func gatherClient(a *answers, set map[string]bool, q *asker, p preset) error {
	if err := askOrCheck(q, set, &a.clientID, question{flag: "client-id", prompt: "OAuth client id",
		help: "The id of the OAuth client you created for pixelrelay (README: Sign in with OAuth: " + oauthHowTo(p) + ")."}); err != nil {
		return err
	}
	if set["client-secret-file"] {
		return nil
	}
	help := "Its client secret (Google shows it beside the id)."
	if p.oauth == "microsoft" {
		help = "Its client secret; empty for a public client (\"Allow public client flows\"), the usual choice."
	}
	if !q.interactive || p.oauth == "" {
		if p.oauth == "google" {
			return usagef("--client-secret-file is needed (a Google Desktop client has a secret)")
		}
		return nil
	}
	var err error
	a.clientSecret, err = q.ask(question{flag: "client-secret-file", prompt: "OAuth client secret (not shown)",
		help: help, secret: true, optional: p.oauth == "microsoft"})
	return err
}

func oauthHowTo(p preset) string {
	switch p.oauth {
	case "":
		return "an installed-app client whose redirect is a loopback address"
	case "microsoft":
		return "an app registration with SMTP.Send, IMAP.AccessAsUser.All and offline_access"
	}
	return "a Desktop app client with the https://mail.google.com/ scope"
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func checkUpstream(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Hostname() == "" {
		return fmt.Errorf("%q: want smtp://host:587 or smtps://host:465", s)
	}
	return nil
}

func checkIMAP(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "imap" && u.Scheme != "imaps") || u.Hostname() == "" {
		return fmt.Errorf("%q: want imaps://host:993 or imap://host:143", s)
	}
	return nil
}

func checkBaseURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: want https://host (or http://)", s)
	}
	return nil
}

func checkAddress(s string) error {
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || strings.ContainsAny(s, " <>\"") {
		return fmt.Errorf("%q is not an address like you@example.com", s)
	}
	return nil
}
