package token

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var _ interface {
	Mint() (string, string, error)
} = (*RemoteKeys)(nil)

// exportKey pairs a relay with k and returns its relay key, as `keys
// export` makes it.
func exportKey(t *testing.T, k *Keyring, name string) *RelayKey {
	t.Helper()
	secret, err := k.PairRelay(name)
	if err != nil {
		t.Fatal(err)
	}
	cur, keys, err := k.Export()
	if err != nil {
		t.Fatal(err)
	}
	return &RelayKey{Format: RelayKeyFormat, Relay: name, Secret: secret, CurrentVersion: cur, TrackingKeys: keys}
}

// TestPairRelay: a paired relay's secret names it; pairing the same name
// again shuts the old secret out; revoking forgets it; the secrets file
// keeps only digests and survives a reopen.
func TestPairRelay(t *testing.T) {
	k := newKeyring(t)
	s1, err := k.PairRelay("laptop")
	if err != nil {
		t.Fatal(err)
	}
	s2, err := k.PairRelay("desk")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		secret, want string
		ok           bool
	}{{s1, "laptop", true}, {s2, "desk", true}, {"", "", false}, {"pxr_" + strings.Repeat("0", 64), "", false},
		{strings.TrimPrefix(s1, "pxr_"), "", false}, {s1 + "0", "", false}, {strings.ToUpper(s1), "", false}} {
		if got, ok := k.RelayOf(tt.secret); got != tt.want || ok != tt.ok {
			t.Errorf("RelayOf(%q) = %q, %v; want %q, %v", tt.secret, got, ok, tt.want, tt.ok)
		}
	}
	raw, err := os.ReadFile(k.Path())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), s1) || strings.Contains(string(raw), strings.TrimPrefix(s2, "pxr_")) {
		t.Fatal("the secrets file holds a relay secret, not only its digest")
	}
	s3, err := k.PairRelay("laptop")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := k.RelayOf(s1); ok {
		t.Error("the old secret of a relay paired again still works")
	}
	again, err := OpenKeyring(k.Path())
	if err != nil {
		t.Fatal(err)
	}
	if name, ok := again.RelayOf(s3); !ok || name != "laptop" {
		t.Errorf("after reopening, RelayOf = %q, %v", name, ok)
	}
	if n := len(again.Relays()); n != 2 {
		t.Errorf("%d relays, want 2", n)
	}
	if err := k.RevokeRelay("desk"); err != nil {
		t.Fatal(err)
	}
	if _, ok := k.RelayOf(s2); ok {
		t.Error("a revoked relay's secret still works")
	}
	if err := k.RevokeRelay("desk"); !errors.Is(err, ErrNoRelay) {
		t.Errorf("revoking twice: %v", err)
	}
	for _, bad := range []string{"", "a b", "x/y", strings.Repeat("a", 65), "é"} {
		if _, err := k.PairRelay(bad); err == nil {
			t.Errorf("PairRelay(%q) accepted", bad)
		}
	}
}

// TestRemoteKeysMintForTracker: tokens a relay mints with its relay key
// verify at the tracker, before and after the tracker rotates; SetKeys
// writes the new keys to the file, so a reopen mints with them.
func TestRemoteKeysMintForTracker(t *testing.T) {
	k := newKeyring(t)
	rk := exportKey(t, k, "laptop")
	path := filepath.Join(t.TempDir(), "relay.key")
	if err := WriteRelayKey(path, rk); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("relay key file mode: %v %v", st, err)
	}
	r, err := OpenRemoteKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	id, tok, err := r.Mint()
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := k.Verify(tok); !ok || got != id {
		t.Fatalf("tracker verifies the relay's token: %q %v", got, ok)
	}
	if _, err := k.Rotate(); err != nil {
		t.Fatal(err)
	}
	if r.Current() != 1 {
		t.Fatalf("relay current %d", r.Current())
	}
	cur, keys, err := k.Export()
	if err != nil {
		t.Fatal(err)
	}
	changed, err := r.SetKeys(cur, keys)
	if err != nil || !changed {
		t.Fatalf("SetKeys = %v, %v", changed, err)
	}
	if changed, err := r.SetKeys(cur, keys); err != nil || changed {
		t.Fatalf("SetKeys again = %v, %v", changed, err)
	}
	reopened, err := OpenRemoteKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	_, tok2, err := reopened.Mint()
	if err != nil {
		t.Fatal(err)
	}
	if _, ver, _ := parse(tok2); reopened.Current() != 2 || ver != 2 {
		t.Fatalf("reopened current %d, token version %d", reopened.Current(), ver)
	}
	for _, tk := range []string{tok, tok2} {
		if _, ok := k.Verify(tk); !ok {
			t.Errorf("tracker refuses %q", tk)
		}
		if _, ok := reopened.Verify(tk); !ok {
			t.Errorf("relay refuses %q", tk)
		}
	}
	if name, secret := reopened.Relay(); name != "laptop" || secret != rk.Secret {
		t.Errorf("Relay() = %q, %q", name, secret)
	}
}

// TestRelayKeyRefused: damaged, foreign and unsafe relay key files are
// refused with a reason.
func TestRelayKeyRefused(t *testing.T) {
	k := newKeyring(t)
	good := exportKey(t, k, "laptop")
	mod := func(f func(*RelayKey)) []byte {
		c := *good
		c.TrackingKeys = append([]Key(nil), good.TrackingKeys...)
		f(&c)
		b, _ := json.Marshal(&c)
		return b
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"not json", []byte("hello"), "not a pixelrelay relay key"},
		{"secrets file", mustRead(t, k.Path()), "not a pixelrelay relay key (format"},
		{"bad name", mod(func(r *RelayKey) { r.Relay = "a b" }), "relay name"},
		{"bad secret", mod(func(r *RelayKey) { r.Secret = "pxr_00" }), "secret:"},
		{"no current key", mod(func(r *RelayKey) { r.CurrentVersion = 9 }), "current_version 9 has no tracking key"},
		{"short key", mod(func(r *RelayKey) { r.TrackingKeys[0].Key = "00" }), "want 32 hex-encoded bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRelayKey(tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseRelayKey: %v, want %q", err, tt.want)
			}
		})
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "relay.key")
	if _, err := OpenRemoteKeys(path); err == nil || !strings.Contains(err.Error(), "keys import") {
		t.Errorf("missing file: %v", err)
	}
	if err := WriteRelayKey(path, good); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenRemoteKeys(path); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("world-writable file: %v", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzParseRelayKey: any bytes either parse into a relay key that passes
// its own check and survives a write and a reopen, or are refused; never
// a panic.
func FuzzParseRelayKey(f *testing.F) {
	k, err := OpenKeyring(filepath.Join(f.TempDir(), "secrets.json"))
	if err != nil {
		f.Fatal(err)
	}
	secret, err := k.PairRelay("laptop")
	if err != nil {
		f.Fatal(err)
	}
	cur, keys, _ := k.Export()
	good, _ := json.Marshal(&RelayKey{Format: RelayKeyFormat, Relay: "laptop", Secret: secret, CurrentVersion: cur, TrackingKeys: keys})
	for _, s := range [][]byte{good, []byte("{}"), []byte("null"), []byte(`{"format":"pixelrelay relay key 1","tracking_keys":[{"version":0}]}`), nil} {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		rk, err := ParseRelayKey(data)
		if err != nil {
			return
		}
		if err := rk.Check(); err != nil {
			t.Fatalf("parsed key fails its check: %v", err)
		}
		path := filepath.Join(dir, "k.json")
		if err := WriteRelayKey(path, rk); err != nil {
			t.Fatal(err)
		}
		r, err := OpenRemoteKeys(path)
		if err != nil {
			t.Fatal(err)
		}
		id, tok, err := r.Mint()
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := r.Verify(tok); !ok || got != id {
			t.Fatalf("a minted token does not verify")
		}
	})
}
