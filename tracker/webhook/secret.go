package webhook

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"pixelrelay/internal/atomicfile"
)

// SecretPrefix starts every signing secret (Standard Webhooks' symmetric
// secret serialization).
const SecretPrefix = "whsec_"

// Secret sizes in bytes: the specification asks for at least 24 random
// bytes (and at most 64); NewSecret makes 32.
const (
	MinSecretBytes = 24
	MaxSecretBytes = 64
	newSecretBytes = 32
)

// NewSecret returns a new random secret, "whsec_" + base64 of 32 bytes.
func NewSecret() string {
	b := make([]byte, newSecretBytes)
	rand.Read(b) // never fails (crypto/rand crashes the program instead)
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// ParseSecret returns the key bytes of "whsec_BASE64": standard base64,
// with or without padding, 24 to 64 bytes.
func ParseSecret(s string) ([]byte, error) {
	rest, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return nil, errors.New(`must start with "whsec_" (a Standard Webhooks secret); leave it empty to have one made`)
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(rest)
	}
	if err != nil {
		return nil, errors.New(`the part after "whsec_" is not base64`)
	}
	if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return nil, fmt.Errorf("holds %d bytes; want %d to %d random bytes", len(key), MinSecretBytes, MaxSecretBytes)
	}
	return key, nil
}

// LoadOrMakeSecret returns the secret kept in path, making it first (a new
// random secret, written 0600 in a 0700 directory, fsynced) when the file
// does not exist. made reports that it was just made. A file readable by
// others is set back to 0600.
func LoadOrMakeSecret(path string) (secret string, made bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if st, serr := os.Stat(path); serr == nil && st.Mode().Perm()&0o077 != 0 {
			os.Chmod(path, 0o600)
		}
		s := strings.TrimSpace(string(b))
		if _, err := ParseSecret(s); err != nil {
			return "", false, fmt.Errorf("%s: the secret %v", path, err)
		}
		return s, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	s := NewSecret()
	if err := writeFileSync(path, []byte(s+"\n")); err != nil {
		return "", false, err
	}
	return s, true, nil
}

// writeFileSync writes data to path through a temporary file, fsynced and
// renamed, so that a crash leaves the old file or the new one.
func writeFileSync(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o600)
}
