package token

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"pixelrelay/tracker/record"
)

var _ record.Minter = (*Keyring)(nil)

const alphabet = "abcdefghijklmnopqrstuvwxyz234567"

func newKeyring(t testing.TB) *Keyring {
	t.Helper()
	k, err := OpenKeyring(filepath.Join(t.TempDir(), "data", "secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustMint(t testing.TB, k *Keyring) (string, string) {
	t.Helper()
	id, tok, err := k.Mint()
	if err != nil {
		t.Fatal(err)
	}
	return id, tok
}

func TestMintVerifyRoundTrip(t *testing.T) {
	k := newKeyring(t)
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		id, tok := mustMint(t, k)
		if len(tok) > 64 || len(tok) != Len {
			t.Fatalf("token %q: length %d", tok, len(tok))
		}
		if tok != strings.ToLower(tok) {
			t.Fatalf("token %q is not lowercase", tok)
		}
		if !ValidID(id) || !strings.HasPrefix(tok, id) {
			t.Fatalf("id %q of token %q", id, tok)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
		got, ok := k.Verify(tok)
		if !ok || got != id {
			t.Fatalf("Verify(%q) = %q, %v; want %q, true", tok, got, ok, id)
		}
	}
}

func TestVerifyCaseVariants(t *testing.T) {
	k := newKeyring(t)
	id, tok := mustMint(t, k)
	mixed := []byte(tok)
	for i := range mixed {
		if i%2 == 0 {
			mixed[i] = strings.ToUpper(string(mixed[i]))[0]
		}
	}
	for _, v := range []string{tok, strings.ToUpper(tok), strings.ToLower(strings.ToUpper(tok)), string(mixed)} {
		got, ok := k.Verify(v)
		if !ok || got != id {
			t.Errorf("Verify(%q) = %q, %v; want %q, true", v, got, ok, id)
		}
	}
}

func TestVerifyRejectsEverySingleCharacterChange(t *testing.T) {
	k := newKeyring(t)
	_, tok := mustMint(t, k)
	subs := alphabet + strings.ToUpper(alphabet) + "018=-_. /%"
	for pos := 0; pos < len(tok); pos++ {
		for _, c := range []byte(subs) {
			if strings.ToLower(string(c)) == string(tok[pos]) {
				continue // the same character in another case
			}
			bad := tok[:pos] + string(c) + tok[pos+1:]
			if id, ok := k.Verify(bad); ok {
				t.Fatalf("Verify accepted %q (position %d changed to %q) as %q", bad, pos, c, id)
			}
		}
	}
	for _, bad := range []string{"", tok[:len(tok)-1], tok + "a", "a" + tok, tok[1:] + "a", strings.Repeat("a", Len)} {
		if _, ok := k.Verify(bad); ok {
			t.Errorf("Verify accepted %q", bad)
		}
	}
}

func TestVerifyRejectsForgedAndUnknownVersion(t *testing.T) {
	k := newKeyring(t)
	other := newKeyring(t)
	_, tok := mustMint(t, k)
	raw, _, ok := parse(tok)
	if !ok {
		t.Fatal("parse failed")
	}
	tests := []struct {
		name  string
		token string
	}{
		{"other keyring", func() string { _, t2 := mustMint(t, other); return t2 }()},
		{"zero MAC", func() string {
			r := raw
			clear(r[idBytes+verBytes:])
			return encoding.EncodeToString(r[:])
		}()},
		{"id swapped, MAC kept", func() string {
			r := raw
			r[0] ^= 1
			return encoding.EncodeToString(r[:])
		}()},
		{"unknown version 2", func() string {
			r := raw
			r[idBytes+1] = 2
			m := k.state.Load().keys[1].sum(r[:idBytes+verBytes])
			copy(r[idBytes+verBytes:], m[:])
			return encoding.EncodeToString(r[:])
		}()},
		{"version 0", func() string {
			r := raw
			r[idBytes+1] = 0
			return encoding.EncodeToString(r[:])
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if id, ok := k.Verify(tt.token); ok {
				t.Fatalf("Verify(%q) accepted as %q", tt.token, id)
			}
		})
	}
}

func TestRotateKeepsOldTokens(t *testing.T) {
	k := newKeyring(t)
	if k.Current() != 1 {
		t.Fatalf("Current() = %d, want 1", k.Current())
	}
	id1, tok1 := mustMint(t, k)
	v, err := k.Rotate()
	if err != nil || v != 2 || k.Current() != 2 {
		t.Fatalf("Rotate() = %d, %v; Current() = %d", v, err, k.Current())
	}
	id2, tok2 := mustMint(t, k)
	if _, ver, _ := parse(tok2); ver != 2 {
		t.Fatalf("new token names version %d, want 2", ver)
	}
	if _, ver, _ := parse(tok1); ver != 1 {
		t.Fatalf("old token names version %d, want 1", ver)
	}
	for tok, id := range map[string]string{tok1: id1, tok2: id2} {
		if got, ok := k.Verify(tok); !ok || got != id {
			t.Errorf("Verify(%q) = %q, %v after rotation", tok, got, ok)
		}
	}
	// A second process opening the same file sees both versions.
	k2, err := OpenKeyring(k.Path())
	if err != nil {
		t.Fatal(err)
	}
	if k2.Current() != 2 {
		t.Errorf("reopened Current() = %d, want 2", k2.Current())
	}
	if _, ok := k2.Verify(tok1); !ok {
		t.Error("reopened keyring rejects a version-1 token")
	}
	st, err := os.Stat(k.Path())
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("after rotate: mode %v, %v", st.Mode(), err)
	}
}

func TestRetireVersionByEditingFile(t *testing.T) {
	k := newKeyring(t)
	_, tok1 := mustMint(t, k)
	if _, err := k.Rotate(); err != nil {
		t.Fatal(err)
	}
	_, tok2 := mustMint(t, k)
	f, err := readSecrets(k.Path())
	if err != nil {
		t.Fatal(err)
	}
	f.TrackingKeys = f.TrackingKeys[1:] // drop version 1
	if err := writeSecrets(k.Path(), f); err != nil {
		t.Fatal(err)
	}
	if err := k.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, ok := k.Verify(tok1); ok {
		t.Error("retired version 1 still verifies")
	}
	if _, ok := k.Verify(tok2); !ok {
		t.Error("version 2 stopped verifying")
	}
}

func TestSecretsFileModeAndAdminKey(t *testing.T) {
	t.Setenv(AdminKeyEnv, "")
	path := filepath.Join(t.TempDir(), "secrets.json")
	if _, err := AdminKey(path); err == nil || !strings.Contains(err.Error(), "start pixelrelay serve once") {
		t.Fatalf("AdminKey on missing file: %v", err)
	}
	k, err := OpenKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("new file mode %v, %v", st.Mode(), err)
	}
	admin := k.AdminKey()
	if len(admin) != 64 {
		t.Fatalf("admin key %q: want 64 hex characters", admin)
	}
	if got, err := AdminKey(path); err != nil || got != admin {
		t.Fatalf("AdminKey(path) = %q, %v; want %q", got, err, admin)
	}
	var f secretsFile
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &f); err != nil || f.CurrentVersion != 1 || len(f.TrackingKeys) != 1 {
		t.Fatalf("secrets file %s: %v", b, err)
	}

	// A loose mode is tightened on open; the keys are kept.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	k2, err := OpenKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode after reopen %v, want 0600", st.Mode().Perm())
	}
	if k2.AdminKey() != admin {
		t.Error("reopen changed the admin key")
	}

	t.Setenv(AdminKeyEnv, "from-env")
	if k.AdminKey() != "from-env" {
		t.Errorf("Keyring.AdminKey() = %q with env set", k.AdminKey())
	}
	if got, err := AdminKey(filepath.Join(t.TempDir(), "missing.json")); err != nil || got != "from-env" {
		t.Errorf("AdminKey with env = %q, %v", got, err)
	}
}

func TestOpenKeyringRejectsBadFile(t *testing.T) {
	tests := []struct{ name, content string }{
		{"not json", "{"},
		{"no keys", `{"admin_key":"x","current_version":1,"tracking_keys":[]}`},
		{"short key", `{"admin_key":"x","current_version":1,"tracking_keys":[{"version":1,"key":"abcd"}]}`},
		{"no admin key", `{"admin_key":"","current_version":1,"tracking_keys":[{"version":1,"key":"` + strings.Repeat("ab", 32) + `"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "secrets.json")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := OpenKeyring(path); err == nil || !strings.Contains(err.Error(), path) {
				t.Fatalf("OpenKeyring: %v; want an error naming the file", err)
			}
		})
	}
}

func TestConcurrentCreateAndUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secrets.json")
	var wg sync.WaitGroup
	admins := make([]string, 8)
	for i := range admins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := OpenKeyring(path)
			if err != nil {
				t.Error(err)
				return
			}
			admins[i] = k.AdminKey()
			for j := 0; j < 50; j++ {
				id, tok, err := k.Mint()
				if err != nil {
					t.Error(err)
					return
				}
				if got, ok := k.Verify(tok); !ok || got != id {
					t.Errorf("Verify failed during concurrent use")
					return
				}
				if j == 25 && i == 0 {
					if _, err := k.Rotate(); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, a := range admins {
		if a != admins[0] {
			t.Fatalf("concurrent creators disagree on the admin key: %q vs %q", a, admins[0])
		}
	}
}

func FuzzVerify(f *testing.F) {
	k := newKeyring(f)
	minted := map[string]bool{}
	for i := 0; i < 4; i++ {
		_, tok := mustMint(f, k)
		minted[tok] = true
		f.Add(tok)
		f.Add(strings.ToUpper(tok))
		f.Add(tok[:Len-1] + "a")
	}
	f.Add("")
	f.Add(strings.Repeat("7", Len))
	f.Fuzz(func(t *testing.T, s string) {
		id, ok := k.Verify(s)
		if !ok {
			return
		}
		if !minted[strings.ToLower(s)] {
			t.Fatalf("Verify accepted %q (id %q), which was never minted", s, id)
		}
		if !strings.HasPrefix(strings.ToLower(s), id) {
			t.Fatalf("id %q is not the token's prefix", id)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	k := newKeyring(b)
	_, tok := mustMint(b, k)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := k.Verify(tok); !ok {
				b.Fatal("verify failed")
			}
		}
	})
}

func BenchmarkMint(b *testing.B) {
	k := newKeyring(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := k.Mint(); err != nil {
			b.Fatal(err)
		}
	}
}
