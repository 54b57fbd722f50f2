package webhook

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSignStandardVector checks Sign against the test vector the Standard
// Webhooks specification's reference libraries publish
// (github.com/standard-webhooks/standard-webhooks, libraries/go
// webhook_test.go TestWebhookSign; the same values in the JavaScript,
// Python and other libraries' tests).
func TestSignStandardVector(t *testing.T) {
	key, err := ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

// TestSignCoversEveryPart: changing the id, the timestamp or one byte of
// the body changes the signature.
func TestSignCoversEveryPart(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	base := Sign(key, "msg_a", 100, []byte(`{"a":1}`))
	for name, sig := range map[string]string{
		"id":        Sign(key, "msg_b", 100, []byte(`{"a":1}`)),
		"timestamp": Sign(key, "msg_a", 101, []byte(`{"a":1}`)),
		"body":      Sign(key, "msg_a", 100, []byte(`{"a":2}`)),
		"key":       Sign(bytes.Repeat([]byte{8}, 32), "msg_a", 100, []byte(`{"a":1}`)),
		// "msg_a.1" + "00." would sign the same bytes as "msg_a" + "100"
		// if the parts were not separated; they are.
		"split": Sign(key, "msg_a.1", 0, []byte(`{"a":1}`)),
	} {
		if sig == base {
			t.Errorf("changing the %s did not change the signature", name)
		}
	}
}

func TestParseSecret(t *testing.T) {
	tests := []struct {
		in      string
		n       int // key bytes; 0: error
		wantErr string
	}{
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 24, ""},
		{"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 32)), 32, ""},
		{"whsec_" + base64.RawStdEncoding.EncodeToString(make([]byte, 32)), 32, ""},
		{"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 64)), 64, ""},
		{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 0, `must start with "whsec_"`},
		{"WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 0, `must start with "whsec_"`},
		{"whsec_", 0, "holds 0 bytes"},
		{"whsec_***", 0, "not base64"},
		{"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 23)), 0, "holds 23 bytes; want 24 to 64"},
		{"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 65)), 0, "holds 65 bytes"},
		{"whsec_" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 24)), 0, "not base64"},
	}
	for _, tt := range tests {
		key, err := ParseSecret(tt.in)
		switch {
		case tt.n > 0 && (err != nil || len(key) != tt.n):
			t.Errorf("ParseSecret(%q) = %d bytes, %v; want %d bytes", tt.in, len(key), err, tt.n)
		case tt.n == 0 && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ParseSecret(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestNewSecret(t *testing.T) {
	seen := map[string]bool{}
	for range 20 {
		s := NewSecret()
		key, err := ParseSecret(s)
		if err != nil || len(key) != 32 {
			t.Fatalf("NewSecret() = %q: %d bytes, %v", s, len(key), err)
		}
		if seen[s] {
			t.Fatalf("NewSecret made %q twice", s)
		}
		seen[s] = true
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := NewID()
		if !strings.HasPrefix(id, "msg_") || len(id) != 30 || strings.ContainsAny(id, ".=") {
			t.Fatalf("NewID() = %q", id)
		}
		if seen[id] {
			t.Fatalf("NewID made %q twice", id)
		}
		seen[id] = true
	}
}

func TestTargetTakes(t *testing.T) {
	all := Target{HumanOnly: true}
	some := Target{Events: []string{Opened, Bounced}}
	tests := []struct {
		t     *Target
		typ   string
		human bool
		want  bool
	}{
		{&all, Sent, true, true},
		{&all, Opened, true, true},
		{&all, Opened, false, false}, // human_only: no machine opens
		{&all, Clicked, false, false},
		{&all, Bounced, true, true},
		{&some, Opened, false, true}, // human_only off: machine opens too
		{&some, Bounced, true, true},
		{&some, Sent, true, false},
		{&some, Clicked, true, false},
	}
	for _, tt := range tests {
		if got := tt.t.Takes(tt.typ, tt.human); got != tt.want {
			t.Errorf("%+v.Takes(%s, human=%v) = %v, want %v", *tt.t, tt.typ, tt.human, got, tt.want)
		}
	}
}

// FuzzParseSecret: any input gives a key of the allowed size or an error,
// never a panic; a key it accepts signs.
func FuzzParseSecret(f *testing.F) {
	for _, s := range []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_=", "whsec_AAAA====", "", "whsec_\x00", NewSecret()} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		key, err := ParseSecret(s)
		if err != nil {
			return
		}
		if len(key) < MinSecretBytes || len(key) > MaxSecretBytes || !strings.HasPrefix(s, SecretPrefix) {
			t.Fatalf("ParseSecret(%q) accepted %d bytes", s, len(key))
		}
		if sig := Sign(key, "msg_x", 1, []byte(s)); !strings.HasPrefix(sig, "v1,") || len(sig) != 3+44 {
			t.Fatalf("Sign = %q", sig)
		}
	})
}

func TestLoadOrMakeSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), "webhooks", "crm.secret")
	s1, made, err := LoadOrMakeSecret(path)
	if err != nil || !made {
		t.Fatalf("first call: %q, made %v, %v", s1, made, err)
	}
	if _, err := ParseSecret(s1); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %v", p, st.Mode().Perm(), err, want)
		}
	}
	s2, made, err := LoadOrMakeSecret(path)
	if err != nil || made || s2 != s1 {
		t.Fatalf("second call: %q made %v %v; want the first secret %q", s2, made, err, s1)
	}
	os.Chmod(path, 0o644)
	if _, _, err := LoadOrMakeSecret(path); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("a shared secret file stays %v", st.Mode().Perm())
	}
	os.WriteFile(path, []byte("nonsense\n"), 0o600)
	if _, _, err := LoadOrMakeSecret(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("a damaged secret file: %v", err)
	}
	if _, _, err := LoadOrMakeSecret(filepath.Join(path, "x")); err == nil {
		t.Error("a secret under a file was made")
	}
}
