// Package token mints and verifies the authenticated tracking tokens that go
// into pixel URLs, and keeps the secrets file (admin key and tracking keys).
//
// A token is 48 characters of lowercase base32 (RFC 4648 alphabet, no
// padding) encoding 30 bytes:
//
//	id (10 random bytes) | key version (uint16, big endian) | MAC (18 bytes)
//
// The MAC is HMAC-SHA256 under the tracking key of that version over a
// domain label, the version and the id, truncated to 144 bits. The first 16
// characters of a token are the tracking id (the base32 of the 10 id bytes,
// 80 bits), the id users see in `pixelrelay opens ID`. 48 characters of
// base32 carry exactly 30 bytes, so no two different lowercase strings decode
// to the same bytes; case is ignored because mail clients may change it.
//
// Retiring a key version: stop pixelrelay, remove that version's entry from
// "tracking_keys" in secrets.json (never the "current_version" one), and
// start it again. Pixels of tokens made with the removed version are still
// served, but their opens are no longer recorded.
//
// Permissions: the secrets file is made 0600. At start and on Reload, a file
// readable by group or others is set back to 0600 with a warning naming the
// file and its old mode; a file writable by group or others, or owned by
// another user, is refused (its keys could have been replaced, which would
// let someone forge tokens or use the admin API) until its owner checks it.
package token

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
)

// Token layout sizes, in bytes and characters.
const (
	idBytes  = 10
	verBytes = 2
	macBytes = 18
	rawBytes = idBytes + verBytes + macBytes // 30

	// Len is the length of every token, in characters.
	Len = rawBytes * 8 / 5 // 48
	// IDLen is the length of a tracking id, in characters.
	IDLen = idBytes * 8 / 5 // 16

	// MaxVersion is the highest key version a token can name.
	MaxVersion = 1<<16 - 1
)

// macLabel separates token MACs from any other use of the tracking keys.
const macLabel = "pixelrelay tracking token\x00"

// encoding is lowercase base32 without padding: safe in URLs and paths,
// and unchanged by mail clients that lowercase links.
var encoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// ErrVersion is returned when a token would need a key version that does
// not fit in a token.
var ErrVersion = errors.New("token: key version out of range")

// macKey is one tracking key with a pool of keyed HMAC states, so minting
// and verifying do not re-derive the HMAC pads each time.
type macKey struct {
	pool sync.Pool
}

func newMacKey(key []byte) *macKey {
	k := append([]byte(nil), key...)
	return &macKey{pool: sync.Pool{New: func() any { return hmac.New(sha256.New, k) }}}
}

// sum returns the truncated HMAC-SHA256 over the label and idAndVersion.
func (m *macKey) sum(idAndVersion []byte) [macBytes]byte {
	h := m.pool.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(macLabel))
	h.Write(idAndVersion)
	var full [sha256.Size]byte
	h.Sum(full[:0])
	m.pool.Put(h)
	var out [macBytes]byte
	copy(out[:], full[:])
	return out
}

// mint makes a token for a fresh random id under key (version ver).
func mint(ver int, key *macKey) (trackingID, tok string, err error) {
	if ver < 1 || ver > MaxVersion {
		return "", "", ErrVersion
	}
	var raw [rawBytes]byte
	if _, err := rand.Read(raw[:idBytes]); err != nil {
		return "", "", fmt.Errorf("token: random id: %w", err)
	}
	binary.BigEndian.PutUint16(raw[idBytes:], uint16(ver))
	m := key.sum(raw[:idBytes+verBytes])
	copy(raw[idBytes+verBytes:], m[:])
	tok = encoding.EncodeToString(raw[:])
	return tok[:IDLen], tok, nil
}

// parse decodes a token of any case into its raw bytes and names the key
// version it claims. It does not check the MAC.
func parse(tok string) (raw [rawBytes]byte, ver int, ok bool) {
	if len(tok) != Len {
		return raw, 0, false
	}
	var buf [Len]byte
	for i := 0; i < Len; i++ {
		c := tok[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	n, err := encoding.Decode(raw[:], buf[:])
	if err != nil || n != rawBytes {
		return raw, 0, false
	}
	return raw, int(binary.BigEndian.Uint16(raw[idBytes:])), true
}

// check reports whether raw carries a valid MAC under key, in constant time.
func check(raw [rawBytes]byte, key *macKey) bool {
	m := key.sum(raw[:idBytes+verBytes])
	return hmac.Equal(raw[idBytes+verBytes:], m[:])
}

// idOf returns the tracking id of a decoded token.
func idOf(raw [rawBytes]byte) string {
	return encoding.EncodeToString(raw[:idBytes])
}

// ValidID reports whether s looks like a tracking id (16 base32 characters,
// any case). It says nothing about whether the id exists.
func ValidID(s string) bool {
	if len(s) != IDLen {
		return false
	}
	_, err := encoding.DecodeString(strings.ToLower(s))
	return err == nil
}
