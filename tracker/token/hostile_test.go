package token

import (
	"bytes"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVerifyRejectsEveryBitFlip: each of the 240 bits of a token flipped,
// re-encoded in lower and upper case, is refused.
func TestVerifyRejectsEveryBitFlip(t *testing.T) {
	k := newKeyring(t)
	_, tok := mustMint(t, k)
	raw, _, ok := parse(tok)
	if !ok {
		t.Fatal("parse failed")
	}
	tried := 0
	for bit := 0; bit < rawBytes*8; bit++ {
		r := raw
		r[bit/8] ^= 1 << (bit % 8)
		bad := encoding.EncodeToString(r[:])
		for _, v := range []string{bad, strings.ToUpper(bad)} {
			tried++
			if id, ok := k.Verify(v); ok {
				t.Fatalf("bit %d flipped: Verify(%q) accepted as %q", bit, v, id)
			}
		}
	}
	if tried != 480 {
		t.Fatalf("tried %d variants", tried)
	}
}

// TestVerifyRejectsLookalikes: Unicode case variants (Kelvin sign for k,
// long s for s, dotless i), percent-encoding and padding never verify.
func TestVerifyRejectsLookalikes(t *testing.T) {
	k := newKeyring(t)
	_, tok := mustMint(t, k)
	var variants []string
	for _, sub := range []struct{ from, to string }{{"k", "\u212a"}, {"s", "\u017f"}, {"i", "\u0131"}, {"a", "%61"}} {
		if i := strings.Index(tok, sub.from); i >= 0 {
			variants = append(variants, tok[:i]+sub.to+tok[i+1:])
		}
	}
	variants = append(variants, tok+"=", tok+"\x00", " "+tok, tok[:Len-1]+"\n", strings.Repeat(tok, 2), strings.Repeat("a", 10_000))
	for _, v := range variants {
		if id, ok := k.Verify(v); ok {
			t.Errorf("Verify(%q) accepted as %q", v, id)
		}
	}
}

// captureLog points slog.Default (which the keyring logs to) at a buffer
// for the rest of the test.
func captureLog(t *testing.T) *bytes.Buffer {
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })
	return &buf
}

// TestSecretsFilePermissions: at start (OpenKeyring) and on Reload, a
// secrets file readable by group or others is set to 0600 with a warning
// naming it and its old mode; one writable by them is refused, untouched.
func TestSecretsFilePermissions(t *testing.T) {
	rows := []struct {
		mode    fs.FileMode
		want    string // "ok", "fixed" or "refused"
		wantNew fs.FileMode
	}{
		{0o600, "ok", 0o600},
		{0o400, "ok", 0o400},
		{0o640, "fixed", 0o600},
		{0o644, "fixed", 0o600},
		{0o604, "fixed", 0o600},
		{0o700, "ok", 0o700},
		{0o660, "refused", 0o660},
		{0o620, "refused", 0o620},
		{0o602, "refused", 0o602},
		{0o666, "refused", 0o666},
		{0o777, "refused", 0o777},
	}
	for _, row := range rows {
		t.Run(fmt.Sprintf("%#o", row.mode), func(t *testing.T) {
			for _, how := range []string{"open", "reload"} {
				path := filepath.Join(t.TempDir(), "secrets.json")
				first, err := OpenKeyring(path)
				if err != nil {
					t.Fatal(err)
				}
				admin := first.AdminKey()
				if err := os.Chmod(path, row.mode); err != nil {
					t.Fatal(err)
				}
				logs := captureLog(t)
				var k *Keyring
				if how == "open" {
					k, err = OpenKeyring(path)
				} else {
					first.log = slog.Default()
					k, err = first, first.Reload()
				}
				st, _ := os.Stat(path)
				if st.Mode().Perm() != row.wantNew {
					t.Errorf("%s: mode after %#o, want %#o", how, st.Mode().Perm(), row.wantNew)
				}
				warned := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), path) &&
					strings.Contains(logs.String(), fmt.Sprintf("old_mode=%#o", row.mode))
				switch row.want {
				case "ok", "fixed":
					if err != nil || k.AdminKey() != admin {
						t.Fatalf("%s: %v", how, err)
					}
					if warned != (row.want == "fixed") {
						t.Errorf("%s: warning logged = %v; log: %s", how, warned, logs)
					}
				case "refused":
					if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), fmt.Sprintf("%#o", row.mode)) {
						t.Fatalf("%s: err = %v; want a refusal naming the file and its mode", how, err)
					}
					if how == "reload" && first.AdminKey() != admin {
						t.Error("a refused reload changed the keyring")
					}
				}
			}
		})
	}
}

// TestSecretsFileOwner: a secrets file owned by another user is refused
// (decided by checkSecrets; with root, also on a real chowned file).
func TestSecretsFileOwner(t *testing.T) {
	rows := []struct {
		owner, euid int
		mode        fs.FileMode
		tighten     bool
		refused     bool
	}{
		{1000, 1000, 0o600, false, false},
		{1000, 1000, 0o644, true, false},
		{1000, 1001, 0o600, false, true},
		{0, 1000, 0o600, false, true},
		{1000, 0, 0o600, false, true},
		{-1, 1000, 0o600, false, false}, // owner unknown (not unix)
		{-1, 1000, 0o664, false, true},
	}
	for _, r := range rows {
		tighten, err := checkSecrets("/x/secrets.json", r.mode, r.owner, r.euid)
		if tighten != r.tighten || (err != nil) != r.refused {
			t.Errorf("owner %d euid %d mode %#o: tighten %v, err %v", r.owner, r.euid, r.mode, tighten, err)
		}
		if err != nil && !strings.Contains(err.Error(), "/x/secrets.json") {
			t.Errorf("error does not name the file: %v", err)
		}
	}
	path := filepath.Join(t.TempDir(), "secrets.json")
	if _, err := OpenKeyring(path); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		return // chown needs root; the table above covers the decision
	}
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKeyring(path); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Errorf("OpenKeyring on a file of uid 65534: %v", err)
	}
}
