package config

import (
	"net/url"
	"path/filepath"
	"strings"
)

// Store says where the tracker keeps copies and opens.
type Store struct {
	// URL is "bolt" (the embedded bbolt file in data_dir, the default) or
	// "postgres://user@host/db" (a PostgreSQL database several tracker
	// processes share).
	URL string `toml:"url"`
}

// Tracker names the public tracker a relay works with when the two run
// apart (CONTRACT.md "Where the tracker runs").
type Tracker struct {
	// RemoteURL is the public tracker this relay registers its copies with
	// and takes opens from: https://, or http:// on a loopback host. ""
	// means the tracker runs in this process.
	RemoteURL string `toml:"remote_url"`
	// RemoteKeyFile is the relay key that `pixelrelay keys import` wrote:
	// the relay's credential and the tracking keys it mints tokens with.
	// "" means data_dir/tracker-key.json.
	RemoteKeyFile string `toml:"remote_key_file"`
	// ShareDetails sends each copy's recipient, sender, subject and
	// Message-ID with its registration. Off (the default), the public
	// host learns only tracking ids and times; this relay joins the opens
	// to its own records.
	ShareDetails bool `toml:"share_details"`
}

// defaultBaseURL is tracking.base_url's default.
const defaultBaseURL = "http://127.0.0.1:8025"

// Split reports whether the tracker runs elsewhere (tracker.remote_url).
func (c *Config) Split() bool { return c.Tracker.RemoteURL != "" }

// RemoteKeyPath is the relay key file: tracker.remote_key_file, else
// data_dir/tracker-key.json.
func (c *Config) RemoteKeyPath() string {
	if c.Tracker.RemoteKeyFile != "" {
		return c.Tracker.RemoteKeyFile
	}
	return filepath.Join(c.DataDir, "tracker-key.json")
}

// StorePostgres reports whether store.url names a PostgreSQL database.
func (c *Config) StorePostgres() bool {
	return strings.HasPrefix(c.Store.URL, "postgres://") || strings.HasPrefix(c.Store.URL, "postgresql://")
}

// normalizeSplit trims the URLs and, when a remote tracker is set and
// tracking.base_url is left at its loopback default, points the pixels at
// the remote tracker: that is where recipients must fetch them.
func (c *Config) normalizeSplit() {
	c.Store.URL = strings.TrimSpace(c.Store.URL)
	c.Tracker.RemoteURL = strings.TrimRight(strings.TrimSpace(c.Tracker.RemoteURL), "/")
	if c.Tracking.BaseURL != defaultBaseURL {
		return
	}
	if u, err := url.Parse(c.Tracker.RemoteURL); err == nil && (u.Scheme == "https" || u.Scheme == "http") &&
		u.Hostname() != "" && u.User == nil && u.RawQuery == "" && u.Fragment == "" {
		c.Tracking.BaseURL = c.Tracker.RemoteURL
	}
}

func (c *Config) checkSplit(v *validator) {
	switch {
	case c.Store.URL == "bolt":
	case c.StorePostgres():
		if u, err := url.Parse(c.Store.URL); err != nil || u.Host == "" && u.Query().Get("host") == "" {
			v.add("store.url", "%q has no host; write postgres://user@host:5432/dbname", redactURL(c.Store.URL))
		}
	default:
		v.add("store.url", `must be "bolt" or a postgres://user@host/db URL, not %q`, redactURL(c.Store.URL))
	}
	if c.Tracker.RemoteURL == "" {
		return
	}
	const key = "tracker.remote_url"
	u, err := url.Parse(c.Tracker.RemoteURL)
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http"):
		v.add(key, "%q must be an https:// URL", c.Tracker.RemoteURL)
	case u.Host == "" || u.Hostname() == "":
		v.add(key, "%q has no host", c.Tracker.RemoteURL)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		v.add(key, "%q must not have credentials, a query or a fragment", c.Tracker.RemoteURL)
	case u.Scheme == "http" && !IsLoopback(u.Host):
		v.add(key, "%q: http:// is only allowed on a loopback host; the relay key would travel in clear text", c.Tracker.RemoteURL)
	}
	if c.StorePostgres() {
		v.add("store.url", "a relay with tracker.remote_url keeps its own copies in bbolt; set store.url on the tracker")
	}
}

// redactURL drops a password from a URL for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
