package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
	"pixelrelay/tracker/token"
)

// pair is a public tracker (its store, keyring and relay API over real
// HTTP) and a relay paired with it (its store, relay key and client).
type pair struct {
	tracker   *store.Store
	tkeys     *token.Keyring
	srv       *httptest.Server
	relay     *store.Store
	rkeys     *token.RemoteKeys
	client    *Client
	trackerAt func() time.Time
}

func newPair(t testing.TB, trackerSkew time.Duration) *pair {
	t.Helper()
	dir := t.TempDir()
	p := &pair{trackerAt: func() time.Time { return time.Now().Add(trackerSkew) }}
	var err error
	if p.tkeys, err = token.OpenKeyring(filepath.Join(dir, "t", "secrets.json")); err != nil {
		t.Fatal(err)
	}
	if p.tracker, err = store.OpenStore(filepath.Join(dir, "t.db"), store.Options{TrackerOnly: true, Now: p.trackerAt}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.tracker.Close() })
	p.srv = httptest.NewServer(&Handler{Store: p.tracker, Keys: p.tkeys, Now: p.trackerAt})
	t.Cleanup(p.srv.Close)
	rec := httptest.NewRecorder()
	(&AdminHandler{Keys: p.tkeys}).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, PathRelays+"?name=laptop", nil))
	rk, err := token.ParseRelayKey(rec.Body.Bytes())
	if err != nil {
		t.Fatalf("pairing: %v (%s)", err, rec.Body)
	}
	keyPath := filepath.Join(dir, "relay.key")
	if err := token.WriteRelayKey(keyPath, rk); err != nil {
		t.Fatal(err)
	}
	if p.rkeys, err = token.OpenRemoteKeys(keyPath); err != nil {
		t.Fatal(err)
	}
	if p.relay, err = store.OpenStore(filepath.Join(dir, "r.db"), store.Options{RelayOutbox: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.relay.Close() })
	p.client = NewClient(p.srv.URL+"/", func() string { _, s := p.rkeys.Relay(); return s }, nil)
	return p
}

// mintCopy makes a tracked copy on the relay, as the queue does.
func (p *pair) mintCopy(t *testing.T, rcpt string) (id, tok string) {
	t.Helper()
	id, tok, err := p.rkeys.Mint()
	if err != nil {
		t.Fatal(err)
	}
	err = p.relay.Add([]record.Copy{{TrackingID: id, QueueID: "q1", Recipient: rcpt, From: "me@example.com",
		Subject: "Quarterly numbers", MessageID: "<m1@example.com>", QueuedAt: time.Now(), Account: "work"}})
	if err != nil {
		t.Fatal(err)
	}
	return id, tok
}

// open records a fetch of tok at the tracker, as its pixel handler does.
func (p *pair) open(t *testing.T, tok, ua string) {
	t.Helper()
	id, ok := p.tkeys.Verify(tok)
	if !ok {
		t.Fatalf("the tracker refuses the relay's token %s", tok)
	}
	if _, err := p.tracker.Record(store.Hit{TrackingID: id, IP: "198.51.100.20", UserAgent: ua, Reason: "no machine signature"}); err != nil {
		t.Fatal(err)
	}
}

func (p *pair) syncer() *Syncer {
	return &Syncer{Store: p.relay, Client: p.client, Keys: p.rkeys, Wait: time.Second, Idle: 50 * time.Millisecond,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
}

// run runs a syncer until the test ends.
func run(t *testing.T, s *Syncer) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

func eventually(t *testing.T, what string, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func opensOf(t *testing.T, s *store.Store, id string) []store.Open {
	t.Helper()
	o, err := s.Opens(store.OpenQuery{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestSplitRoundTrip: a relay registers a copy without personal data, the
// tracker records its open, and the relay shows it joined to its own
// record; an early open (before the registration) is joined too.
func TestSplitRoundTrip(t *testing.T) {
	p := newPair(t, 0)
	early, earlyTok := p.mintCopy(t, "bob@example.org")
	p.open(t, earlyTok, "Thunderbird/128") // before any registration
	if st, _ := p.tracker.Stats(); st.EarlyOpens != 1 {
		t.Fatalf("early opens %d", st.EarlyOpens)
	}
	run(t, p.syncer())
	id, tok := p.mintCopy(t, "carol@example.org")
	eventually(t, "registration", func() bool {
		m, _ := p.tracker.Messages(store.MessageQuery{ID: id})
		return len(m) == 1
	})
	p.open(t, tok, "Outlook/16")
	eventually(t, "opens at the relay", func() bool {
		return len(opensOf(t, p.relay, id)) == 1 && len(opensOf(t, p.relay, early)) == 1
	})
	o := opensOf(t, p.relay, id)[0]
	if o.Recipient != "carol@example.org" || o.Subject != "Quarterly numbers" || !o.First || o.UserAgent != "Outlook/16" {
		t.Errorf("open at the relay: %+v", o)
	}
	for _, m := range mustMessages(t, p.tracker) {
		if m.Recipient != "" || m.Subject != "" || m.From != "" || m.MessageID != "" {
			t.Errorf("the tracker keeps personal data: %+v", m)
		}
	}
	eventually(t, "feed drained", func() bool { st, _ := p.tracker.Stats(); return st.RelayFeed == 0 })
	if st, _ := p.relay.Stats(); st.RelayOutbox != 0 {
		t.Errorf("relay outbox %d", st.RelayOutbox)
	}
}

func mustMessages(t *testing.T, s *store.Store) []store.Message {
	t.Helper()
	m, err := s.Messages(store.MessageQuery{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestShareDetails: with tracker.share_details the tracker gets the
// recipient, sender, subject, Message-ID and account.
func TestShareDetails(t *testing.T) {
	p := newPair(t, 0)
	s := p.syncer()
	s.Details = func() bool { return true }
	id, _ := p.mintCopy(t, "dave@example.org")
	run(t, s)
	eventually(t, "registration", func() bool {
		m, _ := p.tracker.Messages(store.MessageQuery{ID: id})
		return len(m) == 1 && m[0].Recipient == "dave@example.org" && m[0].Subject == "Quarterly numbers" &&
			m[0].From == "me@example.com" && m[0].MessageID == "<m1@example.com>" && m[0].Account == "work"
	})
}

// TestTrackerDownThenUp: while the tracker is unreachable the relay keeps
// its registrations and says why; once it is back they arrive.
func TestTrackerDownThenUp(t *testing.T) {
	p := newPair(t, 0)
	h := p.srv.Config.Handler
	var down sync.Mutex
	isDown := true
	p.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		down.Lock()
		d := isDown
		down.Unlock()
		if d {
			http.Error(w, "bad gateway", http.StatusBadGateway)
			return
		}
		h.ServeHTTP(w, r)
	})
	s := p.syncer()
	run(t, s)
	id, _ := p.mintCopy(t, "erin@example.org")
	eventually(t, "an error in status", func() bool {
		st := s.Status(0)
		return !st.Reachable && strings.Contains(st.LastError, "502")
	})
	if st, _ := p.relay.Stats(); st.RelayOutbox != 1 {
		t.Fatalf("outbox %d while the tracker is down", st.RelayOutbox)
	}
	down.Lock()
	isDown = false
	down.Unlock()
	eventually(t, "registration after recovery", func() bool {
		m, _ := p.tracker.Messages(store.MessageQuery{ID: id})
		return len(m) == 1
	})
	eventually(t, "reachable", func() bool { return s.Status(0).Reachable })
}

// TestClockSkewCorrected: a tracker whose clock is 7 minutes ahead stores
// the relay's times on its own clock.
func TestClockSkewCorrected(t *testing.T) {
	p := newPair(t, 7*time.Minute)
	sent := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	id, _, _ := p.rkeys.Mint()
	resp, err := p.client.Register(context.Background(), []CopyState{{TrackingID: id, QueuedAt: sent, SentAt: &sent, Status: record.StatusSent}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.New != 1 {
		t.Fatalf("register %+v", resp)
	}
	m, _ := p.tracker.Messages(store.MessageQuery{ID: id})
	if d := m[0].SentAt.Sub(sent); d < 7*time.Minute-time.Second || d > 7*time.Minute+time.Second {
		t.Errorf("sent_at moved by %v, want 7m", d)
	}
}

// TestRegistrationReplayed: the very same request sent three times, and
// an older state after a newer, leave one copy in the newest state.
func TestRegistrationReplayed(t *testing.T) {
	p := newPair(t, 0)
	id, _, _ := p.rkeys.Mint()
	q := time.Now().UTC()
	sent := q.Add(time.Second)
	_, secret := p.rkeys.Relay()
	post := func(states ...CopyState) RegisterResponse {
		t.Helper()
		body, _ := json.Marshal(RegisterRequest{Now: time.Now(), Copies: states})
		req, _ := http.NewRequest(http.MethodPost, p.srv.URL+PathCopies, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out RegisterResponse
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
			t.Fatalf("status %d: %v", resp.StatusCode, err)
		}
		return out
	}
	sentState := CopyState{TrackingID: id, QueuedAt: q, SentAt: &sent, Status: record.StatusSent}
	for i, want := range []int{1, 0, 0} {
		if r := post(sentState); r.New != want || r.Updated != 0 {
			t.Fatalf("post %d: %+v", i, r.RegisterResult)
		}
	}
	if r := post(CopyState{TrackingID: id, QueuedAt: q, Status: record.StatusQueued}); r.Updated != 0 || r.New != 0 {
		t.Fatalf("old state: %+v", r.RegisterResult)
	}
	m := mustMessages(t, p.tracker)
	if len(m) != 1 || m[0].Status != record.StatusSent || !m[0].SentAt.Equal(sent) {
		t.Fatalf("messages %+v", m)
	}
}

// TestRelayAPIRefusals: requests without the relay's key, with a revoked
// key, or with bad bodies are refused with a reason.
func TestRelayAPIRefusals(t *testing.T) {
	p := newPair(t, 0)
	_, secret := p.rkeys.Relay()
	tests := []struct {
		name, method, path, auth, body string
		code                           int
		want                           string
	}{
		{"no key", "GET", PathOpens, "", "", 401, "relay key"},
		{"admin-like key", "GET", PathOpens, "Bearer " + strings.Repeat("a", 64), "", 401, "relay key"},
		{"basic", "GET", PathOpens, "Basic " + secret, "", 401, "relay key"},
		{"wrong method", "GET", PathCopies, "Bearer " + secret, "", 405, "use POST"},
		{"unknown route", "GET", "/relay/v1/nope", "Bearer " + secret, "", 404, "no such relay API route"},
		{"bad json", "POST", PathCopies, "Bearer " + secret, "{", 400, "body:"},
		{"bad id", "POST", PathCopies, "Bearer " + secret, `{"copies":[{"tracking_id":"x/y"}]}`, 400, "is not a tracking id"},
		{"bad status", "POST", PathCopies, "Bearer " + secret, `{"copies":[{"tracking_id":"aaaaaaaaaaaaaaaa","status":"lost"}]}`, 503, "unknown status"},
		{"bad limit", "GET", PathOpens + "?limit=0", "Bearer " + secret, "", 400, "limit:"},
		{"bad wait", "GET", PathOpens + "?wait=x", "Bearer " + secret, "", 400, "wait:"},
		{"huge body", "POST", PathCopies, "Bearer " + secret, strings.Repeat(" ", maxBodySize+1), 413, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, p.srv.URL+tt.path, strings.NewReader(tt.body))
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.code || !strings.Contains(string(b), tt.want) {
				t.Fatalf("%d %s, want %d %q", resp.StatusCode, b, tt.code, tt.want)
			}
		})
	}
	if err := p.tkeys.RevokeRelay("laptop"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.client.Keys(context.Background()); err == nil || !strings.Contains(err.Error(), "pair again") {
		t.Errorf("revoked relay: %v", err)
	}
}

// TestKeysFollowTracker: when the tracker rotates, the relay adopts the new
// version at its next contact; RelayKeys.Rotate rotates at the tracker.
func TestKeysFollowTracker(t *testing.T) {
	p := newPair(t, 0)
	_, oldTok := p.mintCopy(t, "fay@example.org")
	if _, err := p.tkeys.Rotate(); err != nil {
		t.Fatal(err)
	}
	run(t, p.syncer())
	eventually(t, "relay on version 2", func() bool { return p.rkeys.Current() == 2 })
	_, newTok := p.mintCopy(t, "gus@example.org")
	for _, tok := range []string{oldTok, newTok} {
		if _, ok := p.tkeys.Verify(tok); !ok {
			t.Errorf("tracker refuses %s", tok)
		}
	}
	rk := &RelayKeys{Remote: p.rkeys, Client: p.client}
	v, err := rk.Rotate()
	if err != nil || v != 3 || p.tkeys.Current() != 3 || p.rkeys.Current() != 3 {
		t.Fatalf("rotate = %d, %v; tracker %d, relay %d", v, err, p.tkeys.Current(), p.rkeys.Current())
	}
	p.srv.Close()
	if _, err := rk.Rotate(); err == nil || !strings.Contains(err.Error(), "belong to the tracker") {
		t.Errorf("rotate with the tracker down: %v", err)
	}
	if p.rkeys.Current() != 3 {
		t.Errorf("a failed rotation changed the relay's keys")
	}
}

// TestLongPoll: a pull waits for the next open instead of returning empty.
func TestLongPoll(t *testing.T) {
	p := newPair(t, 0)
	id, tok, _ := p.rkeys.Mint()
	if _, err := p.client.Register(context.Background(), []CopyState{{TrackingID: id, QueuedAt: time.Now(), Status: record.StatusQueued}}); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		p.open(t, tok, "Thunderbird")
	}()
	start := time.Now()
	resp, err := p.client.Opens(context.Background(), 10, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Opens) != 1 || time.Since(start) > 4*time.Second {
		t.Fatalf("long poll: %d opens after %v", len(resp.Opens), time.Since(start))
	}
}
