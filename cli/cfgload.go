package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/BurntSushi/toml"

	"pixelrelay/config"
)

// TEMPORARY private stand-ins for config.Find, config.Load, Config.SecretsPath
// and token.AdminKey, which colleagues are writing. Replace with the real
// ones once they land (only the three functions below call them).

const (
	defaultHTTPListen = "127.0.0.1:8025"
)

// findConfig returns the config file to use ("" for built-in defaults).
func findConfig(flagPath string) (string, error) {
	if flagPath != "" {
		if _, err := os.Stat(flagPath); err != nil {
			return "", fmt.Errorf("config file %s: %w", flagPath, errors.Unwrap(err))
		}
		return flagPath, nil
	}
	var candidates []string
	if p := os.Getenv("PIXELRELAY_CONFIG"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("PIXELRELAY_CONFIG=%s: %w", p, errors.Unwrap(err))
		}
		return p, nil
	}
	candidates = append(candidates, "pixelrelay.toml")
	if dir, err := os.UserConfigDir(); err == nil {
		candidates = append(candidates, filepath.Join(dir, "pixelrelay", "config.toml"))
	}
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	return "", nil
}

// loadConfig finds and loads the config the query commands need.
func loadConfig(flagPath string) (*config.Config, error) {
	path, err := findConfig(flagPath)
	if err != nil {
		return nil, err
	}
	cfg := &config.Config{Path: path}
	cfg.HTTP.Listen = defaultHTTPListen
	if path != "" {
		var raw struct {
			DataDir string `toml:"data_dir"`
			HTTP    struct {
				Listen string `toml:"listen"`
			} `toml:"http"`
		}
		if _, err := toml.DecodeFile(path, &raw); err != nil {
			return nil, fmt.Errorf("config %s: %v", path, err)
		}
		cfg.DataDir = raw.DataDir
		if raw.HTTP.Listen != "" {
			cfg.HTTP.Listen = raw.HTTP.Listen
		}
	}
	if cfg.DataDir == "" {
		state := os.Getenv("XDG_STATE_HOME")
		if state == "" {
			home, _ := os.UserHomeDir()
			state = filepath.Join(home, ".local", "state")
		}
		cfg.DataDir = filepath.Join(state, "pixelrelay")
	}
	return cfg, nil
}

// checkConfig validates the config file for `config check`: the path used
// ("" for none) and every problem as "key: reason".
func checkConfig(flagPath string) (string, []string, error) {
	path, err := findConfig(flagPath)
	if err != nil || path == "" {
		return path, nil, err
	}
	var raw map[string]any
	md, err := toml.DecodeFile(path, &raw)
	if err != nil {
		return path, []string{fmt.Sprintf("(file): %v", err)}, nil
	}
	_ = md
	return path, nil, nil
}

// adminKey is the admin API key: $PIXELRELAY_ADMIN_KEY, else the one in
// data_dir's secrets file.
func adminKey(cfg *config.Config) (string, error) {
	if k := os.Getenv("PIXELRELAY_ADMIN_KEY"); k != "" {
		return k, nil
	}
	return "", fmt.Errorf("no admin key: set PIXELRELAY_ADMIN_KEY or start pixelrelay serve once to make %s", filepath.Join(cfg.DataDir, "secrets.json"))
}
