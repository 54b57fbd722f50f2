package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Salvage gets data_dir and http.listen out of a file serve would refuse,
// and never takes them from the wrong place.
func TestSalvage(t *testing.T) {
	home := isolate(t)
	dir := t.TempDir()
	def := Default()
	for _, tt := range []struct {
		name       string
		file       string
		dataDir    string // "" = the default
		listen     string // "" = the default
		problemKey string // a key among the problems; "-" = none expected
	}{
		{"good file", "data_dir = \"d\"\n[http]\nlisten = \"127.0.0.1:9001\"\n", filepath.Join(dir, "d"), "127.0.0.1:9001", "-"},
		{"typo in a key", "data_dir = \"/srv/px\"\n[http]\nlisten = \"127.0.0.1:9002\"\n[smtp]\nmax_recipeints = 5\n", "/srv/px", "127.0.0.1:9002", "smtp.max_recipeints"},
		{"wrong type elsewhere", "data_dir = \"/srv/px\"\n[http]\nlisten = \"127.0.0.1:9003\"\n[tracking]\nip_hourly_limit = \"lots\"\n", "/srv/px", "127.0.0.1:9003", "tracking.ip_hourly_limit"},
		{"wrong type of the key itself", "data_dir = 5\n[http]\nlisten = \"127.0.0.1:9004\"\n", "", "127.0.0.1:9004", "data_dir"},
		{"missing secret file", "data_dir = \"/srv/px\"\n[http]\nlisten = \"127.0.0.1:9005\"\n[upstream]\npassword_file = \"/nonexistent/pw\"\n", "/srv/px", "127.0.0.1:9005", "upstream.password_file"},
		{"unterminated string after", "data_dir = \"/srv/px\"\n[http]\nlisten = \"127.0.0.1:9006\"\n[tracking]\nbase_url = \"https://t.example\n", "/srv/px", "127.0.0.1:9006", ""},
		{"unterminated string before", "[tracking]\nbase_url = \"https://t.example\n[http]\nlisten = \"127.0.0.1:9007\"\n", "", "127.0.0.1:9007", ""},
		{"the listen line itself broken", "data_dir = \"~/px\"\n[http]\nlisten = \"127.0.0.1:9008\n", filepath.Join(home, "px"), "", ""},
		{"broken header: no guessing the table", "data_dir = \"/srv/px\"\n[smtp]\nlisten = \"127.0.0.1:2526\"\n[http\nlisten = \"127.0.0.1:9009\"\n", "/srv/px", "", ""},
		{"smtp.listen is not http.listen", "[smtp]\nlisten = \"127.0.0.1:2527\"\n[tracking\n", "", "", ""},
		{"dotted key", "http.listen = \"127.0.0.1:9010\" # here\ndata_dir = '/srv/px'\nbad line\n", "/srv/px", "127.0.0.1:9010", ""},
		{"array of tables, comments, CRLF", "[[smtp.users]]\r\nusername = \"a\"\r\n[ http ] # the tracker\r\nlisten = \"[::1]:9011\"\r\n= oops\r\n", "", "[::1]:9011", ""},
		{"data_dir inside a table is not the top level one", "[tracking]\ndata_dir = \"/wrong\"\n[http\n", "", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, filepath.Join(dir, "c.toml"), tt.file)
			c, ps := Salvage(path)
			wantDir, wantListen := tt.dataDir, tt.listen
			if wantDir == "" {
				wantDir = def.DataDir
			}
			if wantListen == "" {
				wantListen = def.HTTP.Listen
			}
			if c.DataDir != wantDir || c.HTTP.Listen != wantListen || c.Path != path {
				t.Errorf("data_dir %q http.listen %q path %q, want %q %q %q", c.DataDir, c.HTTP.Listen, c.Path, wantDir, wantListen, path)
			}
			switch tt.problemKey {
			case "-":
				if ps != nil {
					t.Errorf("problems %v for a good file", ps)
				}
			default:
				found := false
				for _, p := range ps {
					found = found || p.Key == tt.problemKey || (tt.problemKey == "" && strings.HasPrefix(p.Reason, "TOML syntax error"))
				}
				if !found {
					t.Errorf("problems %v lack %q", ps, tt.problemKey)
				}
			}
		})
	}
}

func TestSalvageUnreadableAndNone(t *testing.T) {
	isolate(t)
	c, ps := Salvage("")
	if ps != nil || c.HTTP.Listen != Default().HTTP.Listen {
		t.Errorf("no file: %v %q", ps, c.HTTP.Listen)
	}
	dir := filepath.Join(t.TempDir(), "a-directory")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	c, ps = Salvage(dir)
	if len(ps) != 1 || !strings.Contains(ps[0].Reason, "cannot read") || c.HTTP.Listen != Default().HTTP.Listen || c.Path != dir {
		t.Errorf("unreadable: %v, listen %q, path %q", ps, c.HTTP.Listen, c.Path)
	}
}

// FuzzSalvage: any bytes give a config (never a panic, never nil); for a
// file that parses, the two values are what Parse gives.
func FuzzSalvage(f *testing.F) {
	for _, s := range []string{
		"data_dir = \"/d\"\n[http]\nlisten = \"127.0.0.1:1\"\n",
		"[http\nlisten = \"x\"\n",
		"http.listen = \"a\"\ndata_dir = 5\n",
		"[[smtp.users]]\nusername = \"u\"\n[http]\nlisten = 'b'\n\"",
		"[ http ]#c\r\nlisten=\"c\"\r\n[",
		"listen = \"\"\"\nmulti\n\"\"\"\n[http]\nlisten = \"d\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, ps := salvage([]byte(s), "/etc/px/c.toml")
		if c == nil {
			t.Fatal("nil config")
		}
		if good, err := Parse([]byte(s), "/etc/px/c.toml"); err == nil {
			if ps != nil || good.DataDir != c.DataDir || good.HTTP.Listen != c.HTTP.Listen {
				t.Fatalf("valid file: salvage %q %q %v, Parse %q %q", c.DataDir, c.HTTP.Listen, ps, good.DataDir, good.HTTP.Listen)
			}
		} else if ps == nil {
			t.Fatalf("Parse fails (%v) but salvage reports no problem", err)
		}
	})
}
