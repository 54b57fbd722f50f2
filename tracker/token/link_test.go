package token

import (
	"strings"
	"testing"

	"pixelrelay/tracker/record"
)

var _ record.LinkMinter = (*Keyring)(nil)

func mustLinks(t testing.TB, k *Keyring, tok string, n int) []string {
	t.Helper()
	links, err := k.LinkTokens(tok, n)
	if err != nil {
		t.Fatal(err)
	}
	return links
}

// TestLinkTokens: every link token of a copy is lowercase, 56 characters,
// distinct, and verifies as its copy's id and its own number, in any case.
func TestLinkTokens(t *testing.T) {
	k := newKeyring(t)
	id, tok := mustMint(t, k)
	links := mustLinks(t, k, tok, 40)
	if len(links) != 41 {
		t.Fatalf("%d tokens for links 0..40", len(links))
	}
	seen := map[string]bool{}
	for n, l := range links {
		if len(l) != LinkLen || len(l) > 64 || l != strings.ToLower(l) {
			t.Fatalf("link token %q: length %d or case", l, len(l))
		}
		if seen[l] {
			t.Fatalf("link token %q twice", l)
		}
		seen[l] = true
		for _, v := range []string{l, strings.ToUpper(l)} {
			gotID, gotN, ok := k.VerifyLink(v)
			if !ok || gotID != id || gotN != n {
				t.Fatalf("VerifyLink(%q) = %q, %d, %v; want %q, %d", v, gotID, gotN, ok, id, n)
			}
		}
	}
	again := mustLinks(t, k, strings.ToUpper(tok), 40)
	if strings.Join(again, ",") != strings.Join(links, ",") {
		t.Fatal("link tokens of one copy differ between calls")
	}
	_, other := mustMint(t, k)
	if mustLinks(t, k, other, 0)[0] == links[0] {
		t.Fatal("two copies share a link token")
	}
	if _, err := k.LinkTokens(tok, MaxLink+1); err == nil {
		t.Fatal("LinkTokens accepted too many links")
	}
	if _, err := k.LinkTokens("notatoken", 1); err == nil {
		t.Fatal("LinkTokens accepted a damaged pixel token")
	}
}

// TestLinkTokensRefused: pixel tokens are not link tokens and the
// reverse; forged, damaged, foreign and bit-flipped link tokens never
// verify.
func TestLinkTokensRefused(t *testing.T) {
	k := newKeyring(t)
	_, tok := mustMint(t, k)
	l := mustLinks(t, k, tok, 3)[2]
	if _, _, ok := k.VerifyLink(tok); ok {
		t.Fatal("a pixel token verified as a link token")
	}
	if _, ok := k.Verify(l); ok || len(l) == Len {
		t.Fatal("a link token verified as a pixel token")
	}
	_, otherTok := mustMint(t, newKeyring(t))
	foreign := mustLinks(t, newKeyring(t), otherTok, 1)[1]
	bad := []string{"", l[:LinkLen-1], l + "a", "a" + l[1:], strings.Repeat("a", LinkLen), foreign,
		l[:LinkLen-1] + "=", " " + l[1:], strings.Repeat(l, 2)}
	var raw [linkRawBytes]byte
	if n, err := encoding.Decode(raw[:], []byte(l)); err != nil || n != linkRawBytes {
		t.Fatal(err)
	}
	for bit := range linkRawBytes * 8 {
		r := raw
		r[bit/8] ^= 1 << (bit % 8)
		bad = append(bad, encoding.EncodeToString(r[:]))
	}
	for pos := range LinkLen {
		for _, c := range []byte("abz27018=-_./%") {
			if c != l[pos] {
				bad = append(bad, l[:pos]+string(c)+l[pos+1:])
			}
		}
	}
	for _, b := range bad {
		if id, n, ok := k.VerifyLink(b); ok {
			t.Fatalf("VerifyLink(%q) accepted as %q link %d", b, id, n)
		}
	}
}

// TestLinkTokensKeyVersions: link tokens are made under the pixel token's
// key version; they keep verifying after a rotation, stop when that
// version is retired, and a copy of a retired version gets tokens of the
// current one.
func TestLinkTokensKeyVersions(t *testing.T) {
	k := newKeyring(t)
	id, tok1 := mustMint(t, k)
	l1 := mustLinks(t, k, tok1, 1)[1]
	if _, err := k.Rotate(); err != nil {
		t.Fatal(err)
	}
	if again := mustLinks(t, k, tok1, 1)[1]; again != l1 {
		t.Fatal("a rotation changed the link tokens of an older copy")
	}
	if gotID, _, ok := k.VerifyLink(l1); !ok || gotID != id {
		t.Fatal("link token of version 1 stopped verifying after a rotation")
	}
	f, err := readSecrets(k.Path())
	if err != nil {
		t.Fatal(err)
	}
	f.TrackingKeys = f.TrackingKeys[1:] // retire version 1
	if err := writeSecrets(k.Path(), f); err != nil {
		t.Fatal(err)
	}
	if err := k.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := k.VerifyLink(l1); ok {
		t.Fatal("link token of a retired version verifies")
	}
	l2 := mustLinks(t, k, tok1, 1)[1]
	if gotID, n, ok := k.VerifyLink(l2); !ok || gotID != id || n != 1 {
		t.Fatalf("link token of a retired copy under the current version: %q %d %v", gotID, n, ok)
	}
}

// FuzzVerifyLink: nothing but a minted link token verifies.
func FuzzVerifyLink(f *testing.F) {
	k := newKeyring(f)
	minted := map[string]int{}
	_, tok := mustMint(f, k)
	for n, l := range mustLinks(f, k, tok, 3) {
		minted[l] = n
		f.Add(l)
		f.Add(strings.ToUpper(l))
		f.Add(l[:LinkLen-1] + "a")
	}
	f.Add(tok)
	f.Add(strings.Repeat("7", LinkLen))
	f.Fuzz(func(t *testing.T, s string) {
		id, n, ok := k.VerifyLink(s)
		if !ok {
			return
		}
		want, found := minted[strings.ToLower(s)]
		if !found || n != want || !strings.HasPrefix(strings.ToLower(s), id) {
			t.Fatalf("VerifyLink accepted %q as %q link %d, which was never minted", s, id, n)
		}
	})
}

func BenchmarkLinkTokens(b *testing.B) {
	k := newKeyring(b)
	_, tok := mustMint(b, k)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.LinkTokens(tok, 30); err != nil {
			b.Fatal(err)
		}
	}
}
