package rewrite

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"pixelrelay/internal/corpus"
)

// legacyCharsets are the corpus messages of issue 11 whose well-formed HTML
// went untracked because of its charset (Shift_JIS from Gmail with CP932
// extensions and carrier emoji, ISO-2022-JP, windows-1251 in
// quoted-printable, Big5): each must be tracked.
var legacyCharsets = []string{
	"jpmobile-docomo-gmail-sjis.eml", "jpmobile-softbank-gmail-sjis.eml", "jpmobile-au-decomail.eml",
	"emlparser-sample_mime_inline_binary.eml", "rubymail-content_transfer_encoding_empty.eml",
}

// TestCorpusTracking reports, for the corpus messages that have an HTML
// body part, how many a recipient's copy tracks and why each other one is
// not (run with -v to see the list). A charset that keeps ASCII as ASCII
// is never the reason, and the messages of legacyCharsets are tracked.
func TestCorpusTracking(t *testing.T) {
	if !reportCorpus(t) {
		return
	}
	tags := corpus.Tags(t)
	why := map[string][]string{} // reason: files
	html, tracked := 0, 0
	for _, f := range corpus.Files(t) {
		name := filepath.Base(f)
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !hasHTMLBody(data) && !slices.Contains(tags[name], "html") && !slices.Contains(tags[name], "html-only") {
			continue
		}
		html++
		info := inspect(t, data)
		ok, reason := Track(info, "rcpt@example.org", Policy{})
		if ok {
			tracked++
			continue
		}
		if slices.Contains(legacyCharsets, name) {
			t.Errorf("%s: not tracked: %s", name, reason)
		}
		if strings.Contains(reason, "charset") && keepsASCII(charsetIn(reason)) {
			t.Errorf("%s: not tracked for a charset that keeps ASCII as ASCII: %s", name, reason)
		}
		why[reason] = append(why[reason], name)
	}
	reasons := make([]string, 0, len(why))
	for r := range why {
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool {
		return len(why[reasons[i]]) > len(why[reasons[j]]) || len(why[reasons[i]]) == len(why[reasons[j]]) && reasons[i] < reasons[j]
	})
	t.Logf("%d corpus messages have an HTML body part: %d tracked, %d not", html, tracked, html-tracked)
	for _, r := range reasons {
		t.Logf("%3d  %s: %s", len(why[r]), r, strings.Join(why[r], " "))
	}
	if html < 100 || tracked == 0 {
		t.Fatalf("%d messages with HTML, %d tracked: is this the corpus?", html, tracked)
	}
}

// charsetIn returns the quoted charset of a reason such as
// `malformed: unknown charset "x" of an HTML part`.
func charsetIn(reason string) string {
	_, rest, ok := strings.Cut(reason, `"`)
	if !ok {
		return "?"
	}
	cs, _, _ := strings.Cut(rest, `"`)
	return cs
}
