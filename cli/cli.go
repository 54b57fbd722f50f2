// Package cli is pixelrelay's command line: serve and the daily commands.
//
// Every command accepts --config FILE and --help; flags may come before or
// after positional arguments. Exit codes: 0 success, 1 failure (one line on
// stderr), 2 bad usage. The query commands (opens, messages, status, queue,
// keys rotate, purge, reclassify) talk to the running server's admin API.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"pixelrelay/config"
)

// Version is set at build time with -ldflags "-X pixelrelay/cli.Version=...".
var Version = "0.1.0-dev"

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// env is what a command runs with: where output goes, the clock, and how
// wide the terminal is. Tests build their own.
type env struct {
	stdin  io.Reader // nil: os.Stdin
	stdout io.Writer
	stderr io.Writer
	now    func() time.Time
	// width is the terminal width that long cells are cut to; 0 means
	// stdout is not a terminal and nothing is cut.
	width int
	// color allows colour codes in tables (see colorOn).
	color bool
}

// command is one top-level command.
type command struct {
	name    string
	summary string
	// help is the full --help text: synopsis, description, flags, example.
	help string
	run  func(e *env, args []string) error
}

// commands lists the commands in the order `pixelrelay help` shows them.
func commands() []*command {
	return []*command{
		initCommand(),
		serveCommand(),
		opensCommand(),
		clicksCommand(),
		messagesCommand(),
		statusCommand(),
		queueCommand(),
		keysCommand(),
		purgeCommand(),
		storeCommand(),
		reclassifyCommand(),
		webhooksCommand(),
		dashboardCommand(),
		authCommand(),
		configCommand(),
		versionCommand(),
	}
}

func findCommand(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}

// Main runs one command and returns the process exit code:
// 0 success, 1 failure, 2 bad usage.
func Main(args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr, now: time.Now, width: termWidth(stdout),
		color: colorOn(isTerminal(stdout), os.Getenv)}
	return e.main(args)
}

func (e *env) main(args []string) int {
	args = hoistConfig(args)
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usageText())
		return exitUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		return e.help(args[1:])
	case "-version", "--version":
		name = "version"
	}
	c := findCommand(name)
	if c == nil {
		return e.report("", unknownCommand(name))
	}
	return e.report(c.name, c.run(e, args[1:]))
}

// unknownCommand is the usage error for a command that does not exist,
// suggesting the nearest one for a typo.
func unknownCommand(name string) error {
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	if best := config.Closest(name, names); best != "" {
		return usagef("unknown command %q (did you mean %s?)", name, best)
	}
	return usagef("unknown command %q", name)
}

// hoistConfig lets --config FILE come before the command
// ("pixelrelay --config f.toml opens"): it is moved after it.
func hoistConfig(args []string) []string {
	var flags []string
	for len(args) > 0 {
		a := args[0]
		switch {
		case (a == "--config" || a == "-config") && len(args) > 1:
			flags, args = append(flags, a, args[1]), args[2:]
		case strings.HasPrefix(a, "--config=") || strings.HasPrefix(a, "-config="):
			flags, args = append(flags, a), args[1:]
		default:
			if len(flags) == 0 || len(args) == 0 {
				return args
			}
			return append(append([]string{args[0]}, flags...), args[1:]...)
		}
	}
	return args
}

// help answers `pixelrelay help [COMMAND]`.
func (e *env) help(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stdout, usageText())
		return exitOK
	}
	c := findCommand(args[0])
	if c == nil {
		return e.report("", unknownCommand(args[0]))
	}
	fmt.Fprint(e.stdout, c.help)
	return exitOK
}

// report turns a command's error into its exit code and one line on stderr.
func (e *env) report(cmd string, err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, errHelp) {
		if c := findCommand(cmd); c != nil {
			fmt.Fprint(e.stdout, c.help)
		}
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		see := "pixelrelay help"
		if cmd != "" {
			see = "pixelrelay " + cmd + " --help"
		}
		fmt.Fprintf(e.stderr, "pixelrelay: %s; see %s\n", oneLine(ue.msg), see)
		return exitUsage
	}
	var ec *exitCode
	if errors.As(err, &ec) {
		if ec.msg != "" {
			fmt.Fprintln(e.stderr, prefixed(ec.msg))
		}
		return ec.code
	}
	fmt.Fprintln(e.stderr, prefixed(err.Error()))
	return exitFailure
}

// prefixed is msg on one line, starting with "pixelrelay" so the user
// knows who speaks ("pixelrelay is not running…" needs no second prefix).
func prefixed(msg string) string {
	msg = oneLine(msg)
	if strings.HasPrefix(msg, "pixelrelay ") {
		return msg
	}
	return "pixelrelay: " + msg
}

// usageError is bad usage: exit 2 with a pointer to --help.
type usageError struct{ msg string }

func (u *usageError) Error() string { return u.msg }

func usagef(format string, a ...any) error {
	return &usageError{msg: fmt.Sprintf(format, a...)}
}

// exitCode ends a command with a given code and an optional one-line message
// (used where a command has already printed its own output).
type exitCode struct {
	code int
	msg  string
}

func (x *exitCode) Error() string { return x.msg }

// errHelp is returned when the user asked for --help.
var errHelp = errors.New("help requested")

// oneLine keeps a message on one line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.Join(strings.Fields(s), " ")
}

func usageText() string {
	var b strings.Builder
	b.WriteString("pixelrelay: an SMTP relay that adds a tracking pixel to HTML mail, and the tracker that counts the opens.\n\n")
	b.WriteString("Usage: pixelrelay COMMAND [flags]\n\nCommands:\n")
	rows := [][]string{}
	for _, c := range commands() {
		name := c.name
		switch c.name {
		case "keys":
			name = "keys rotate"
		case "config":
			name = "config check"
		case "webhooks":
			name = "webhooks [test [NAME]]"
		}
		rows = append(rows, []string{"  " + name, c.summary})
	}
	rows = append(rows, []string{"  help [COMMAND]", "show this list, or one command's flags and an example"})
	b.WriteString(renderPlain(rows))
	b.WriteString("\nEvery command accepts --config FILE (default: $PIXELRELAY_CONFIG, ./pixelrelay.toml,\n")
	b.WriteString("$XDG_CONFIG_HOME/pixelrelay/config.toml, else built-in defaults) and --help.\n")
	b.WriteString("Exit codes: 0 success, 1 failure, 2 bad usage.\n")
	return b.String()
}

// termWidth is the width of the terminal w writes to, or 0 when w is not a
// terminal. $COLUMNS, when set, wins (also for pipes).
func termWidth(w io.Writer) int {
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	if !isTerminal(w) {
		return 0
	}
	width, _, err := term.GetSize(int(w.(*os.File).Fd()))
	if err != nil || width <= 0 {
		return 0
	}
	return width
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
