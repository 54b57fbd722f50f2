package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
)

// Link tokens name one link of one tracked copy, for click URLs
// (BASE_URL/c/TOKEN). A link token is 56 characters of lowercase base32
// (the pixel token's alphabet) encoding 35 bytes:
//
//	id (10 bytes, the copy's) | key version (uint16) | link (uint16) | MAC (21 bytes)
//
// The MAC is HMAC-SHA256 under the tracking key of that version over a
// label of its own (so a pixel token's MAC never passes for a link
// token's, nor the reverse), the version, the id and the link number,
// truncated to 168 bits. The URL of the link is not in the token: the
// tracker keeps it, keyed by copy and link number, so a forged token
// cannot make it redirect anywhere. Link 0 is the copy's honeypot (see
// relay/rewrite). Like pixel tokens, link tokens are case-insensitive and
// carry no personal data.
const (
	linkBytes    = 2
	linkMACBytes = 21
	linkRawBytes = idBytes + verBytes + linkBytes + linkMACBytes // 35

	// LinkLen is the length of every link token, in characters.
	LinkLen = linkRawBytes * 8 / 5 // 56
	// MaxLink is the highest link number a token can name.
	MaxLink = 1<<16 - 1
)

const linkLabel = "pixelrelay click token\x00"

// ErrLink is returned for a link number out of range.
var ErrLink = errors.New("token: link number out of range")

// linkMAC returns the truncated MAC of a link token's id, version and
// link bytes.
func (m *macKey) linkMAC(head []byte) [linkMACBytes]byte {
	h := m.pool.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(linkLabel))
	h.Write(head)
	var full [sha256.Size]byte
	h.Sum(full[:0])
	m.pool.Put(h)
	var out [linkMACBytes]byte
	copy(out[:], full[:])
	return out
}

// LinkTokens returns the link tokens of links 0 to links of the copy
// whose pixel token is tok: out[n] names link n (0: the honeypot). They are
// made under the key version tok names, or the current one when that
// version is no longer in the file. It implements record.LinkMinter.
func (k *Keyring) LinkTokens(tok string, links int) ([]string, error) {
	st := k.state.Load()
	return linkTokens(st.keys, st.current, tok, links)
}

// linkTokens makes the link tokens of a pixel token with keys, falling
// back to version current.
func linkTokens(keys map[int]*macKey, current int, tok string, links int) ([]string, error) {
	if links < 0 || links > MaxLink {
		return nil, ErrLink
	}
	raw, ver, ok := parse(tok)
	if !ok {
		return nil, fmt.Errorf("token: not a pixel token: %q", tok)
	}
	key, found := keys[ver]
	if !found {
		ver, key = current, keys[current]
	}
	var lr [linkRawBytes]byte
	copy(lr[:idBytes], raw[:idBytes])
	binary.BigEndian.PutUint16(lr[idBytes:], uint16(ver))
	out := make([]string, links+1)
	for n := range out {
		binary.BigEndian.PutUint16(lr[idBytes+verBytes:], uint16(n))
		m := key.linkMAC(lr[:idBytes+verBytes+linkBytes])
		copy(lr[idBytes+verBytes+linkBytes:], m[:])
		out[n] = encoding.EncodeToString(lr[:])
	}
	return out, nil
}

// VerifyLink checks a link token of any letter case. It returns the
// tracking id of its copy and its link number when the token is genuine
// under the key version it names, and ok false for any damaged, forged or
// retired token, or a pixel token.
func (k *Keyring) VerifyLink(tok string) (trackingID string, link int, ok bool) {
	return verifyLink(k.state.Load().keys, tok)
}

// verifyLink checks a link token against keys.
func verifyLink(keys map[int]*macKey, tok string) (trackingID string, link int, ok bool) {
	if len(tok) != LinkLen {
		return "", 0, false
	}
	var buf [LinkLen]byte
	for i := range LinkLen {
		c := tok[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	var raw [linkRawBytes]byte
	if n, err := encoding.Decode(raw[:], buf[:]); err != nil || n != linkRawBytes {
		return "", 0, false
	}
	ver := int(binary.BigEndian.Uint16(raw[idBytes:]))
	key, found := keys[ver]
	if !found {
		return "", 0, false
	}
	head := raw[:idBytes+verBytes+linkBytes]
	m := key.linkMAC(head)
	if !hmac.Equal(raw[len(head):], m[:]) {
		return "", 0, false
	}
	return encoding.EncodeToString(raw[:idBytes]), int(binary.BigEndian.Uint16(raw[idBytes+verBytes:])), true
}
