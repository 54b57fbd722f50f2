package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// EnvConfig names the config file when --config is not given.
const EnvConfig = "PIXELRELAY_CONFIG"

// EnvUpstreamPassword, when set and not empty, overrides upstream.password
// and upstream.password_file.
const EnvUpstreamPassword = "PIXELRELAY_UPSTREAM_PASSWORD"

// Default returns the built-in configuration: a working local setup that
// listens on loopback only and writes copies to data_dir/outbox.
func Default() *Config {
	return &Config{
		DataDir: defaultDataDir(),
		SMTP: SMTP{
			Listen:         "127.0.0.1:2525",
			Hostname:       "localhost",
			MaxMessageSize: 35 << 20,
			MaxRecipients:  100,
		},
		Upstream: defaultUpstream(),
		Queue: Queue{
			MaxAge:   Duration(5 * day),
			MinRetry: Duration(time.Minute),
			MaxRetry: Duration(time.Hour),
		},
		Tracking: Tracking{
			BaseURL:        "http://127.0.0.1:8025",
			Policy:         "all",
			DedupWindow:    Duration(time.Hour),
			IPHourlyLimit:  100,
			Retention:      Duration(90 * day),
			PrefetchWindow: Duration(10 * time.Second),
			SelfWindow:     Duration(24 * time.Hour),
			Clicks:         true,
		},
		HTTP:  HTTP{Listen: "127.0.0.1:8025"},
		Store: Store{URL: "bolt"},
	}
}

// defaultUpstream is [upstream] and each [[accounts]] block before its
// keys are read.
func defaultUpstream() Upstream {
	return Upstream{
		URL:         "outbox",
		TLS:         "required",
		Connections: 4,
		Auth:        "password",
		SentFolder:  "auto",
	}
}

// defaultDataDir is $XDG_STATE_HOME/pixelrelay, else ~/.local/state/pixelrelay.
// It is "" when neither is known; Validate reports that.
func defaultDataDir() string {
	if d := xdgDir("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "pixelrelay")
	}
	if home, err := os.UserHomeDir(); err == nil && home != "" {
		return filepath.Join(home, ".local", "state", "pixelrelay")
	}
	return ""
}

// xdgDir returns the XDG variable's value when it is an absolute path; the
// XDG base directory spec says relative values are to be ignored.
func xdgDir(name string) string {
	d := os.Getenv(name)
	if d == "" || !filepath.IsAbs(d) {
		return ""
	}
	return d
}

// Find returns the config file to use: flagPath (--config) when given, else
// $PIXELRELAY_CONFIG, ./pixelrelay.toml, $XDG_CONFIG_HOME/pixelrelay/config.toml
// (~/.config/pixelrelay/config.toml when XDG_CONFIG_HOME is unset): the
// first of SearchPath(flagPath) that exists. It returns "" when none of the
// candidates exists: the built-in defaults apply. A file named by --config
// or $PIXELRELAY_CONFIG that does not exist is an error. The returned path
// is absolute.
func Find(flagPath string) (string, error) {
	if flagPath != "" {
		return mustExist(flagPath, "--config")
	}
	if p := os.Getenv(EnvConfig); p != "" {
		return mustExist(p, "$"+EnvConfig)
	}
	for _, c := range SearchPath("") {
		st, err := os.Stat(c)
		switch {
		case err == nil && st.IsDir():
			return "", fmt.Errorf("config file %s is a directory", c)
		case err == nil:
			return c, nil
		case !errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("config file %s: %w", c, err)
		}
	}
	return "", nil
}

// SearchPath lists the files Find looks at, in order, as absolute paths:
// the one file named by flagPath (--config) or $PIXELRELAY_CONFIG when
// either is set, else ./pixelrelay.toml and
// $XDG_CONFIG_HOME/pixelrelay/config.toml (~/.config/... when
// XDG_CONFIG_HOME is unset). serve watches all of them.
func SearchPath(flagPath string) []string {
	if flagPath == "" {
		flagPath = os.Getenv(EnvConfig)
	}
	if flagPath != "" {
		return []string{absPath(expandHome(flagPath))}
	}
	files := []string{absPath("pixelrelay.toml")}
	if d := xdgDir("XDG_CONFIG_HOME"); d != "" {
		files = append(files, filepath.Join(d, "pixelrelay", "config.toml"))
	} else if home, err := os.UserHomeDir(); err == nil && home != "" {
		files = append(files, filepath.Join(home, ".config", "pixelrelay", "config.toml"))
	}
	return files
}

// mustExist expands a leading ~ in p and checks that it is an existing file.
func mustExist(p, from string) (string, error) {
	p = expandHome(p)
	st, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("config file %s (from %s) does not exist", p, from)
		}
		return "", fmt.Errorf("config file %s (from %s): %w", p, from, err)
	}
	if st.IsDir() {
		return "", fmt.Errorf("config file %s (from %s) is a directory", p, from)
	}
	return filepath.Abs(p)
}

// expandHome replaces a leading "~" or "~/" with the home directory. Other
// forms ("~user") are left alone.
func expandHome(p string) string {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return p
	}
	return filepath.Join(home, p[1:])
}
