package config

import (
	"path/filepath"
	"reflect"
	"testing"
)

// TestValidateSplit checks [store] and [tracker]: each row is a config
// file and the exact problems it must produce.
func TestValidateSplit(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want []Problem
	}{
		{"bolt", "[store]\nurl = \"bolt\"", nil},
		{"postgres", "[store]\nurl = \"postgres://px@db.example.com:5432/px?sslmode=require\"", nil},
		{"postgresql scheme", "[store]\nurl = \"postgresql://px:secret@127.0.0.1/px\"", nil},
		{"postgres host in query", "[store]\nurl = \"postgres:///px?host=/run/postgresql\"", nil},
		{"postgres without host", "[store]\nurl = \"postgres:///px\"", []Problem{{"store.url", `"postgres:///px" has no host; write postgres://user@host:5432/dbname`}}},
		{"store other", "[store]\nurl = \"mysql://x\"", []Problem{{"store.url", `must be "bolt" or a postgres://user@host/db URL, not "mysql://x"`}}},
		{"store password redacted", "[store]\nurl = \"sqlite://u:pw@h\"", []Problem{{"store.url", `must be "bolt" or a postgres://user@host/db URL, not "sqlite://u:xxxxx@h"`}}},
		{"store empty", "[store]\nurl = \"\"", []Problem{{"store.url", `must be "bolt" or a postgres://user@host/db URL, not ""`}}},

		{"remote https", "[tracker]\nremote_url = \"https://track.example.com/px/\"", nil},
		{"remote http loopback", "[tracker]\nremote_url = \"http://127.0.0.1:8026\"", nil},
		{"remote http public", "[tracker]\nremote_url = \"http://track.example.com\"", []Problem{{"tracker.remote_url", `"http://track.example.com": http:// is only allowed on a loopback host; the relay key would travel in clear text`}}},
		{"remote no scheme", "[tracker]\nremote_url = \"track.example.com\"", []Problem{{"tracker.remote_url", `"track.example.com" must be an https:// URL`}}},
		{"remote no host", "[tracker]\nremote_url = \"https:///x\"", []Problem{{"tracker.remote_url", `"https:///x" has no host`}}},
		{"remote query", "[tracker]\nremote_url = \"https://t.example.com/?a=1\"", []Problem{{"tracker.remote_url", `"https://t.example.com/?a=1" must not have credentials, a query or a fragment`}}},
		{"remote credentials", "[tracker]\nremote_url = \"https://u:p@t.example.com\"", []Problem{{"tracker.remote_url", `"https://u:p@t.example.com" must not have credentials, a query or a fragment`}}},
		{"remote with postgres", "[tracker]\nremote_url = \"https://t.example.com\"\n[store]\nurl = \"postgres://h/db\"", []Problem{{"store.url", "a relay with tracker.remote_url keeps its own copies in bbolt; set store.url on the tracker"}}},
		{"share_details not bool", "[tracker]\nshare_details = \"yes\"", []Problem{{"tracker.share_details", "must be true or false, not a string"}}},
		{"unknown key", "[tracker]\nremote = \"x\"", []Problem{{"tracker.remote", "unknown key"}}},
	}
	isolate(t)
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseValid([]byte(tt.toml+"\n"), filepath.Join(dir, "c.toml"))
			got := problemsOf(t, err)
			if !reflect.DeepEqual(got, Problems(tt.want)) {
				t.Fatalf("problems =\n%v\nwant\n%v", got, Problems(tt.want))
			}
		})
	}
}

// TestSplitDefaults: a remote tracker takes over the pixel URL while
// tracking.base_url is left at its loopback default, and the relay key
// file defaults into data_dir.
func TestSplitDefaults(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	tests := []struct {
		name, toml, base, key string
		split                 bool
	}{
		{"all in one", "", defaultBaseURL, filepath.Join(dir, "d", "tracker-key.json"), false},
		{"remote", "[tracker]\nremote_url = \"https://t.example.com/\"", "https://t.example.com", filepath.Join(dir, "d", "tracker-key.json"), true},
		{"remote, own base", "[tracking]\nbase_url = \"https://px.example.com\"\n[tracker]\nremote_url = \"https://t.example.com\"\nremote_key_file = \"k.json\"",
			"https://px.example.com", filepath.Join(dir, "k.json"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseValid([]byte("data_dir = \"d\"\n"+tt.toml+"\n"), filepath.Join(dir, "c.toml"))
			if err != nil {
				t.Fatal(err)
			}
			if c.Tracking.BaseURL != tt.base || c.RemoteKeyPath() != tt.key || c.Split() != tt.split {
				t.Errorf("base_url %q, key %q, split %v; want %q, %q, %v", c.Tracking.BaseURL, c.RemoteKeyPath(), c.Split(), tt.base, tt.key, tt.split)
			}
		})
	}
}
