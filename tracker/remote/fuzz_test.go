package remote

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"pixelrelay/tracker/store"
)

// FuzzRelayAPI sends arbitrary bodies and queries to every relay API route
// with the relay's key: the answer is always JSON with a 2xx, 4xx or 503,
// never a 500 or a panic, and a refused registration stores nothing.
func FuzzRelayAPI(f *testing.F) {
	p := newPair(f, 0)
	_, secret := p.rkeys.Relay()
	for _, s := range []string{
		`{"now":"2026-01-01T00:00:00Z","copies":[{"tracking_id":"abcdefghijklmnop","queued_at":"2026-01-01T00:00:00Z","status":"sent","sent_at":"2026-01-01T00:00:01Z"}]}`,
		`{"copies":[{"tracking_id":"ABCDEFGHIJKLMNOP","status":"queued"}]}`, `{"seqs":[1,2,3]}`, `{"copies":null}`, `[]`, "",
		`{"now":"9999-12-31T23:59:59Z","copies":[{"tracking_id":"abcdefghijklmnop","queued_at":"0001-01-01T00:00:00Z"}]}`,
	} {
		for _, path := range []string{PathCopies, PathOpens + "?limit=3&wait=0", PathAck, PathKeys, PathOpens + "?limit=-1"} {
			f.Add(path, s)
		}
	}
	h := &Handler{Store: p.tracker, Keys: p.tkeys}
	f.Fuzz(func(t *testing.T, path, body string) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		method := http.MethodPost
		if strings.HasPrefix(path, PathOpens) && !strings.HasPrefix(path, PathAck) || strings.HasPrefix(path, PathKeys) && path != PathRotate {
			method = http.MethodGet
		}
		if strings.Contains(path, "wait=") {
			path = strings.ReplaceAll(path, "wait=", "w=") // no long poll in a fuzz run
		}
		req, err := http.NewRequest(method, "http://tracker"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer "+secret)
		before, _ := p.tracker.Stats()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		res := rec.Result()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode >= 500 && res.StatusCode != 503 || res.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, b)
		}
		if after, _ := p.tracker.Stats(); res.StatusCode != 200 && after.Copies != before.Copies {
			t.Fatalf("a refused request stored copies: %d -> %d", before.Copies, after.Copies)
		}
	})
}

var _ TrackerStore = (*store.Store)(nil)
