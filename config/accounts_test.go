package config

import (
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

// TestValidateAccounts checks the problems of the added [upstream] keys and
// of [[accounts]] blocks: each row a config file and its exact problems.
func TestValidateAccounts(t *testing.T) {
	user := "[[smtp.users]]\nusername = \"alice\"\npassword_hash = \"" + hashAlice + "\"\n"
	work := "[[accounts]]\nname = \"work\"\nsenders = [\"@work.example\"]\n"
	oauth := "auth = \"oauth\"\noauth_client_id = \"id\"\n"
	tests := []struct {
		name string
		toml string
		want []Problem
	}{
		{"one account", work, nil},
		{"account smtp", work + "url = \"smtp://smtp.office365.com:587\"\nusername = \"a@work.example\"\npassword = \"pw\"\n", nil},
		{"account by smtp user", user + "[[accounts]]\nname = \"a\"\nsmtp_users = [\"alice\"]\n", nil},
		{"name missing", "[[accounts]]\nsenders = [\"a@b.example\"]\n", []Problem{
			{"accounts[0].name", "must be set (it names the endpoint in `pixelrelay webhooks`)"}}},
		{"name default", "[[accounts]]\nname = \"default\"\nsenders = [\"a@b.example\"]\n", []Problem{
			{"accounts[0].name", `"default" is the name of [upstream]; choose another`}}},
		{"name bad", "[[accounts]]\nname = \"my work\"\nsenders = [\"a@b.example\"]\n", []Problem{
			{"accounts[0].name", `"my work" may only hold letters, digits, '-' and '_'`}}},
		{"name twice", work + work, []Problem{{"accounts[1].name", `"work" is already used by accounts[0]`}}},
		{"no senders", "[[accounts]]\nname = \"x\"\n", []Problem{
			{"accounts[0].senders", "set senders or smtp_users: without either no message uses this account"}}},
		{"bad sender", "[[accounts]]\nname = \"x\"\nsenders = [\"work.example\", \"a@b.example\"]\n", []Problem{
			{"accounts[0].senders[0]", `"work.example" is neither an address (alice@example.com) nor a domain (@example.com)`}}},
		{"unknown smtp user", "[[accounts]]\nname = \"x\"\nsmtp_users = [\"bob\"]\n", []Problem{
			{"accounts[0].smtp_users[0]", `"bob" is not the username of any [[smtp.users]]`}}},
		{"account url", work + "url = \"smtp://mail.example.com\"\n", []Problem{
			{"accounts[0].url", `"smtp://mail.example.com" has no port; write smtp://mail.example.com:587`}}},
		{"account tls none remote", work + "url = \"smtp://mail.example.com:25\"\ntls = \"none\"\n", []Problem{
			{"accounts[0].tls", `"none" is only allowed for a loopback upstream; mail.example.com would get the password and mail in clear text`}}},
		{"account password without user", work + "password = \"x\"\nurl = \"smtp://127.0.0.1:25\"\n", []Problem{
			{"accounts[0].username", "must be set when a password is set"}}},
		{"account user without password", work + "username = \"x\"\nurl = \"smtp://127.0.0.1:25\"\n", []Problem{
			{"accounts[0].password", "accounts[0].username is set but no password is (set password, password_file)"}}},
		{"account connections", work + "connections = 0\n", []Problem{
			{"accounts[0].connections", "must be between 1 and 64, not 0"}}},
		{"unknown key", work + "passwd = \"x\"\n", []Problem{{"accounts[0].passwd", `unknown key; did you mean "password"?`}}},

		// auth
		{"auth bad", "[upstream]\nauth = \"token\"\n", []Problem{{"upstream.auth", `must be "password" or "oauth", not "token"`}}},
		{"oauth google", "[upstream]\n" + oauth + "oauth_provider = \"google\"\nurl = \"smtp://smtp.gmail.com:587\"\nusername = \"me@gmail.com\"\n", nil},
		{"oauth custom", "[upstream]\n" + oauth + "oauth_auth_url = \"https://id.example/auth\"\noauth_token_url = \"http://127.0.0.1:9/token\"\n", nil},
		{"oauth no provider", "[upstream]\n" + oauth + "oauth_auth_url = \"https://id.example/auth\"\n", []Problem{
			{"upstream.oauth_provider", `auth = "oauth" needs oauth_provider ("google" or "microsoft") or both oauth_auth_url and oauth_token_url`}}},
		{"oauth no client", "[upstream]\nauth = \"oauth\"\noauth_provider = \"microsoft\"\n", []Problem{
			{"upstream.oauth_client_id", `must be set when auth = "oauth" (the OAuth client's id)`}}},
		{"oauth no username", work + oauth + "oauth_provider = \"google\"\nurl = \"smtp://smtp.gmail.com:587\"\n", []Problem{
			{"accounts[0].username", `must be set when auth = "oauth" (the account's address)`}}},
		{"oauth provider bad", "[upstream]\noauth_provider = \"yahoo\"\n", []Problem{
			{"upstream.oauth_provider", `must be "google", "microsoft" or "" (custom: set oauth_auth_url and oauth_token_url), not "yahoo"`}}},
		{"oauth url plain", "[upstream]\noauth_token_url = \"http://id.example/token\"\n", []Problem{
			{"upstream.oauth_token_url", `"http://id.example/token" must be an https:// URL (http:// only on loopback)`}}},
		{"oauth url relative", "[upstream]\noauth_auth_url = \"/auth\"\n", []Problem{
			{"upstream.oauth_auth_url", `"/auth" is not an absolute https:// URL`}}},

		// sent_folder and imap_url
		{"sent_folder bad", "[upstream]\nsent_folder = \"yes\"\n", []Problem{{"upstream.sent_folder", `must be "auto", "on" or "off", not "yes"`}}},
		{"sent_folder on unknown", "[upstream]\nsent_folder = \"on\"\n", []Problem{
			{"upstream.imap_url", `must be set when sent_folder = "on" and the provider is not known (Gmail, Microsoft 365 / Outlook.com, iCloud)`}}},
		{"sent_folder on gmail", "[upstream]\nsent_folder = \"on\"\nurl = \"smtps://smtp.gmail.com:465\"\n", nil},
		{"imap plain loopback", "[upstream]\nsent_folder = \"on\"\nimap_url = \"imap://127.0.0.1:1143\"\ntls = \"none\"\nurl = \"smtp://127.0.0.1:25\"\n", nil},
		{"imap plain remote", work + "imap_url = \"imap://imap.example.com\"\ntls = \"none\"\n", []Problem{
			{"accounts[0].imap_url", `plain imap:// (tls = "none") is only allowed on loopback; imap.example.com would get the password in clear text`}}},
		{"imap scheme", "[upstream]\nimap_url = \"https://imap.example.com\"\n", []Problem{
			{"upstream.imap_url", `"https://imap.example.com" must be "imaps://host:993" or "imap://host:143"`}}},
		{"imap path", "[upstream]\nimap_url = \"imaps://imap.example.com/INBOX\"\n", []Problem{
			{"upstream.imap_url", `"imaps://imap.example.com/INBOX" must not have credentials, a path, a query or a fragment`}}},
		{"imap port", "[upstream]\nimap_url = \"imaps://imap.example.com:0\"\n", []Problem{
			{"upstream.imap_url", `port "0" is not between 1 and 65535`}}},
	}
	isolate(t)
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseValid([]byte(tt.toml+"\n"), filepath.Join(dir, "c.toml"))
			if got := problemsOf(t, err); !reflect.DeepEqual(got, Problems(tt.want)) {
				t.Fatalf("problems =\n%v\nwant\n%v", got, Problems(tt.want))
			}
		})
	}
}

// TestAccountsLoad checks an [[accounts]] block's defaults, credentials
// lifted from its URL, secret files read and paths resolved.
func TestAccountsLoad(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "work.pw"), "s3cret\n")
	writeFile(t, filepath.Join(dir, "client.secret"), "cs\n")
	path := writeFile(t, filepath.Join(dir, "c.toml"), `
[upstream]
url = "smtp://smtp.gmail.com:587"
connections = 3
[[accounts]]
name = "work"
senders = ["  Boss@Work.Example ", "@Work.Example"]
url = "smtp://smtp.office365.com:587"
username = "bob"
password_file = "work.pw"
[[accounts]]
name = "club"
senders = ["@club.example"]
auth = "oauth"
oauth_provider = "google"
oauth_client_id = "id"
oauth_client_secret_file = "client.secret"
url = "smtps://me%40club.example@smtp.gmail.com:465"
sent_folder = "off"
`)
	c, err := LoadValid(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []Account{
		{Name: "default", Upstream: Upstream{URL: "smtp://smtp.gmail.com:587", TLS: "required", Connections: 3, Auth: "password", SentFolder: "auto"}},
		{Name: "work", Senders: []string{"boss@work.example", "@work.example"}, Upstream: Upstream{
			URL: "smtp://smtp.office365.com:587", Username: "bob", Password: "s3cret", PasswordFile: filepath.Join(dir, "work.pw"),
			TLS: "required", Connections: 4, Auth: "password", SentFolder: "auto"}},
		{Name: "club", Senders: []string{"@club.example"}, Upstream: Upstream{
			URL: "smtps://smtp.gmail.com:465", Username: "me@club.example", TLS: "required", Connections: 4,
			Auth: "oauth", OAuthProvider: "google", OAuthClientID: "id", OAuthClientSecret: "cs",
			OAuthClientSecretFile: filepath.Join(dir, "client.secret"), SentFolder: "off"}},
	}
	if got := c.Accounts(); !reflect.DeepEqual(got, want) {
		t.Errorf("Accounts() =\n%+v\nwant\n%+v", got, want)
	}
	if a, ok := c.Account("club"); !ok || a.OAuthClientSecret != "cs" {
		t.Errorf("Account(club) = %+v, %v", a, ok)
	}
	if a, ok := c.Account("default"); !ok || a.Connections != 3 {
		t.Errorf("Account(default) = %+v, %v", a, ok)
	}
	if _, ok := c.Account("nope"); ok {
		t.Error("Account(nope) found")
	}
	if !slices.Contains(secretFiles(c), filepath.Join(dir, "client.secret")) || !slices.Contains(secretFiles(c), filepath.Join(dir, "work.pw")) {
		t.Errorf("secretFiles = %v, want the accounts' files watched", secretFiles(c))
	}
	next := *c
	next.Named = slices.Clone(c.Named)
	next.Named[1].Connections = 9
	if d := Diff(c, &next); !reflect.DeepEqual(d, []string{"accounts"}) {
		t.Errorf("Diff = %v, want [accounts]", d)
	}
}

func TestRoute(t *testing.T) {
	c := &Config{
		SMTP: SMTP{Users: []User{{Username: "alice"}, {Username: "bob"}}},
		Named: []Account{
			{Name: "boss", Senders: []string{"boss@work.example"}},
			{Name: "work", Senders: []string{"@work.example"}},
			{Name: "bob", SMTPUsers: []string{"bob"}},
		},
	}
	tests := []struct {
		sender, user, want string
	}{
		{"boss@work.example", "", "boss"},
		{"BOSS@Work.Example", "", "boss"},
		{"other@work.example", "", "work"},
		{"other@sub.work.example", "", "default"},
		{"me@home.example", "bob", "bob"},
		{"me@work.example", "bob", "work"}, // the first match wins
		{"me@home.example", "alice", "default"},
		{"", "", "default"},
		{"", "bob", "bob"},
		{"work.example", "", "default"},
	}
	for _, tt := range tests {
		if got := c.Route(tt.sender, tt.user).Name; got != tt.want {
			t.Errorf("Route(%q, %q) = %s, want %s", tt.sender, tt.user, got, tt.want)
		}
	}
}

func TestIMAPAndSentFolder(t *testing.T) {
	tests := []struct {
		url, imapURL, sentFolder string
		wantIMAP, wantProvider   string
		wantOn                   bool
	}{
		{"smtp://smtp.gmail.com:587", "", "auto", "imaps://imap.gmail.com:993", "gmail", true},
		{"smtps://SMTP.GoogleMail.com.:465", "", "auto", "imaps://imap.gmail.com:993", "gmail", true},
		{"smtp://smtp.office365.com:587", "", "auto", "imaps://outlook.office365.com:993", "microsoft", true},
		{"smtp://smtp-mail.outlook.com:587", "", "off", "imaps://outlook.office365.com:993", "microsoft", false},
		{"smtp://smtp.mail.me.com:587", "", "auto", "imaps://imap.mail.me.com:993", "icloud", true},
		{"smtp://mail.example.com:587", "", "auto", "", "", false},
		{"smtp://mail.example.com:587", "imaps://imap.example.com", "auto", "imaps://imap.example.com:993", "", false},
		{"smtp://127.0.0.1:2525", "imap://127.0.0.1", "on", "imap://127.0.0.1:143", "", true},
		{"smtp://127.0.0.1:2525", "imap://[::1]:1143", "on", "imap://[::1]:1143", "", true},
		{"outbox", "", "auto", "", "", false},
	}
	for _, tt := range tests {
		u := Upstream{URL: tt.url, IMAPURL: tt.imapURL, SentFolder: tt.sentFolder}
		if got := u.IMAP(); got != tt.wantIMAP {
			t.Errorf("%s %s: IMAP() = %q, want %q", tt.url, tt.imapURL, got, tt.wantIMAP)
		}
		if got := u.Provider(); got != tt.wantProvider {
			t.Errorf("%s: Provider() = %q, want %q", tt.url, got, tt.wantProvider)
		}
		if got := u.SentFolderOn(); got != tt.wantOn {
			t.Errorf("%s sent_folder %s: SentFolderOn() = %v, want %v", tt.url, tt.sentFolder, got, tt.wantOn)
		}
	}
}

func TestOAuthURLs(t *testing.T) {
	tests := []struct {
		up            Upstream
		auth, tokenEP string
	}{
		{Upstream{OAuthProvider: "google"}, "https://accounts.google.com/o/oauth2/auth", "https://oauth2.googleapis.com/token"},
		{Upstream{OAuthProvider: "microsoft"}, "https://login.microsoftonline.com/common/oauth2/v2.0/authorize", "https://login.microsoftonline.com/common/oauth2/v2.0/token"},
		{Upstream{OAuthProvider: "microsoft", OAuthTokenURL: "https://login.microsoftonline.com/tenant/oauth2/v2.0/token"},
			"https://login.microsoftonline.com/common/oauth2/v2.0/authorize", "https://login.microsoftonline.com/tenant/oauth2/v2.0/token"},
		{Upstream{OAuthAuthURL: "http://127.0.0.1:1/a", OAuthTokenURL: "http://127.0.0.1:1/t"}, "http://127.0.0.1:1/a", "http://127.0.0.1:1/t"},
		{Upstream{}, "", ""},
	}
	for _, tt := range tests {
		a, tk := tt.up.OAuthURLs()
		if a != tt.auth || tk != tt.tokenEP {
			t.Errorf("OAuthURLs(%+v) = %q, %q, want %q, %q", tt.up, a, tk, tt.auth, tt.tokenEP)
		}
	}
}
