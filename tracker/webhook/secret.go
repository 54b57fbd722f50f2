package webhook

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
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
