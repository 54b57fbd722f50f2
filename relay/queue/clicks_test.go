package queue

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"pixelrelay/relay/rewrite"
)

// fakeLinks makes link tokens as the keyring does in shape: 56 characters
// of lowercase base32, a function of the pixel token and the link number.
type fakeLinks struct {
	mu    sync.Mutex
	calls int
}

func (f *fakeLinks) LinkTokens(tok string, links int) ([]string, error) {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	return fakeLinkTokens(tok, links), nil
}

func fakeLinkTokens(tok string, links int) []string {
	enc := base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)
	out := make([]string, links+1)
	for n := range out {
		a := sha256.Sum256(fmt.Appendf(nil, "%s/%d", tok, n))
		b := sha256.Sum256(a[:])
		out[n] = enc.EncodeToString(append(a[:], b[:]...))[:56]
	}
	return out
}

// TestClicksPlanAndDeliver: with clicks on, each tracked copy is recorded
// with the message's link URLs and goes out with its own link tokens,
// byte for byte what rewrite.Rewrite gives for them, from the template
// (three recipients) as from a rewrite of its own (one recipient); with
// clicks off, nothing about links is recorded or changed.
func TestClicksPlanAndDeliver(t *testing.T) {
	msg, err := os.ReadFile("../../testdata/messages/bench-links30.eml")
	if err != nil {
		t.Fatal(err)
	}
	info, err := rewrite.Inspect(bytes.NewReader(msg))
	if err != nil || len(info.Links) != 30 {
		t.Fatalf("fixture: %d links, %v", len(info.Links), err)
	}
	for _, clicks := range []bool{true, false} {
		t.Run(fmt.Sprintf("clicks=%v", clicks), func(t *testing.T) {
			cfg := testConfig()
			cfg.Tracking.Clicks = clicks
			h := newHarness(t, cfg)
			fl := &fakeLinks{}
			q := h.openWith(func(o *Options) { o.Links = fl }, false)
			first := h.spool("s@x.test", []string{"first@ex.test"}, string(msg)) // teaches the token lengths
			waitFor(t, "first plan", func() bool { return len(q.Entries()) == 1 && q.Entries()[0].TrackingID != "" })
			id := h.spool("s@x.test", []string{"a@ex.test", "b@ex.test", "c@ex.test", "x@untracked.test"}, string(msg))
			waitFor(t, "second plan", func() bool { return len(q.Entries()) == 5 })
			q.mu.Lock()
			tmpl := q.msgs[id].tmpl
			links := q.msgs[id].st.Links
			q.mu.Unlock()
			if tmpl == nil {
				t.Fatal("no template made while planning")
			}
			if want := map[bool]int{true: 30, false: 0}[clicks]; links != want || tmpl.links != want {
				t.Fatalf("state says %d links, template %d; want %d", links, tmpl.links, want)
			}
			q.Start()
			waitFor(t, "delivery", func() bool { return q.Len() == 0 })
			checkClickCopies(t, h, msg, info.Links, clicks, func(rcpt string) string {
				if rcpt == "first@ex.test" {
					return first
				}
				return id
			})
		})
	}
}

// checkClickCopies: every delivered copy is the rewrite for its tokens,
// and the recorded copies carry the links (clicks) or none.
func checkClickCopies(t *testing.T, h *harness, msg []byte, links []string, clicks bool, queueID func(rcpt string) string) {
	t.Helper()
	h.rec.mu.Lock()
	tokens := map[string]string{} // rcpt -> token
	msgIDs := map[string]string{} // queue id -> Message-ID
	for tid, c := range h.rec.copies {
		msgIDs[c.QueueID] = c.MessageID
		if !c.Tracked() {
			if c.Links != nil {
				t.Errorf("untracked copy to %s recorded with links", c.Recipient)
			}
			continue
		}
		tokens[c.Recipient] = strings.Replace(tid, "tid", "tok", 1) + "x"
		if clicks && strings.Join(c.Links, " ") != strings.Join(links, " ") || !clicks && c.Links != nil {
			t.Errorf("copy to %s recorded with %d links", c.Recipient, len(c.Links))
		}
	}
	h.rec.mu.Unlock()
	got := h.up.deliveries()
	if len(got) != 5 {
		t.Fatalf("%d deliveries, want 5", len(got))
	}
	for _, d := range got {
		tok := tokens[d.to[0]]
		opt := rewrite.Options{MessageID: msgIDs[queueID(d.to[0])]}
		if tok != "" {
			opt.PixelURL = pixelURL("http://127.0.0.1:8025/", tok)
			if clicks {
				opt.ClickURL = clickURLs("http://127.0.0.1:8025/", fakeLinkTokens(tok, len(links)))
			}
		}
		var want bytes.Buffer
		if err := rewrite.Rewrite(&want, bytes.NewReader(msg), opt); err != nil {
			t.Fatal(err)
		}
		if d.body != want.String() {
			t.Errorf("copy to %v differs from the rewrite for its tokens", d.to)
		}
		n := strings.Count(strings.NewReplacer("=\r\n", "", "=\n", "").Replace(d.body), "/c/") // QP soft breaks out
		switch {
		case tok == "" && n != 0:
			t.Errorf("untracked copy to %v has %d click URLs", d.to, n)
		case tok != "" && clicks && n != len(links)+1:
			t.Errorf("copy to %v has %d click URLs, want %d and the honeypot", d.to, n, len(links))
		case !clicks && n != 0:
			t.Errorf("clicks off, but the copy to %v has %d click URLs", d.to, n)
		}
	}
}
