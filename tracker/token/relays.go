package token

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// A tracker pairs with relays that run elsewhere (CONTRACT.md "Where the
// tracker runs"). Each relay gets a name and a random secret; the secrets
// file keeps only the secret's SHA-256, so a copy of the tracker's file does
// not let anyone act as the relay. The relay holds the secret and the
// tracking keys in its relay key file (RelayKey).

// relayEntry is one paired relay in the secrets file.
type relayEntry struct {
	Name         string    `json:"name"`
	SecretSHA256 string    `json:"secret_sha256"` // hex
	CreatedAt    time.Time `json:"created_at"`
}

// RelayInfo describes a paired relay.
type RelayInfo struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// relaySecretPrefix starts every relay secret, so one is recognised in a
// file or a log.
const relaySecretPrefix = "pxr_"

// maxRelayName bounds a relay's name.
const maxRelayName = 64

// ValidRelayName reports whether name can name a relay: 1 to 64 letters,
// digits, '.', '-' or '_'.
func ValidRelayName(name string) bool {
	if name == "" || len(name) > maxRelayName {
		return false
	}
	return !strings.ContainsFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_')
	})
}

// PairRelay makes a new secret for the relay called name and returns it.
// A relay of that name that was paired before is replaced: its old secret
// stops working (pairing again is how a lost laptop is shut out).
func (k *Keyring) PairRelay(name string) (secret string, err error) {
	if !ValidRelayName(name) {
		return "", fmt.Errorf("relay name %q: want 1 to %d letters, digits, '.', '-' or '_'", name, maxRelayName)
	}
	raw, err := randomHex()
	if err != nil {
		return "", err
	}
	secret = relaySecretPrefix + raw
	err = k.edit(func(f *secretsFile) error {
		sum := sha256.Sum256([]byte(secret))
		e := relayEntry{Name: name, SecretSHA256: hex.EncodeToString(sum[:]), CreatedAt: time.Now().UTC()}
		f.Relays = append(removeRelay(f.Relays, name), e)
		return nil
	})
	if err != nil {
		return "", err
	}
	k.log.Info("relay paired", "relay", name, "path", k.path)
	return secret, nil
}

// ErrNoRelay is RevokeRelay's error for a name that is not paired.
var ErrNoRelay = errors.New("no relay of that name is paired")

// RevokeRelay forgets the relay called name: its secret stops working.
func (k *Keyring) RevokeRelay(name string) error {
	err := k.edit(func(f *secretsFile) error {
		left := removeRelay(f.Relays, name)
		if len(left) == len(f.Relays) {
			return fmt.Errorf("%w: %q", ErrNoRelay, name)
		}
		f.Relays = left
		return nil
	})
	if err == nil {
		k.log.Info("relay revoked", "relay", name, "path", k.path)
	}
	return err
}

// Relays lists the paired relays.
func (k *Keyring) Relays() []RelayInfo {
	out := []RelayInfo{}
	for _, r := range k.state.Load().relays {
		out = append(out, RelayInfo{Name: r.Name, CreatedAt: r.CreatedAt})
	}
	return out
}

// RelayOf returns the name of the paired relay whose secret this is. Every
// entry is compared, in constant time, so the time taken says nothing
// about which one matched.
func (k *Keyring) RelayOf(secret string) (name string, ok bool) {
	if !strings.HasPrefix(secret, relaySecretPrefix) {
		return "", false
	}
	sum := sha256.Sum256([]byte(secret))
	for _, r := range k.state.Load().relays {
		want, err := hex.DecodeString(r.SecretSHA256)
		if err == nil && subtle.ConstantTimeCompare(sum[:], want) == 1 && !ok {
			name, ok = r.Name, true
		}
	}
	return name, ok
}

// Export returns the tracking keys: the current version and every version
// still in the file, for a relay key.
func (k *Keyring) Export() (current int, keys []Key, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	f, err := readSecrets(k.path)
	if err != nil {
		return 0, nil, err
	}
	return f.CurrentVersion, f.TrackingKeys, nil
}

// edit re-reads the secrets file, applies fn and writes it back.
func (k *Keyring) edit(fn func(*secretsFile) error) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	f, err := readSecrets(k.path)
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		return err
	}
	if err := writeSecrets(k.path, f); err != nil {
		return err
	}
	return k.apply(f)
}

func removeRelay(list []relayEntry, name string) []relayEntry {
	out := make([]relayEntry, 0, len(list))
	for _, r := range list {
		if r.Name != name {
			out = append(out, r)
		}
	}
	return out
}
