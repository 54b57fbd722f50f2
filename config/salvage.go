package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"
)

// Salvage reads as much of the config file at path as the query commands
// need (data_dir and http.listen: where the server's secrets are and where
// it listens), for when the file has problems that serve would refuse: the
// running server keeps its last good config, and the commands should still
// reach it. It never fails: a value with a problem keeps its default; a file
// that does not parse as TOML is searched line by line for the two keys; an
// unreadable file gives the defaults. problems says what was wrong (nil for
// a file that loads). Nothing is validated.
func Salvage(path string) (cfg *Config, problems Problems) {
	if path == "" {
		c, _ := Load("")
		return c, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		c := Default()
		c.Path = absPath(path)
		return c, Problems{{Reason: fmt.Sprintf("cannot read %s: %v", path, unwrapPath(err))}}
	}
	return salvage(data, path)
}

func salvage(data []byte, path string) (*Config, Problems) {
	c, ps := parse(data, path)
	if c != nil {
		return c, ps
	}
	c = Default()
	c.Path = absPath(path)
	dataDir, listen := scanLines(string(data))
	if dataDir != "" {
		c.DataDir = resolvePath(dataDir, filepath.Dir(c.Path))
	}
	if listen != "" {
		c.HTTP.Listen = listen
	}
	return c, ps
}

func absPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

var (
	// tableLine is a table header: "[http]", "[[smtp.users]]", with an
	// optional comment.
	tableLine = regexp.MustCompile(`^\s*\[\[?\s*([^\[\]]*?)\s*\]\]?\s*(#.*)?$`)
	// keyLine starts a key/value line whose key is one of those wanted.
	keyLine = regexp.MustCompile(`^\s*(data_dir|listen|http\.listen)\s*=`)
)

// scanLines finds data_dir (top level) and http.listen in TOML text that
// does not parse as a whole: each candidate line is decoded on its own, in
// the table the headers before it open. A header that does not parse
// leaves the table unknown until the next good one, so a value is never
// taken from the wrong table.
func scanLines(text string) (dataDir, listen string) {
	table, known := "", true
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSuffix(line, "\r")
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "[") {
			m := tableLine.FindStringSubmatch(line)
			table, known = "", m != nil
			if m != nil {
				table = strings.ReplaceAll(m[1], " ", "")
			}
			continue
		}
		m := keyLine.FindStringSubmatch(line)
		if m == nil || !known {
			continue
		}
		var v map[string]any
		if _, err := toml.Decode(line, &v); err != nil {
			continue
		}
		key := m[1]
		if table != "" {
			key = table + "." + key
		}
		switch key {
		case "data_dir":
			if s, ok := v["data_dir"].(string); ok {
				dataDir = s
			}
		case "http.listen":
			if s, ok := lookupString(v, "http", "listen"); ok {
				listen = s
			} else if s, ok := v["listen"].(string); ok {
				listen = s
			}
		}
	}
	return dataDir, listen
}

// lookupString returns v[a][b] when it is a string.
func lookupString(v map[string]any, a, b string) (string, bool) {
	m, ok := v[a].(map[string]any)
	if !ok {
		return "", false
	}
	s, ok := m[b].(string)
	return s, ok
}
