package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// testSecret is a valid secret: the Standard Webhooks test vector's.
const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// TestWebhooksParse checks decoding: defaults per block (human_only true
// unless the block says false), secret_file read and trimmed, paths made
// absolute.
func TestWebhooksParse(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "hook.secret"), testSecret+"\n")
	c, err := LoadValid(writeFile(t, filepath.Join(dir, "c.toml"), `
[[webhooks]]
name = "crm"
url = "https://crm.example/hooks"
secret = "`+testSecret+`"

[[webhooks]]
name = "local_2"
url = "http://127.0.0.1:9000/in"
secret_file = "hook.secret"
events = ["message.opened", "message.clicked"]
human_only = false
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Webhook{
		{Name: "crm", URL: "https://crm.example/hooks", Secret: testSecret, HumanOnly: true},
		{Name: "local_2", URL: "http://127.0.0.1:9000/in", Secret: testSecret, SecretFile: filepath.Join(dir, "hook.secret"),
			Events: []string{"message.opened", "message.clicked"}, HumanOnly: false},
	}
	if !reflect.DeepEqual(c.Webhooks, want) {
		t.Errorf("Webhooks =\n%+v\nwant\n%+v", c.Webhooks, want)
	}
	if got := c.WebhookSecretPath("crm"); got != filepath.Join(c.DataDir, "webhooks", "crm.secret") {
		t.Errorf("WebhookSecretPath = %q", got)
	}
	if d := Diff(c, Default()); !reflect.DeepEqual(d, []string{"webhooks"}) {
		t.Errorf("Diff = %v, want [webhooks]", d)
	}
}

// TestWebhooksValidate: each row is a config and the exact problems it
// must produce, every one naming its key.
func TestWebhooksValidate(t *testing.T) {
	hook := func(lines ...string) string {
		return "[[webhooks]]\n" + strings.Join(lines, "\n") + "\n"
	}
	okName, okURL := `name = "crm"`, `url = "https://crm.example/h"`
	tests := []struct {
		name string
		toml string
		want []Problem
	}{
		{"minimal (secret made by serve)", hook(okName, okURL), nil},
		{"all keys", hook(okName, okURL, `secret = "`+testSecret+`"`, `events = ["message.sent", "message.bounced"]`, `human_only = false`), nil},
		{"every event type", hook(okName, okURL, `events = ["message.sent", "message.deferred", "message.bounced", "message.opened", "message.clicked"]`), nil},
		{"secret without padding", hook(okName, okURL, `secret = "whsec_`+strings.Repeat("A", 43)+`"`), nil},
		{"no name", hook(okURL), []Problem{{"webhooks[0].name", "must be set (it names the endpoint in `pixelrelay webhooks`)"}}},
		{"name with slash", hook(`name = "a/b"`, okURL), []Problem{{"webhooks[0].name", `"a/b" may only hold letters, digits, '-' and '_'`}}},
		{"name with dot", hook(`name = ".."`, okURL), []Problem{{"webhooks[0].name", `".." may only hold letters, digits, '-' and '_'`}}},
		{"name too long", hook(`name = "`+strings.Repeat("x", 65)+`"`, okURL), []Problem{{"webhooks[0].name", "is longer than 64 characters"}}},
		{"duplicate name", hook(okName, okURL) + hook(okName, okURL), []Problem{{"webhooks[1].name", `"crm" is already used by webhooks[0]`}}},
		{"no url", hook(okName), []Problem{{"webhooks[0].url", "must be set: the http:// or https:// URL events are POSTed to"}}},
		{"ftp url", hook(okName, `url = "ftp://x/y"`), []Problem{{"webhooks[0].url", `"ftp://x/y" must be an absolute http:// or https:// URL`}}},
		{"relative url", hook(okName, `url = "/hooks"`), []Problem{{"webhooks[0].url", `"/hooks" must be an absolute http:// or https:// URL`}}},
		{"url without host", hook(okName, `url = "https:///x"`), []Problem{{"webhooks[0].url", `"https:///x" has no host`}}},
		{"url with fragment", hook(okName, `url = "https://x/y#z"`), []Problem{{"webhooks[0].url", `"https://x/y#z" must not have a fragment`}}},
		{"secret without prefix", hook(okName, okURL, `secret = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"`),
			[]Problem{{"webhooks[0].secret", `must start with "whsec_" (a Standard Webhooks secret); leave it empty to have one made`}}},
		{"secret not base64", hook(okName, okURL, `secret = "whsec_!!!"`), []Problem{{"webhooks[0].secret", `the part after "whsec_" is not base64`}}},
		{"secret too short", hook(okName, okURL, `secret = "whsec_c2hvcnQ="`), []Problem{{"webhooks[0].secret", "holds 5 bytes; want 24 to 64 random bytes"}}},
		{"secret file bad", hook(okName, okURL, `secret_file = "bad.secret"`),
			[]Problem{{"webhooks[0].secret_file", `{dir}/bad.secret: the secret must start with "whsec_" (a Standard Webhooks secret); leave it empty to have one made`}}},
		{"secret file missing", hook(okName, okURL, `secret_file = "none.secret"`),
			[]Problem{{"webhooks[0].secret_file", "cannot read: {dir}/none.secret: no such file or directory"}}},
		{"secret and file", hook(okName, okURL, `secret = "`+testSecret+`"`, `secret_file = "good.secret"`),
			[]Problem{{"webhooks[0].secret_file", "set either secret or secret_file, not both"}}},
		{"unknown event", hook(okName, okURL, `events = ["message.open"]`),
			[]Problem{{"webhooks[0].events[0]", `"message.open" is not an event type; want one of message.sent, message.deferred, message.bounced, message.opened, message.clicked`}}},
		{"ping is not subscribable", hook(okName, okURL, `events = ["ping"]`),
			[]Problem{{"webhooks[0].events[0]", `"ping" is not an event type; want one of message.sent, message.deferred, message.bounced, message.opened, message.clicked`}}},
		{"event twice", hook(okName, okURL, `events = ["message.sent", "message.sent"]`), []Problem{{"webhooks[0].events[1]", `"message.sent" is listed twice`}}},
		{"human_only not bool", hook(okName, okURL, `human_only = "yes"`), []Problem{{"webhooks[0].human_only", "must be true or false, not a string"}}},
		{"unknown key", hook(okName, okURL, `retries = 3`), []Problem{{"webhooks[0].retries", "unknown key"}}},
		{"typo key", hook(okName, okURL, `human_onyl = true`), []Problem{{"webhooks[0].human_onyl", `unknown key; did you mean "human_only"?`}}},
		{"one table, not an array", "[webhooks]\nname = \"x\"\n", []Problem{{"webhooks", "must be an array of tables ([[webhooks]]), not a table"}}},
	}
	isolate(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "good.secret"), testSecret+"\n")
	writeFile(t, filepath.Join(dir, "bad.secret"), "hunter2\n")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := Problems(nil)
			for _, p := range tt.want {
				want = append(want, Problem{p.Key, strings.ReplaceAll(p.Reason, "{dir}", dir)})
			}
			c, err := ParseValid([]byte(tt.toml), filepath.Join(dir, "c.toml"))
			got := problemsOf(t, err)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("problems =\n%v\nwant\n%v", got, want)
			}
			if (c == nil) == (want == nil) {
				t.Fatalf("config = %v with problems %v", c, got)
			}
		})
	}
}

func TestWebhooksWarnings(t *testing.T) {
	tests := []struct {
		name  string
		toml  string
		files map[string]os.FileMode
		want  []Problem
	}{
		{"https", "[[webhooks]]\nname = \"a\"\nurl = \"https://crm.example/h\"", nil, nil},
		{"http to loopback", "[[webhooks]]\nname = \"a\"\nurl = \"http://127.0.0.1:9000/h\"", nil, nil},
		{"http elsewhere", "[[webhooks]]\nname = \"a\"\nurl = \"http://crm.example/h\"", nil, []Problem{
			{"webhooks[0].url", "http://crm.example/h is plain http to another machine: events (addresses, IPs, subjects) travel unencrypted; use https://"}}},
		{"shared secret file", "[[webhooks]]\nname = \"a\"\nurl = \"https://x/h\"\nsecret_file = \"s\"", map[string]os.FileMode{"s": 0o644}, []Problem{
			{"webhooks[0].secret_file", "{dir}/s is readable by other users (mode 0644); chmod 600 it"}}},
		{"inline secret in shared config", "[[webhooks]]\nname = \"a\"\nurl = \"https://x/h\"\nsecret = \"" + testSecret + "\"", map[string]os.FileMode{"c.toml": 0o644}, []Problem{
			{"webhooks[0].secret", "{dir}/c.toml is readable by other users (mode 0644); chmod 600 it"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			dir := t.TempDir()
			path := writeFile(t, filepath.Join(dir, "c.toml"), tt.toml+"\n")
			for name, mode := range tt.files {
				if name != "c.toml" {
					writeFile(t, filepath.Join(dir, name), testSecret+"\n")
				}
				if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
					t.Fatal(err)
				}
			}
			c, err := LoadValid(path)
			if err != nil {
				t.Fatal(err)
			}
			var want Problems
			for _, p := range tt.want {
				want = append(want, Problem{p.Key, strings.ReplaceAll(p.Reason, "{dir}", dir)})
			}
			if got := c.Warnings(); !reflect.DeepEqual(got, want) {
				t.Errorf("Warnings() =\n%v\nwant\n%v", got, want)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://crm.example/h":          "https://crm.example/h",
		"https://u:pw@crm.example/h?a=b": "https://xxxxx@crm.example/h?a=b",
		"https://token@crm.example/h":    "https://xxxxx@crm.example/h",
		"http://127.0.0.1:9000/in":       "http://127.0.0.1:9000/in",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
