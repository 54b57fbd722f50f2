package cli

import (
	"errors"
	"fmt"

	"pixelrelay/config"
	"pixelrelay/tracker/token"
)

// loadConfig finds the config file and reads what the query commands need
// of it: http.listen (where the server is) and data_dir (its admin key). It
// does not validate, and a file with problems (a typo serve refuses while
// it keeps running on its last good config) is not fatal either: the two
// values are salvaged as far as they can be read, else their defaults
// apply, and one warning line goes to stderr.
func (e *env) loadConfig(flagPath string) (*config.Config, error) {
	path, err := config.Find(flagPath)
	if err != nil {
		return nil, err
	}
	cfg, ps := config.Salvage(path)
	if len(ps) > 0 {
		more := ""
		if len(ps) > 1 {
			more = fmt.Sprintf(" (and %d more)", len(ps)-1)
		}
		fmt.Fprintf(e.stderr, "pixelrelay: warning: config %s: %s%s; using its http.listen (%s) and data_dir as far as they can be read; see pixelrelay config check\n",
			path, clean(ps[0].String()), more, clean(cfg.HTTP.Listen))
	}
	return cfg, nil
}

// checkConfig validates the config file for `config check`: the path used
// ("" for the built-in defaults), every problem, and the warnings of a
// valid config.
func checkConfig(flagPath string) (path string, problems, warnings config.Problems, err error) {
	path, err = config.Find(flagPath)
	if err != nil {
		return "", nil, nil, err
	}
	cfg, err := config.LoadValid(path)
	var ps config.Problems
	if errors.As(err, &ps) {
		return path, ps, nil, nil
	}
	if err != nil {
		return path, nil, nil, err
	}
	return path, nil, cfg.Warnings(), nil
}

// adminKey is the admin API key: $PIXELRELAY_ADMIN_KEY, else the one in
// data_dir's secrets file.
func adminKey(cfg *config.Config) (string, error) {
	return token.AdminKey(cfg.SecretsPath())
}
