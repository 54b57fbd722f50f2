package cli

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// newFlags makes a command's flag set with the flags every command has.
// The returned *string receives --config.
func newFlags(name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	cfg := fs.String("config", "", "config file")
	return fs, cfg
}

// parseArgs parses flags that may come before, between or after the
// positional arguments ("opens ID --json" and "opens --json ID" are the
// same). "--" ends the flags. It returns the positional arguments; a
// parse failure is a *usageError, --help is errHelp.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, flagError(err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// flag stops at the first non-flag, or after "--".
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// flagError rewords the flag package's errors for people.
func flagError(err error) error {
	if err == flag.ErrHelp {
		return errHelp
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		return usagef("unknown flag --%s", strings.TrimLeft(name, "-"))
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		return usagef("flag --%s needs a value", strings.TrimLeft(name, "-"))
	}
	// "invalid value "v" for flag -x: reason": our Set methods give
	// complete reasons; show those.
	if strings.HasPrefix(msg, "invalid value ") {
		if i := strings.Index(msg, " for flag "); i >= 0 {
			rest := msg[i+len(" for flag "):]
			if j := strings.Index(rest, ": "); j >= 0 {
				return usagef("%s", rest[j+2:])
			}
		}
	}
	return usagef("%s", msg)
}

// noArgs fails when a command that takes no positional argument got one.
func noArgs(pos []string) error {
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	return nil
}

// Default and maximum of --limit, as the API's.
const (
	defaultLimit = 100
	maxLimit     = 500
)

// limitFlag is --limit N: 1 or more; values above maxLimit are capped (and
// capped is set, so the command can say so).
type limitFlag struct {
	n      int
	capped bool
}

func (l *limitFlag) String() string { return strconv.Itoa(l.n) }

func (l *limitFlag) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 {
		return fmt.Errorf("--limit %q: want a whole number from 1 to %d", s, maxLimit)
	}
	l.capped = n > maxLimit
	l.n = min(n, maxLimit)
	return nil
}

// note prints a "pixelrelay: note: ..." line on stderr: advice that does
// not change the exit code.
func (e *env) note(format string, a ...any) {
	fmt.Fprintf(e.stderr, "pixelrelay: note: "+format+"\n", a...)
}

// warnCapped says that --limit was lowered to the maximum.
func (e *env) warnCapped(l *limitFlag) {
	if l.capped {
		e.note("--limit is capped at %d", maxLimit)
	}
}
