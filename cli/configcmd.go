package cli

import (
	"fmt"
)

func configCommand() *command {
	return &command{
		name:    "config",
		summary: "validate the config file and name every problem",
		help: `Usage: pixelrelay config check [--config FILE]

Loads the config file the way serve would (no server needed) and prints every
problem as "key: reason", one per line, exiting 1 if there is any. With no
config file anywhere, the built-in defaults are used, and they are valid.

Flags:
  --config FILE   the file to check (default: $PIXELRELAY_CONFIG,
                  ./pixelrelay.toml, $XDG_CONFIG_HOME/pixelrelay/config.toml)

Example:
  pixelrelay config check --config ~/.config/pixelrelay/config.toml
`,
		run: runConfig,
	}
}

func runConfig(e *env, args []string) error {
	fs, cfgPath := newFlags("config")
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
	for _, w := range warnings {
		fmt.Fprintln(e.stderr, "warning:", w)
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(e.stdout, p)
		}
		return &exitCode{code: exitFailure, msg: fmt.Sprintf("%s has %s", path, plural(len(problems), "problem"))}
	}
	if path == "" {
		_, err = fmt.Fprintln(e.stdout, "no config file found; built-in defaults are valid")
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "config OK: %s\n", path)
	return err
}
