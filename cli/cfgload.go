package cli

import (
	"errors"
	"fmt"

	"pixelrelay/config"
	"pixelrelay/tracker/token"
)

// loadConfig finds and decodes the config the query commands need (its
// http.listen and data_dir). It does not run the full validation: a
// config whose TLS files are missing still says where the server is.
func loadConfig(flagPath string) (*config.Config, error) {
	path, err := config.Find(flagPath)
	if err != nil {
		return nil, err
	}
	cfg, err := config.Load(path)
	var ps config.Problems
	if errors.As(err, &ps) && len(ps) > 0 {
		more := ""
		if len(ps) > 1 {
			more = fmt.Sprintf(" (and %d more)", len(ps)-1)
		}
		return nil, fmt.Errorf("config %s: %s%s; see pixelrelay config check", path, ps[0], more)
	}
	if err != nil {
		return nil, err
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
