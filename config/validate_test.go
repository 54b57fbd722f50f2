package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// writeCertPair writes a self-signed certificate and its key as
// dir/name.pem and dir/name.key.
func writeCertPair(t *testing.T, dir, name string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, name+".pem"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, filepath.Join(dir, name+".key"), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})))
}

// TestValidate checks every validation message: each row is a config file
// and the exact problems it must produce ({dir} is the file's directory).
// Rows with no problems check that valid settings are accepted.
func TestValidate(t *testing.T) {
	user := "[[smtp.users]]\nusername = \"alice\"\npassword_hash = \"" + hashAlice + "\"\n"
	tests := []struct {
		name string
		toml string
		want []Problem
	}{
		{"defaults", "", nil},

		// data_dir
		{"data_dir is a file", `data_dir = "afile"`, []Problem{{"data_dir", "{dir}/afile is not a directory"}}},
		{"data_dir empty", `data_dir = ""`, []Problem{{"data_dir", "is empty; set it (the default needs $XDG_STATE_HOME or $HOME)"}}},

		// smtp.listen
		{"listen without port", "[smtp]\nlisten = \"nohost\"", []Problem{{"smtp.listen", `"nohost" is not host:port (e.g. 127.0.0.1:2525)`}}},
		{"listen port too big", "[smtp]\nlisten = \"127.0.0.1:99999\"", []Problem{{"smtp.listen", `port "99999" is not a number between 0 and 65535`}}},
		{"listen port name", "[smtp]\nlisten = \"127.0.0.1:smtp\"", []Problem{{"smtp.listen", `port "smtp" is not a number between 0 and 65535`}}},
		{"listen host with space", "[smtp]\nlisten = \"my host:25\"", []Problem{{"smtp.listen", `host "my host" is not an IP address or host name`}}},
		{"open relay", "[smtp]\nlisten = \"0.0.0.0:25\"", []Problem{{"smtp.listen", "0.0.0.0:25 is not a loopback address; add [[smtp.users]] so it is not an open relay"}}},
		{"open relay all interfaces", "[smtp]\nlisten = \":2525\"", []Problem{{"smtp.listen", ":2525 is not a loopback address; add [[smtp.users]] so it is not an open relay"}}},
		{"open relay by name", "[smtp]\nlisten = \"relay.example.com:25\"", []Problem{{"smtp.listen", "relay.example.com:25 is not a loopback address; add [[smtp.users]] so it is not an open relay"}}},
		{"public with users", "[smtp]\nlisten = \"0.0.0.0:25\"\n" + user, nil},
		{"ipv6 loopback", "[smtp]\nlisten = \"[::1]:2525\"", nil},
		{"localhost", "[smtp]\nlisten = \"localhost:2525\"", nil},
		{"port 0", "[smtp]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"", nil},

		// smtp limits
		{"hostname empty", "[smtp]\nhostname = \"\"", []Problem{{"smtp.hostname", "must not be empty"}}},
		{"hostname space", "[smtp]\nhostname = \"my host\"", []Problem{{"smtp.hostname", `"my host" must not contain spaces or control characters`}}},
		{"max_message_size 0", "[smtp]\nmax_message_size = 0", []Problem{{"smtp.max_message_size", "must be more than 0"}}},
		{"max_recipients 0", "[smtp]\nmax_recipients = 0", []Problem{{"smtp.max_recipients", "must be more than 0"}}},
		{"max_recipients negative", "[smtp]\nmax_recipients = -3", []Problem{{"smtp.max_recipients", "must be more than 0"}}},

		// smtp TLS
		{"tls cert only", "[smtp]\ntls_cert = \"good.pem\"", []Problem{{"smtp.tls_key", "must be set when smtp.tls_cert is set"}}},
		{"tls key only", "[smtp]\ntls_key = \"good.key\"", []Problem{{"smtp.tls_cert", "must be set when smtp.tls_key is set"}}},
		{"tls cert only, missing", "[smtp]\ntls_cert = \"no.pem\"", []Problem{
			{"smtp.tls_key", "must be set when smtp.tls_cert is set"},
			{"smtp.tls_cert", "cannot read: {dir}/no.pem: no such file or directory"}}},
		{"tls files missing", "[smtp]\ntls_cert = \"no.pem\"\ntls_key = \"no.key\"", []Problem{
			{"smtp.tls_cert", "cannot read: {dir}/no.pem: no such file or directory"},
			{"smtp.tls_key", "cannot read: {dir}/no.key: no such file or directory"}}},
		{"tls cert is a directory", "[smtp]\ntls_cert = \"sub\"\ntls_key = \"good.key\"", []Problem{{"smtp.tls_cert", "{dir}/sub is not a file"}}},
		{"tls mismatch", "[smtp]\ntls_cert = \"good.pem\"\ntls_key = \"other.key\"", []Problem{
			{"smtp.tls_cert", "cannot be used with smtp.tls_key: tls: private key does not match public key"}}},
		{"tls good", "[smtp]\ntls_cert = \"good.pem\"\ntls_key = \"good.key\"", nil},

		// smtp.users
		{"user without name", "[[smtp.users]]\npassword_hash = \"" + hashAlice + "\"", []Problem{{"smtp.users[0].username", "must not be empty"}}},
		{"user name control char", "[[smtp.users]]\nusername = \"a\\tb\"\npassword_hash = \"" + hashAlice + "\"", []Problem{{"smtp.users[0].username", "must not contain control characters"}}},
		{"user without hash", "[[smtp.users]]\nusername = \"alice\"", []Problem{{"smtp.users[0].password_hash", "must be set (a bcrypt hash), or set password_file"}}},
		{"user plain password", "[[smtp.users]]\nusername = \"alice\"\npassword_hash = \"secret\"", []Problem{{"smtp.users[0].password_hash", "password_hash is not a bcrypt hash ($2a$, $2b$ or $2y$...)"}}},
		{"user file not bcrypt", "[[smtp.users]]\nusername = \"alice\"\npassword_file = \"plain.txt\"", []Problem{{"smtp.users[0].password_hash", "password_file {dir}/plain.txt is not a bcrypt hash ($2a$, $2b$ or $2y$...)"}}},
		{"user hash and file", "[[smtp.users]]\nusername = \"alice\"\npassword_file = \"hash.txt\"\npassword_hash = \"" + hashAlice + "\"", []Problem{{"smtp.users[0].password_file", "set either password_hash or password_file, not both"}}},
		{"user file missing", "[[smtp.users]]\nusername = \"alice\"\npassword_file = \"none.txt\"", []Problem{{"smtp.users[0].password_file", "cannot read: {dir}/none.txt: no such file or directory"}}},
		{"duplicate users", user + user, []Problem{{"smtp.users[1].username", `"alice" is already used by smtp.users[0]`}}},
		{"user from file", "[[smtp.users]]\nusername = \"alice\"\npassword_file = \"hash.txt\"", nil},

		// upstream
		{"url scheme", "[upstream]\nurl = \"http://mail.example.com:25\"", []Problem{{"upstream.url", "scheme must be smtp, smtps or outbox"}}},
		{"url word", "[upstream]\nurl = \"mailbox\"", []Problem{{"upstream.url", "scheme must be smtp, smtps or outbox"}}},
		{"url unparsable", "[upstream]\nurl = \"smtp://[::1\"", []Problem{{"upstream.url", `"smtp://[::1" is not a URL; use "outbox", "smtp://host:587" or "smtps://host:465"`}}},
		{"url no host", "[upstream]\nurl = \"smtp://:587\"", []Problem{{"upstream.url", `"smtp://:587" has no host; write smtp://host:port`}}},
		{"url opaque", "[upstream]\nurl = \"smtp:mail.example.com\"", []Problem{{"upstream.url", `"smtp:mail.example.com" has no host; write smtp://host:port`}}},
		{"url no port", "[upstream]\nurl = \"smtp://smtp.gmail.com\"", []Problem{{"upstream.url", `"smtp://smtp.gmail.com" has no port; write smtp://smtp.gmail.com:587`}}},
		{"url no port smtps", "[upstream]\nurl = \"smtps://smtp.gmail.com\"", []Problem{{"upstream.url", `"smtps://smtp.gmail.com" has no port; write smtps://smtp.gmail.com:465`}}},
		{"url port 0", "[upstream]\nurl = \"smtp://h.example:0\"", []Problem{{"upstream.url", `port "0" is not between 1 and 65535`}}},
		{"url path", "[upstream]\nurl = \"smtp://h.example:25/x\"", []Problem{{"upstream.url", `"smtp://h.example:25/x" must not have a path, query or fragment`}}},
		{"url good", "[upstream]\nurl = \"smtps://smtp.gmail.com:465\"\nusername = \"me\"\npassword = \"pw\"", nil},
		{"tls value", "[upstream]\ntls = \"maybe\"", []Problem{{"upstream.tls", `must be "required" or "none", not "maybe"`}}},
		{"tls none remote", "[upstream]\nurl = \"smtp://smtp.gmail.com:587\"\ntls = \"none\"", []Problem{{"upstream.tls", `"none" is only allowed for a loopback upstream; smtp.gmail.com would get the password and mail in clear text`}}},
		{"tls none smtps", "[upstream]\nurl = \"smtps://127.0.0.1:465\"\ntls = \"none\"", []Problem{{"upstream.tls", `"none" cannot be used with smtps:// (implicit TLS); use smtp://`}}},
		{"tls none loopback", "[upstream]\nurl = \"smtp://127.0.0.1:2526\"\ntls = \"none\"", nil},
		{"tls none localhost", "[upstream]\nurl = \"smtp://localhost:2526\"\ntls = \"none\"", nil},
		{"tls none outbox", "[upstream]\ntls = \"none\"", nil},
		{"connections 0", "[upstream]\nconnections = 0", []Problem{{"upstream.connections", "must be between 1 and 64, not 0"}}},
		{"connections 65", "[upstream]\nconnections = 65", []Problem{{"upstream.connections", "must be between 1 and 64, not 65"}}},
		{"connections 64", "[upstream]\nconnections = 64", nil},
		{"username without password", "[upstream]\nurl = \"smtp://h.example:587\"\nusername = \"me\"", []Problem{{"upstream.password", "upstream.username is set but no password is (set password, password_file or $PIXELRELAY_UPSTREAM_PASSWORD)"}}},
		{"password without username", "[upstream]\nurl = \"smtp://h.example:587\"\npassword = \"pw\"", []Problem{{"upstream.username", "must be set when a password is set"}}},
		{"no credentials", "[upstream]\nurl = \"smtp://h.example:587\"", nil},
		{"ca_file missing", "[upstream]\nca_file = \"no.pem\"", []Problem{{"upstream.ca_file", "cannot read: {dir}/no.pem: no such file or directory"}}},
		{"ca_file not PEM", "[upstream]\nca_file = \"plain.txt\"", []Problem{{"upstream.ca_file", "{dir}/plain.txt holds no PEM certificate"}}},
		{"ca_file good", "[upstream]\nca_file = \"good.pem\"", nil},

		// queue
		{"max_age 0", "[queue]\nmax_age = \"0s\"", []Problem{{"queue.max_age", "must be more than 0"}}},
		{"min_retry negative", "[queue]\nmin_retry = \"-1m\"", []Problem{{"queue.min_retry", "must be more than 0"}}},
		{"max_retry 0", "[queue]\nmax_retry = \"0d\"", []Problem{{"queue.max_retry", "must be more than 0"}}},
		{"min above max", "[queue]\nmin_retry = \"2h\"\nmax_retry = \"1h\"", []Problem{{"queue.min_retry", "2h0m0s is longer than queue.max_retry (1h0m0s)"}}},
		{"min equals max", "[queue]\nmin_retry = \"1h\"\nmax_retry = \"1h\"", nil},

		// tracking
		{"base_url no scheme", "[tracking]\nbase_url = \"127.0.0.1:8025\"", []Problem{{"tracking.base_url", `"127.0.0.1:8025" must be an absolute http:// or https:// URL`}}},
		{"base_url ftp", "[tracking]\nbase_url = \"ftp://x.example\"", []Problem{{"tracking.base_url", `"ftp://x.example" must be an absolute http:// or https:// URL`}}},
		{"base_url relative", "[tracking]\nbase_url = \"/px\"", []Problem{{"tracking.base_url", `"/px" must be an absolute http:// or https:// URL`}}},
		{"base_url no host", "[tracking]\nbase_url = \"https://\"", []Problem{{"tracking.base_url", `"https:" has no host`}}},
		{"base_url query", "[tracking]\nbase_url = \"https://x.example/?a=1\"", []Problem{{"tracking.base_url", `"https://x.example/?a=1" must not have credentials, a query or a fragment`}}},
		{"base_url credentials", "[tracking]\nbase_url = \"https://u:p@x.example\"", []Problem{{"tracking.base_url", `"https://u:p@x.example" must not have credentials, a query or a fragment`}}},
		{"base_url with path", "[tracking]\nbase_url = \"https://x.example/px/\"", nil},
		{"policy", "[tracking]\npolicy = \"some\"", []Problem{{"tracking.policy", `must be "all" or "opt-in", not "some"`}}},
		{"policy opt-in", "[tracking]\npolicy = \"opt-in\"", nil},
		{"exclude", "[tracking]\nexclude = [\"bob\", \"@\", \"a@b@c\", \"ok@example.com\", \"@example.org\", \"a b@c.d\", \"x@.d\", \"x@d..e\"]", []Problem{
			{"tracking.exclude[0]", `"bob" is neither an address (alice@example.com) nor a domain (@example.com)`},
			{"tracking.exclude[1]", `"@" is neither an address (alice@example.com) nor a domain (@example.com)`},
			{"tracking.exclude[2]", `"a@b@c" is neither an address (alice@example.com) nor a domain (@example.com)`},
			{"tracking.exclude[5]", `"a b@c.d" is neither an address (alice@example.com) nor a domain (@example.com)`},
			{"tracking.exclude[6]", `"x@.d" is neither an address (alice@example.com) nor a domain (@example.com)`},
			{"tracking.exclude[7]", `"x@d..e" is neither an address (alice@example.com) nor a domain (@example.com)`},
		}},
		{"dedup_window negative", "[tracking]\ndedup_window = \"-1s\"", []Problem{{"tracking.dedup_window", "must not be negative"}}},
		{"dedup_window 0", "[tracking]\ndedup_window = \"0s\"", nil},
		{"ip_hourly_limit negative", "[tracking]\nip_hourly_limit = -1", []Problem{{"tracking.ip_hourly_limit", "must not be negative (0 means no limit)"}}},
		{"ip_hourly_limit 0", "[tracking]\nip_hourly_limit = 0", nil},
		{"retention 0", "[tracking]\nretention = \"0d\"", []Problem{{"tracking.retention", "must be more than 0"}}},
		{"prefetch_window negative", "[tracking]\nprefetch_window = \"-1s\"", []Problem{{"tracking.prefetch_window", "must not be negative"}}},
		{"apple ranges missing", "[tracking]\napple_ranges_file = \"no.txt\"", []Problem{{"tracking.apple_ranges_file", "cannot read: {dir}/no.txt: no such file or directory"}}},
		{"apple ranges bad line", "[tracking]\napple_ranges_file = \"badranges.txt\"", []Problem{{"tracking.apple_ranges_file", `{dir}/badranges.txt: line 2: "nope" is not an IP address or CIDR`}}},
		{"apple ranges good", "[tracking]\napple_ranges_file = \"ranges.txt\"", nil},
		{"networks missing", "[tracking]\nnetworks_file = \"no.txt\"", []Problem{{"tracking.networks_file", "cannot read: {dir}/no.txt: no such file or directory"}}},
		{"networks bad class", "[tracking]\nnetworks_file = \"badnets.txt\"", []Problem{{"tracking.networks_file", `{dir}/badnets.txt: line 3: class "robot": want apple_mpp, scanner, prefetch, human`}}},
		{"networks no source", "[tracking]\nnetworks_file = \"badnets2.txt\"", []Problem{{"tracking.networks_file", `{dir}/badnets2.txt: line 1: want "CIDR CLASS SOURCE", got "10.0.0.0/8 scanner"`}}},
		{"networks good", "[tracking]\nnetworks_file = \"nets.txt\"", nil},
		{"self_window negative", "[tracking]\nself_window = \"-1h\"", []Problem{{"tracking.self_window", "must not be negative (0 turns it off)"}}},
		{"self_window 0", "[tracking]\nself_window = \"0s\"", nil},

		// http
		{"http listen bad", "[http]\nlisten = \"8025\"", []Problem{{"http.listen", `"8025" is not host:port (e.g. 127.0.0.1:2525)`}}},
		{"http listen same as smtp", "[http]\nlisten = \"127.0.0.1:2525\"", []Problem{{"http.listen", "127.0.0.1:2525 is also smtp.listen"}}},
		{"http public", "[http]\nlisten = \"0.0.0.0:80\"", nil},
		{"trusted proxies", "[http]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.1\", \"::1\", \"2001:db8::/32\", \"bogus\", \"10.0.0.0/33\", \"\"]", []Problem{
			{"http.trusted_proxies[4]", `"bogus" is not an IP address or CIDR (10.0.0.0/8)`},
			{"http.trusted_proxies[5]", `"10.0.0.0/33" is not an IP address or CIDR (10.0.0.0/8)`},
			{"http.trusted_proxies[6]", `"" is not an IP address or CIDR (10.0.0.0/8)`},
		}},

		// several at once, in key order
		{"several", "[smtp]\nlisten = \"0.0.0.0:25\"\nmax_recipients = 0\n[upstream]\nurl = \"http://x\"\n[tracking]\npolicy = \"none\"", []Problem{
			{"smtp.max_recipients", "must be more than 0"},
			{"smtp.listen", "0.0.0.0:25 is not a loopback address; add [[smtp.users]] so it is not an open relay"},
			{"upstream.url", "scheme must be smtp, smtps or outbox"},
			{"tracking.policy", `must be "all" or "opt-in", not "none"`},
		}},
	}
	isolate(t)
	dir := t.TempDir()
	writeCertPair(t, dir, "good")
	writeCertPair(t, dir, "other")
	writeFile(t, filepath.Join(dir, "afile"), "x")
	writeFile(t, filepath.Join(dir, "sub", "x"), "x")
	writeFile(t, filepath.Join(dir, "plain.txt"), "secret\n")
	writeFile(t, filepath.Join(dir, "hash.txt"), hashAlice+"\n")
	writeFile(t, filepath.Join(dir, "ranges.txt"), "# Apple\n17.0.0.0/8\n\n2620:149::/32 # v6\n")
	writeFile(t, filepath.Join(dir, "badranges.txt"), "17.0.0.0/8\nnope\n")
	writeFile(t, filepath.Join(dir, "nets.txt"), "# mine\n198.51.100.0/24 scanner Acme Gateway <https://acme.example> 2026-12-04\n2001:db8::/32 human Office\n")
	writeFile(t, filepath.Join(dir, "badnets.txt"), "# mine\n198.51.100.0/24 scanner Acme\n10.0.0.0/8 robot X\n")
	writeFile(t, filepath.Join(dir, "badnets2.txt"), "10.0.0.0/8 scanner\n")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := Problems(nil)
			for _, p := range tt.want {
				want = append(want, Problem{p.Key, strings.ReplaceAll(p.Reason, "{dir}", dir)})
			}
			c, err := ParseValid([]byte(tt.toml+"\n"), filepath.Join(dir, "c.toml"))
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

func TestProblemsError(t *testing.T) {
	ps := Problems{
		{"upstream.url", "scheme must be smtp, smtps or outbox"},
		{"", "TOML syntax error at line 1, column 2: bad"},
		{"smtp.lisen", "unknown key"},
	}
	want := "upstream.url: scheme must be smtp, smtps or outbox\nTOML syntax error at line 1, column 2: bad\nsmtp.lisen: unknown key"
	if got := ps.Error(); got != want {
		t.Errorf("Error() =\n%s\nwant\n%s", got, want)
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name  string
		toml  string
		files map[string]os.FileMode // created with this mode
		env   string
		want  []Problem
	}{
		{"defaults", "", nil, "", nil},
		{"loopback base_url with real upstream", "[upstream]\nurl = \"smtps://smtp.gmail.com:465\"", nil, "", []Problem{
			{"tracking.base_url", "http://127.0.0.1:8025 is a loopback address: recipients' mail clients cannot reach it, so no open will be recorded"}}},
		{"loopback base_url with a real account", "[[accounts]]\nname = \"w\"\nsenders = [\"@w.example\"]\nurl = \"smtps://smtp.gmail.com:465\"", nil, "", []Problem{
			{"tracking.base_url", "http://127.0.0.1:8025 is a loopback address: recipients' mail clients cannot reach it, so no open will be recorded"}}},
		{"public base_url", "[upstream]\nurl = \"smtps://smtp.gmail.com:465\"\n[tracking]\nbase_url = \"https://px.example.com\"", nil, "", nil},
		{"shared password file", "[upstream]\npassword_file = \"pw\"", map[string]os.FileMode{"pw": 0o644}, "", []Problem{
			{"upstream.password_file", "{dir}/pw is readable by other users (mode 0644); chmod 600 it"}}},
		{"private password file", "[upstream]\npassword_file = \"pw\"", map[string]os.FileMode{"pw": 0o600}, "", nil},
		{"env wins, file ignored", "[upstream]\npassword_file = \"pw\"", map[string]os.FileMode{"pw": 0o644}, "x", nil},
		{"inline password in shared config", "[upstream]\npassword = \"pw\"", map[string]os.FileMode{"c.toml": 0o640}, "", []Problem{
			{"upstream.password", "{dir}/c.toml is readable by other users (mode 0640); chmod 600 it"}}},
		{"shared user hash file", "[[smtp.users]]\nusername = \"a\"\npassword_file = \"h\"", map[string]os.FileMode{"h": 0o604}, "", []Problem{
			{"smtp.users[0].password_file", "{dir}/h is readable by other users (mode 0604); chmod 600 it"}}},
		{"public auth without TLS", "[smtp]\nlisten = \"0.0.0.0:587\"\n[[smtp.users]]\nusername = \"a\"\npassword_hash = \"x\"", nil, "", []Problem{
			{"smtp.tls_cert", "not set while smtp.listen (0.0.0.0:587) is not loopback: SMTP AUTH passwords would travel in clear text"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			t.Setenv(EnvUpstreamPassword, tt.env)
			dir := t.TempDir()
			path := filepath.Join(dir, "c.toml")
			writeFile(t, path, tt.toml+"\n")
			for name, mode := range tt.files {
				if name != "c.toml" {
					writeFile(t, filepath.Join(dir, name), hashAlice+"\n")
				}
				if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
					t.Fatal(err)
				}
			}
			c, err := Load(path)
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
