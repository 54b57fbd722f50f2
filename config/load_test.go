package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// isolate points HOME at a temp dir and clears the environment variables the
// package reads, so tests do not depend on the machine. It returns HOME.
func isolate(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, k := range []string{"XDG_STATE_HOME", "XDG_CONFIG_HOME", EnvConfig, EnvUpstreamPassword} {
		t.Setenv(k, "")
	}
	return home
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// problemsOf returns err as Problems, failing the test if it is not.
func problemsOf(t *testing.T, err error) Problems {
	t.Helper()
	if err == nil {
		return nil
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error is %T (%v), want Problems", err, err)
	}
	return ps
}

func TestDefault(t *testing.T) {
	home := isolate(t)
	c := Default()
	tests := []struct {
		key  string
		got  any
		want any
	}{
		{"data_dir", c.DataDir, filepath.Join(home, ".local/state/pixelrelay")},
		{"smtp.listen", c.SMTP.Listen, "127.0.0.1:2525"},
		{"smtp.hostname", c.SMTP.Hostname, "localhost"},
		{"smtp.max_message_size", c.SMTP.MaxMessageSize, Size(35 * 1024 * 1024)},
		{"smtp.max_recipients", c.SMTP.MaxRecipients, 100},
		{"smtp.tls_cert", c.SMTP.TLSCert, ""},
		{"smtp.tls_key", c.SMTP.TLSKey, ""},
		{"smtp.users", len(c.SMTP.Users), 0},
		{"upstream.url", c.Upstream.URL, "outbox"},
		{"upstream.username", c.Upstream.Username, ""},
		{"upstream.password", c.Upstream.Password, ""},
		{"upstream.password_file", c.Upstream.PasswordFile, ""},
		{"upstream.tls", c.Upstream.TLS, "required"},
		{"upstream.ca_file", c.Upstream.CAFile, ""},
		{"upstream.connections", c.Upstream.Connections, 4},
		{"queue.max_age", c.Queue.MaxAge.D(), 5 * 24 * time.Hour},
		{"queue.min_retry", c.Queue.MinRetry.D(), time.Minute},
		{"queue.max_retry", c.Queue.MaxRetry.D(), time.Hour},
		{"tracking.base_url", c.Tracking.BaseURL, "http://127.0.0.1:8025"},
		{"tracking.policy", c.Tracking.Policy, "all"},
		{"tracking.exclude", len(c.Tracking.Exclude), 0},
		{"tracking.dedup_window", c.Tracking.DedupWindow.D(), time.Hour},
		{"tracking.ip_hourly_limit", c.Tracking.IPHourlyLimit, 100},
		{"tracking.retention", c.Tracking.Retention.D(), 90 * 24 * time.Hour},
		{"tracking.prefetch_window", c.Tracking.PrefetchWindow.D(), 10 * time.Second},
		{"tracking.apple_ranges_file", c.Tracking.AppleRangesFile, ""},
		{"tracking.networks_file", c.Tracking.NetworksFile, ""},
		{"tracking.self_window", c.Tracking.SelfWindow.D(), 24 * time.Hour},
		{"http.listen", c.HTTP.Listen, "127.0.0.1:8025"},
		{"http.trusted_proxies", len(c.HTTP.TrustedProxies), 0},
		{"path", c.Path, ""},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("default %s = %v, want %v", tt.key, tt.got, tt.want)
		}
	}
	if ps := c.Validate(); ps != nil {
		t.Errorf("defaults do not validate:\n%v", ps)
	}
}

func TestDefaultDataDir(t *testing.T) {
	tests := []struct {
		name, xdg, home, want string
	}{
		{"xdg", "/x/state", "/h", "/x/state/pixelrelay"},
		{"home", "", "/h", "/h/.local/state/pixelrelay"},
		{"relative xdg ignored", "state", "/h", "/h/.local/state/pixelrelay"},
		{"nothing", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("XDG_STATE_HOME", tt.xdg)
			t.Setenv("HOME", tt.home)
			if got := Default().DataDir; got != tt.want {
				t.Errorf("DataDir = %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("nothing is a problem", func(t *testing.T) {
		t.Setenv("XDG_STATE_HOME", "")
		t.Setenv("HOME", "")
		want := Problems{{"data_dir", "is empty; set it (the default needs $XDG_STATE_HOME or $HOME)"}}
		if got := Default().Validate(); !reflect.DeepEqual(got, want) {
			t.Errorf("Validate() = %v, want %v", got, want)
		}
	})
}

func TestLoadEmptyPathIsDefault(t *testing.T) {
	isolate(t)
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("Load(\"\") = %+v, want Default()", c)
	}
	t.Setenv(EnvUpstreamPassword, "from-env")
	c, err = LoadValid("")
	if err != nil {
		t.Fatal(err)
	}
	if c.Upstream.Password != "from-env" {
		t.Errorf("password = %q, want the environment's", c.Upstream.Password)
	}
}

func TestParseEmptyFileIsDefault(t *testing.T) {
	isolate(t)
	path := writeFile(t, filepath.Join(t.TempDir(), "c.toml"), "# nothing\n")
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Path = path
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Load(empty) = %+v\nwant %+v", c, want)
	}
}

const hashAlice = "$2a$10$PEs/dHgsqpfx1GHLuHCrVuwHpr20GVRot5iHSS5nLOpaDRde1fYlG"

// TestParseEveryKey sets every key to a non-default value and checks the
// whole resulting Config, including path resolution and secret files.
func TestParseEveryKey(t *testing.T) {
	home := isolate(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "secrets/upstream.pw"), "hunter2\n")
	writeFile(t, filepath.Join(dir, "bob.hash"), hashAlice+"\n")
	path := writeFile(t, filepath.Join(dir, "pixelrelay.toml"), `
data_dir = "~/state"
[smtp]
listen = "0.0.0.0:587"
hostname = "relay.example.com"
max_message_size = "10MB"
max_recipients = 7
tls_cert = "tls/cert.pem"
tls_key = "/etc/tls/key.pem"
[[smtp.users]]
username = "alice"
password_hash = "`+hashAlice+`"
[[smtp.users]]
username = "bob"
password_file = "bob.hash"
[upstream]
url = "smtps://smtp.gmail.com:465"
username = "me@gmail.com"
password_file = "secrets/upstream.pw"
tls = "none"
ca_file = "ca.pem"
connections = 9
[queue]
max_age = "2d"
min_retry = "30s"
max_retry = "2h"
[tracking]
base_url = "https://px.example.com/t/"
policy = "opt-in"
exclude = ["Boss@Example.com", "@example.org"]
dedup_window = "5m"
ip_hourly_limit = 0
retention = "30d"
prefetch_window = "0s"
apple_ranges_file = "apple.txt"
networks_file = "nets.txt"
self_window = "2h"
clicks = false
[http]
listen = ":8080"
trusted_proxies = ["10.0.0.0/8", "::1"]
[store]
url = "postgres://px@db.example.com/pixelrelay"
[tracker]
remote_url = "https://track.example.com/"
remote_key_file = "relay.key"
share_details = true
`)
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Path:    path,
		DataDir: filepath.Join(home, "state"),
		SMTP: SMTP{
			Listen: "0.0.0.0:587", Hostname: "relay.example.com", MaxMessageSize: 10 << 20,
			MaxRecipients: 7, TLSCert: filepath.Join(dir, "tls/cert.pem"), TLSKey: "/etc/tls/key.pem",
			Users: []User{
				{Username: "alice", PasswordHash: hashAlice},
				{Username: "bob", PasswordHash: hashAlice, PasswordFile: filepath.Join(dir, "bob.hash")},
			},
		},
		Upstream: Upstream{
			URL: "smtps://smtp.gmail.com:465", Username: "me@gmail.com", Password: "hunter2",
			PasswordFile: filepath.Join(dir, "secrets/upstream.pw"), TLS: "none",
			CAFile: filepath.Join(dir, "ca.pem"), Connections: 9, Auth: "password", SentFolder: "auto",
		},
		Queue: Queue{MaxAge: Duration(48 * time.Hour), MinRetry: Duration(30 * time.Second), MaxRetry: Duration(2 * time.Hour)},
		Tracking: Tracking{
			BaseURL: "https://px.example.com/t", Policy: "opt-in",
			Exclude:     []string{"boss@example.com", "@example.org"},
			DedupWindow: Duration(5 * time.Minute), IPHourlyLimit: 0, Retention: Duration(30 * 24 * time.Hour),
			PrefetchWindow: 0, AppleRangesFile: filepath.Join(dir, "apple.txt"),
			NetworksFile: filepath.Join(dir, "nets.txt"), SelfWindow: Duration(2 * time.Hour), Clicks: false,
		},
		HTTP:  HTTP{Listen: ":8080", TrustedProxies: []string{"10.0.0.0/8", "::1"}},
		Store: Store{URL: "postgres://px@db.example.com/pixelrelay"},
		Tracker: Tracker{RemoteURL: "https://track.example.com", RemoteKeyFile: filepath.Join(dir, "relay.key"),
			ShareDetails: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load =\n%+v\nwant\n%+v", got, want)
	}
}

func TestParseBOMAndCRLF(t *testing.T) {
	isolate(t)
	c, err := Parse([]byte("\xef\xbb\xbf[smtp]\r\nlisten = \"127.0.0.1:2600\"\r\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTP.Listen != "127.0.0.1:2600" {
		t.Errorf("listen = %q", c.SMTP.Listen)
	}
}

func TestSizeAsInteger(t *testing.T) {
	isolate(t)
	c, err := Parse([]byte("[smtp]\nmax_message_size = 1048576\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTP.MaxMessageSize != 1<<20 {
		t.Errorf("max_message_size = %d, want %d", c.SMTP.MaxMessageSize, 1<<20)
	}
}

func TestDecodeProblems(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want Problems
	}{
		{"unknown key", "[smtp]\nlisen = \"127.0.0.1:25\"\n",
			Problems{{"smtp.lisen", `unknown key; did you mean "listen"?`}}},
		{"unknown top-level key", "color = 1\n", Problems{{"color", "unknown key"}}},
		{"unknown table", "[smpt]\nlisten = \"x\"\n", Problems{{"smpt", `unknown key; did you mean "smtp"?`}}},
		{"keys are case-sensitive", "[smtp]\nListen = \"x\"\n", Problems{{"smtp.Listen", `unknown key; did you mean "listen"?`}}},
		{"unknown user key", "[[smtp.users]]\nusername = \"a\"\npassword = \"x\"\npassword_hash = \"" + hashAlice + "\"\n",
			Problems{{"smtp.users[0].password", "unknown key"}}},
		{"integer as string", "[smtp]\nmax_recipients = \"many\"\n",
			Problems{{"smtp.max_recipients", "must be an integer, not a string"}}},
		{"size as float", "[smtp]\nmax_message_size = 1.5\n",
			Problems{{"smtp.max_message_size", `must be a size like "35MB" or a whole number of bytes, not a float`}}},
		{"negative size", "[smtp]\nmax_message_size = -1\n",
			Problems{{"smtp.max_message_size", "must not be negative"}}},
		{"bad size", "[smtp]\nmax_message_size = \"huge\"\n",
			Problems{{"smtp.max_message_size", `invalid size "huge": use a number of bytes or a size like "512KB", "35MB", "1GB"`}}},
		{"duration as integer", "[queue]\nmax_age = 5\n",
			Problems{{"queue.max_age", `must be a duration string like "90m" or "90d", not an integer`}}},
		{"bad duration", "[queue]\nmax_age = \"5 days\"\n",
			Problems{{"queue.max_age", `invalid duration "5 days": use a Go duration like "90m" or a number of days like "90d"`}}},
		{"table as value", "smtp = 5\n", Problems{{"smtp", "must be a table, not an integer"}}},
		{"list as string", "[tracking]\nexclude = \"a@b.c\"\n",
			Problems{{"tracking.exclude", "must be an array, not a string"}}},
		{"list item type", "[tracking]\nexclude = [\"a@b.c\", 1]\n",
			Problems{{"tracking.exclude[1]", "must be a string, not an integer"}}},
		{"users as string", "[smtp]\nusers = \"alice\"\n",
			Problems{{"smtp.users", "must be an array of tables ([[smtp.users]]), not a string"}}},
		{"users as one table", "[smtp.users]\nusername = \"a\"\n",
			Problems{{"smtp.users", "must be an array of tables ([[smtp.users]]), not a table"}}},
		{"user item type", "[smtp]\nusers = [1]\n", Problems{{"smtp.users[0]", "must be a table, not an integer"}}},
		{"user field type", "[[smtp.users]]\nusername = 5\n",
			Problems{{"smtp.users[0].username", "must be a string, not an integer"}}},
		{"boolean", "data_dir = true\n", Problems{{"data_dir", "must be a string, not a boolean"}}},
		{"bool as string", "[tracking]\nclicks = \"yes\"\n", Problems{{"tracking.clicks", "must be true or false, not a string"}}},
		{"date", "[http]\nlisten = 2026-01-01\n", Problems{{"http.listen", "must be a string, not a date/time"}}},
		{"array of strings as value", "[http]\nlisten = [\"a\"]\n", Problems{{"http.listen", "must be a string, not an array"}}},
		{"several at once", "[smtp]\nlisen = 1\nmax_recipients = true\n[queue]\nmin_retry = \"x\"\n",
			Problems{
				{"smtp.max_recipients", "must be an integer, not a boolean"},
				{"smtp.lisen", `unknown key; did you mean "listen"?`},
				{"queue.min_retry", `invalid duration "x": use a Go duration like "90m" or a number of days like "90d"`},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			c, err := Parse([]byte(tt.toml), "")
			if c != nil {
				t.Errorf("Parse returned a config with an error")
			}
			if got := problemsOf(t, err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems =\n%v\nwant\n%v", got, tt.want)
			}
		})
	}
}

// A syntax error names the line (and column) where the mistake is, also
// when the parser only notices it at the newline that ends the line.
func TestSyntaxError(t *testing.T) {
	isolate(t)
	for _, tt := range []struct {
		in   string
		want string // start of the reason
	}{
		{"[smtp]\nlisten = \n", "TOML syntax error at line 2, column 10:"},
		{"[smtp\n", "TOML syntax error at line 1, column 6:"},
		{"data_dir = \"/x\"\n\n[http\nlisten = \"127.0.0.1:9000\"\n", "TOML syntax error at line 3, column 6:"},
		{"[http]\r\nlisten = \"127.0.0.1:9000\r\n", "TOML syntax error at line 2, column"},
		{"[tracking]\nbase_url = \"https://ü.example\n", "TOML syntax error at line 2, column 30:"},
		{"a = [1, 2\nb = 2\n", "TOML syntax error at line 2, column 1:"},
		{"x = \"a\" junk\n", "TOML syntax error at line 1, column 8:"},
		{"[smtp]\nlisten = \"a\"\nlisten = \"b\"\n", "TOML syntax error at line 3"},
	} {
		_, err := ParseValid([]byte(tt.in), "")
		ps := problemsOf(t, err)
		if len(ps) != 1 || !strings.HasPrefix(ps[0].Reason, tt.want) {
			t.Errorf("%q: problems = %#v, want one starting %q", tt.in, ps, tt.want)
		}
	}
}

func TestLoadValidReportsDecodeAndValidationProblems(t *testing.T) {
	isolate(t)
	path := writeFile(t, filepath.Join(t.TempDir(), "c.toml"),
		"[smtp]\nmax_recipients = \"x\"\n[tracking]\npolicy = \"some\"\n")
	_, err := LoadValid(path)
	want := Problems{
		{"smtp.max_recipients", "must be an integer, not a string"},
		{"tracking.policy", `must be "all" or "opt-in", not "some"`},
	}
	if got := problemsOf(t, err); !reflect.DeepEqual(got, want) {
		t.Errorf("problems =\n%v\nwant\n%v", got, want)
	}
	want = Problems{{"upstream.password_file", "cannot read: " + filepath.Join(filepath.Dir(path), "nope") + ": no such file or directory"}}
	writeFile(t, path, "[upstream]\nurl = \"smtp://127.0.0.1:25\"\nusername = \"u\"\npassword_file = \"nope\"\n")
	_, err = LoadValid(path)
	if got := problemsOf(t, err); !reflect.DeepEqual(got, want) {
		t.Errorf("problems =\n%v\nwant\n%v", got, want)
	}
	if _, err := LoadValid(filepath.Join(t.TempDir(), "missing.toml")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("LoadValid(missing) error = %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.toml")); err == nil {
		t.Error("Load(missing) succeeded")
	}
}

func TestSecrets(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		env     string
		toml    string
		wantPW  string
		wantErr Problems
	}{
		{"file, newline trimmed", map[string]string{"pw": "s3cret\n"}, "", `password_file = "pw"`, "s3cret", nil},
		{"file, CRLF trimmed", map[string]string{"pw": "s3cret\r\n"}, "", `password_file = "pw"`, "s3cret", nil},
		{"file, one newline trimmed", map[string]string{"pw": " s p \n\n"}, "", `password_file = "pw"`, " s p \n", nil},
		{"inline", nil, "", `password = "inline"`, "inline", nil},
		{"env beats inline", nil, "env", `password = "inline"`, "env", nil},
		{"env beats file, file not read", nil, "env", `password_file = "missing"`, "env", nil},
		{"missing file", nil, "", `password_file = "missing"`, "",
			Problems{{"upstream.password_file", "cannot read: {dir}/missing: no such file or directory"}}},
		{"empty file", map[string]string{"pw": "\n"}, "", `password_file = "pw"`, "",
			Problems{{"upstream.password_file", "{dir}/pw is empty"}}},
		{"directory", map[string]string{"d/x": "x"}, "", `password_file = "d"`, "",
			Problems{{"upstream.password_file", "{dir}/d is not a regular file"}}},
		{"too large", map[string]string{"pw": strings.Repeat("x", 64<<10+1)}, "", `password_file = "pw"`, "",
			Problems{{"upstream.password_file", "{dir}/pw is larger than 64KB; is it the right file?"}}},
		{"64KB is fine", map[string]string{"pw": strings.Repeat("x", 64<<10)}, "", `password_file = "pw"`, strings.Repeat("x", 64<<10), nil},
		{"both", map[string]string{"pw": "x"}, "", "password = \"a\"\npassword_file = \"pw\"", "",
			Problems{{"upstream.password_file", "set either upstream.password or upstream.password_file, not both"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			t.Setenv(EnvUpstreamPassword, tt.env)
			dir := t.TempDir()
			for name, content := range tt.files {
				writeFile(t, filepath.Join(dir, name), content)
			}
			c, err := Parse([]byte("[upstream]\nusername = \"u\"\n"+tt.toml+"\n"), filepath.Join(dir, "c.toml"))
			if tt.wantErr != nil {
				for i := range tt.wantErr {
					tt.wantErr[i].Reason = strings.ReplaceAll(tt.wantErr[i].Reason, "{dir}", dir)
				}
				if got := problemsOf(t, err); !reflect.DeepEqual(got, tt.wantErr) {
					t.Fatalf("problems = %v, want %v", got, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Upstream.Password != tt.wantPW {
				t.Errorf("password = %q, want %q", c.Upstream.Password, tt.wantPW)
			}
		})
	}
}

func TestUserPasswordFile(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "h"), "  "+hashAlice+"\n")
	c, err := Parse([]byte("[[smtp.users]]\nusername = \"a\"\npassword_file = \"h\"\n"), filepath.Join(dir, "c.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTP.Users[0].PasswordHash != hashAlice {
		t.Errorf("hash = %q, want %q", c.SMTP.Users[0].PasswordHash, hashAlice)
	}
	_, err = Parse([]byte("[[smtp.users]]\nusername = \"a\"\npassword_file = \"none\"\n"), filepath.Join(dir, "c.toml"))
	want := Problems{{"smtp.users[0].password_file", "cannot read: " + filepath.Join(dir, "none") + ": no such file or directory"}}
	if got := problemsOf(t, err); !reflect.DeepEqual(got, want) {
		t.Errorf("problems = %v, want %v", got, want)
	}
}

func TestURLCredentials(t *testing.T) {
	isolate(t)
	c, err := Parse([]byte("[upstream]\nurl = \"smtp://bob:p%40ss@mail.example.com:587\"\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Upstream.URL != "smtp://mail.example.com:587" || c.Upstream.Username != "bob" || c.Upstream.Password != "p@ss" {
		t.Errorf("upstream = %+v, want credentials lifted out of the URL", c.Upstream)
	}
	_, err = Parse([]byte("[upstream]\nurl = \"smtp://bob:x@mail.example.com:587\"\nusername = \"bob\"\n"), "")
	want := Problems{{"upstream.url", "has credentials, and upstream.username or a password is set too; use one or the other"}}
	if got := problemsOf(t, err); !reflect.DeepEqual(got, want) {
		t.Errorf("problems = %v, want %v", got, want)
	}
}

func TestPathResolution(t *testing.T) {
	home := isolate(t)
	dir := t.TempDir()
	tests := []struct {
		value, want string
	}{
		{"rel/file", filepath.Join(dir, "rel/file")},
		{"./file", filepath.Join(dir, "file")},
		{"../up", filepath.Join(filepath.Dir(dir), "up")},
		{"/abs/file", "/abs/file"},
		{"~/file", filepath.Join(home, "file")},
		{"~", home},
		{"~other/file", filepath.Join(dir, "~other/file")},
	}
	for _, tt := range tests {
		c, err := Parse([]byte("data_dir = \""+tt.value+"\"\n[tracking]\napple_ranges_file = \""+tt.value+"\"\n"),
			filepath.Join(dir, "c.toml"))
		if err != nil {
			t.Fatal(err)
		}
		if c.DataDir != tt.want || c.Tracking.AppleRangesFile != tt.want {
			t.Errorf("%q resolved to %q and %q, want %q", tt.value, c.DataDir, c.Tracking.AppleRangesFile, tt.want)
		}
	}
	// A relative config path resolves against the working directory.
	t.Chdir(dir)
	c, err := Parse([]byte("data_dir = \"d\"\n"), "sub/c.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != filepath.Join(dir, "sub/d") || c.Path != filepath.Join(dir, "sub/c.toml") {
		t.Errorf("data_dir = %q, path = %q", c.DataDir, c.Path)
	}
}

func TestFind(t *testing.T) {
	tests := []struct {
		name    string
		flag    string
		env     string
		files   []string // relative to the test root; "home/..." is HOME, "cwd/..." the working dir
		xdg     string   // XDG_CONFIG_HOME, relative to root unless absolute-looking "rel:"
		want    string   // relative to root; "" means none
		wantErr string
	}{
		{name: "nothing", want: ""},
		{name: "flag", flag: "etc/a.toml", files: []string{"etc/a.toml", "cwd/pixelrelay.toml"}, want: "etc/a.toml"},
		{name: "flag missing", flag: "etc/none.toml", files: []string{"cwd/pixelrelay.toml"}, wantErr: "does not exist"},
		{name: "flag is a directory", flag: "etc", files: []string{"etc/a.toml"}, wantErr: "is a directory"},
		{name: "flag beats env", flag: "etc/a.toml", env: "etc/b.toml", files: []string{"etc/a.toml", "etc/b.toml"}, want: "etc/a.toml"},
		{name: "env", env: "etc/b.toml", files: []string{"etc/b.toml", "cwd/pixelrelay.toml"}, want: "etc/b.toml"},
		{name: "env missing", env: "etc/none.toml", files: []string{"cwd/pixelrelay.toml"}, wantErr: "$PIXELRELAY_CONFIG"},
		{name: "cwd beats xdg", xdg: "xdg", files: []string{"cwd/pixelrelay.toml", "xdg/pixelrelay/config.toml"}, want: "cwd/pixelrelay.toml"},
		{name: "xdg", xdg: "xdg", files: []string{"xdg/pixelrelay/config.toml", "home/.config/pixelrelay/config.toml"}, want: "xdg/pixelrelay/config.toml"},
		{name: "xdg set but empty dir: not home", xdg: "xdg", files: []string{"home/.config/pixelrelay/config.toml"}, want: ""},
		{name: "home .config", files: []string{"home/.config/pixelrelay/config.toml"}, want: "home/.config/pixelrelay/config.toml"},
		{name: "relative xdg ignored", xdg: "rel:xdg", files: []string{"cwd/xdg/pixelrelay/config.toml", "home/.config/pixelrelay/config.toml"}, want: "home/.config/pixelrelay/config.toml"},
		{name: "flag with ~", flag: "~/my.toml", files: []string{"home/my.toml"}, want: "home/my.toml"},
		{name: "relative flag", flag: "rel:rel.toml", files: []string{"cwd/rel.toml"}, want: "cwd/rel.toml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			root := t.TempDir()
			for _, d := range []string{"home", "cwd"} {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv("HOME", filepath.Join(root, "home"))
			t.Chdir(filepath.Join(root, "cwd"))
			for _, f := range tt.files {
				writeFile(t, filepath.Join(root, f), "")
			}
			switch {
			case strings.HasPrefix(tt.xdg, "rel:"):
				t.Setenv("XDG_CONFIG_HOME", strings.TrimPrefix(tt.xdg, "rel:"))
			case tt.xdg != "":
				t.Setenv("XDG_CONFIG_HOME", filepath.Join(root, tt.xdg))
			}
			abs := func(p string) string {
				if p == "" || strings.HasPrefix(p, "~") {
					return p
				}
				if rel, ok := strings.CutPrefix(p, "rel:"); ok {
					return rel
				}
				return filepath.Join(root, p)
			}
			if tt.env != "" {
				t.Setenv(EnvConfig, abs(tt.env))
			}
			got, err := Find(abs(tt.flag))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Find = %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := ""
			if tt.want != "" {
				want = filepath.Join(root, tt.want)
			}
			if got != want {
				t.Errorf("Find = %q, want %q", got, want)
			}
		})
	}
}

// TestExample checks that the README's example parses, validates and sets
// every key the Config has.
func TestExample(t *testing.T) {
	isolate(t)
	path := filepath.Join("..", "testdata", "config", "example.toml")
	c, err := LoadValid(path)
	if err != nil {
		t.Fatalf("example.toml:\n%v", err)
	}
	if c.SMTP.Users[0].Username != "alice" || c.Upstream.URL != "outbox" {
		t.Errorf("example decoded to %+v", c)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range allKeys(reflect.TypeFor[Config](), "") {
		if !md.IsDefined(strings.Split(key, ".")...) {
			t.Errorf("example.toml does not show %s", key)
		}
	}
	users := raw["smtp"].(map[string]any)["users"].([]map[string]any)
	for _, key := range allKeys(reflect.TypeFor[User](), "") {
		if _, ok := users[0][key]; !ok {
			t.Errorf("example.toml does not show smtp.users.%s", key)
		}
	}
	accounts := raw["accounts"].([]map[string]any)
	for _, f := range tomlFields(reflect.TypeFor[Account]()) {
		if _, ok := accounts[0][f.name]; !ok {
			t.Errorf("example.toml does not show accounts.%s", f.name)
		}
	}
	hooks := raw["webhooks"].([]map[string]any)
	for _, key := range allKeys(reflect.TypeFor[Webhook](), "") {
		if _, ok := hooks[0][key]; !ok {
			t.Errorf("example.toml does not show webhooks.%s", key)
		}
	}
}

// allKeys lists every TOML key of a struct type, dotted, leaves only.
func allKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		name := tomlName(t.Field(i))
		if name == "" {
			continue
		}
		if ft := t.Field(i).Type; ft.Kind() == reflect.Struct && ft != durationType {
			keys = append(keys, allKeys(ft, prefix+name+".")...)
		} else {
			keys = append(keys, prefix+name)
		}
	}
	return keys
}

func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join("..", "testdata", "config", "example.toml")); err == nil {
		f.Add(data)
	}
	for _, s := range []string{
		"", "[smtp]\nlisten = \"0.0.0.0:25\"\n", "smtp = 1", "[[smtp.users]]\n[[smtp.users]]\nusername=1",
		"[upstream]\nurl = \"smtp://u:p@h:1\"\ntls=\"none\"", "[tracking]\nexclude=[[1]]\nretention=\"1e9d\"",
		"[queue]\nmax_age=\"-1d\"", "[smtp]\nmax_message_size=\"1.5GB\"", "a.b.c = 1", "[smtp.users]\nx=1",
		"[[accounts]]\nname=\"w\"\nsenders=[\"@X\"]\nurl=\"smtp://u:p@h:1\"\nimap_url=\"imap://h\"\nauth=\"oauth\"",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, filepath.Join(dir, "c.toml"))
		if err == nil {
			_ = c.Validate()
			_ = Diff(Default(), c)
			_ = c.UpstreamRedacted()
		} else if _, ok := err.(Problems); !ok {
			t.Fatalf("Parse error is %T, want Problems", err)
		}
		c2, err := ParseValid(data, filepath.Join(dir, "c.toml"))
		if (err == nil) != (c2 != nil) {
			t.Fatalf("ParseValid = %v, %v", c2, err)
		}
	})
}
