package cli

import (
	"fmt"

	"pixelrelay/config"
)

func configCommand() *command {
	return &command{
		name:    "config",
		summary: "validate the config file and name every problem",
		help: `Usage: pixelrelay config check [--json] [--config FILE]

Loads the config file the way serve would (no server needed) and prints every
problem as "key: reason", one per line, exiting 1 if there is any. With no
config file anywhere, the built-in defaults are used, and they are valid.
Warnings (allowed, but probably not meant) go to stderr.

Flags:
  --json          print {"config_file", "ok", "problems", "warnings"}, each
                  problem and warning as {"key", "reason"}
  --config FILE   the file to check (default: $PIXELRELAY_CONFIG,
                  ./pixelrelay.toml, $XDG_CONFIG_HOME/pixelrelay/config.toml)

Example:
  pixelrelay config check --config ~/.config/pixelrelay/config.toml
`,
		run: runConfig,
	}
}

// ConfigCheckResponse is what `config check --json` prints.
type ConfigCheckResponse struct {
	ConfigFile string          `json:"config_file"` // "" = built-in defaults
	OK         bool            `json:"ok"`
	Problems   []ConfigProblem `json:"problems"`
	Warnings   []ConfigProblem `json:"warnings"`
}

// ConfigProblem is one problem or warning: the key ("" when the file
// cannot be parsed at all) and the reason.
type ConfigProblem struct {
	Key    string `json:"key"`
	Reason string `json:"reason"`
}

func runConfig(e *env, args []string) error {
	fs, cfgPath := newFlags("config")
	asJSON := fs.Bool("json", false, "")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("config needs a subcommand: pixelrelay config check")
	}
	if pos[0] != "check" {
		return usagef("unknown config subcommand %q (there is: check)", pos[0])
	}
	if err := noArgs(pos[1:]); err != nil {
		return err
	}
	path, problems, warnings, err := checkConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *asJSON {
		err = printJSON(e.stdout, ConfigCheckResponse{ConfigFile: path, OK: len(problems) == 0,
			Problems: problemList(problems), Warnings: problemList(warnings)})
	} else {
		err = e.printCheck(path, problems, warnings)
	}
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return &exitCode{code: exitFailure, msg: fmt.Sprintf("%s has %s", path, plural(len(problems), "problem"))}
	}
	return nil
}

// printCheck prints the result of config check as text: problems on
// stdout, warnings on stderr.
func (e *env) printCheck(path string, problems, warnings config.Problems) error {
	for _, w := range warnings {
		fmt.Fprintln(e.stderr, "warning:", clean(w.String()))
	}
	if len(problems) > 0 {
		for _, p := range problems {
			if _, err := fmt.Fprintln(e.stdout, clean(p.String())); err != nil {
				return err
			}
		}
		return nil
	}
	if path == "" {
		_, err := fmt.Fprintln(e.stdout, "no config file found; built-in defaults are valid")
		return err
	}
	_, err := fmt.Fprintf(e.stdout, "config OK: %s\n", path)
	return err
}

// problemList is ps for JSON: never null.
func problemList(ps config.Problems) []ConfigProblem {
	out := make([]ConfigProblem, len(ps))
	for i, p := range ps {
		out[i] = ConfigProblem{Key: p.Key, Reason: p.Reason}
	}
	return out
}
