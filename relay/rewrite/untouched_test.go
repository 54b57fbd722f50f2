package rewrite

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"pixelrelay/internal/corpus"
)

// neverModified are the fixtures that must leave the relay as they came,
// Bcc aside (CONTRACT.md item 6): a signed or encrypted entity, or a
// DKIM-Signature, beside or around an HTML body part. Named here, not
// asked of Inspect: the expectation must not come from the code under
// test.
var neverModified = []string{"smime-signed-html.eml", "pgp-encrypted-html.eml", "pkcs7-mime-html.eml", "dkim-html.eml"}

// cryptoTags are INDEX.tsv's tags for signed, encrypted or DKIM-signed
// mail (SOURCES.md, "Tag definitions").
var cryptoTags = []string{"signed", "encrypted", "dkim", "signed-or-dkim"}

// TestNeverModified: every fixture above and every corpus message tagged
// signed, encrypted or DKIM-signed comes out of the relay's way of making
// a recipient's copy (Inspect, Track, Rewrite with a pixel when Track says
// yes) byte for byte as it came, Bcc and X-Pixelrelay-Track removed and a
// missing Message-ID added.
func TestNeverModified(t *testing.T) {
	type msg struct {
		name string
		data []byte
	}
	var msgs []msg
	for _, f := range neverModified {
		msgs = append(msgs, msg{f, fixture(t, f)})
	}
	if reportCorpus(t) {
		tags := corpus.Tags(t)
		for _, f := range corpus.Files(t) {
			name := filepath.Base(f)
			if !slices.ContainsFunc(tags[name], func(tag string) bool { return slices.Contains(cryptoTags, tag) }) {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, msg{name, b})
		}
	}
	withHTML := 0
	for _, m := range msgs {
		t.Run(m.name, func(t *testing.T) {
			if hasHTMLBody(m.data) {
				withHTML++
			}
			want := expectedUntracked(m.data, testMsgID)
			if got := relayCopy(t, m.data); !bytes.Equal(got, want) {
				t.Fatalf("modified (pixels: %d)\n%s", bytes.Count(got, []byte(testPixelURL)), firstDiff(want, got))
			}
		})
	}
	t.Logf("%d messages, %d with an HTML body part", len(msgs), withHTML)
	if withHTML < len(neverModified) {
		t.Fatalf("only %d of the messages have an HTML body part: the test would not see a pixel", withHTML)
	}
}

// relayCopy makes a recipient's copy the way relay/queue does.
func relayCopy(t *testing.T, data []byte) []byte {
	t.Helper()
	opt := Options{MessageID: testMsgID}
	if ok, _ := Track(inspect(t, data), "rcpt@example.org", Policy{}); ok {
		opt.PixelURL = testPixelURL
	}
	return rewrite(t, data, opt)
}

// hasHTMLBody reports whether go-message finds a text/html body part
// (not an attachment, not inside an attached message).
func hasHTMLBody(data []byte) bool {
	leaves, err := goLeaves(data)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(leaves, func(l leaf) bool { return l.html })
}
