package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"pixelrelay/tracker/record"
)

// minimal is a copy as a relay registers it by default: no recipient, no
// subject, no sender, no Message-ID.
func minimal(id string, queued time.Time, status string, sent time.Time) record.Copy {
	return record.Copy{TrackingID: id, QueuedAt: queued, Status: status, SentAt: sent}
}

func mustRegister(t testing.TB, s *Store, relay string, cs ...record.Copy) RegisterResult {
	t.Helper()
	r, err := s.Register(relay, cs)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustFeed(t testing.TB, s *Store, relay string) []FeedOpen {
	t.Helper()
	f, err := s.RelayFeed(relay, 500)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestEarlyOpensJoined: opens of a genuine token that arrive before its
// copy's registration are kept (dedup and the per-IP limit applied), then
// joined when it arrives: counted, first-marked, judged again with the
// delivery time, and fed to the relay that registered it.
func TestEarlyOpensJoined(t *testing.T) {
	clk := newClock()
	sent := clk.Now()
	rejudged := 0
	s := openTest(t, Options{Now: clk.Now, DedupWindow: time.Hour, IPHourlyLimit: 3, TrackerOnly: true,
		Rejudge: func(h *Hit, at time.Time) {
			rejudged++
			if !h.Bot && !at.IsZero() && h.At.Sub(at) < 10*time.Second {
				h.Bot, h.BotType, h.Reason = true, "prefetch", "within 10s of delivery"
			}
		}})
	var outcomes []HitOutcome
	s.opt.OnHit = func(o HitOutcome, _ *Hit) { outcomes = append(outcomes, o) }
	hit := func(id, ip, ua string, after time.Duration) {
		t.Helper()
		if mustRecord(t, s, Hit{TrackingID: id, At: sent.Add(after), IP: ip, UserAgent: ua}) {
			t.Fatalf("an early hit reported as stored")
		}
	}
	hit("aaaa", "192.0.2.1", "scanner", 2*time.Second) // within the window: prefetch once joined
	hit("aaaa", "192.0.2.1", "scanner", 3*time.Second) // duplicate
	hit("aaaa", "192.0.2.9", "Thunderbird", time.Minute)
	hit("aaaa", "192.0.2.9", "Outlook", 2*time.Minute)
	hit("bbbb", "192.0.2.9", "Outlook", 3*time.Minute)
	hit("bbbb", "192.0.2.9", "Mail", 4*time.Minute) // over the per-IP limit of 3
	want := []HitOutcome{HitEarly, HitDuplicate, HitEarly, HitEarly, HitEarly, HitLimited}
	if !equalOutcomes(outcomes, want) {
		t.Fatalf("outcomes %v, want %v", outcomes, want)
	}
	if st := mustStats(t, s); st.EarlyOpens != 4 || st.Opens != 0 || st.Copies != 0 {
		t.Fatalf("before registration: %+v", st)
	}
	r := mustRegister(t, s, "laptop", minimal("aaaa", sent.Add(-time.Minute), record.StatusSent, sent))
	if r != (RegisterResult{New: 1, Joined: 3}) || rejudged != 3 {
		t.Fatalf("register = %+v, rejudged %d", r, rejudged)
	}
	opens, err := s.Opens(OpenQuery{ID: "aaaa"})
	if err != nil {
		t.Fatal(err)
	}
	if len(opens) != 3 || !opens[2].Bot || opens[2].BotType != "prefetch" || opens[1].Bot || !opens[1].First || opens[0].First {
		t.Fatalf("joined opens: %+v", opens)
	}
	msgs, err := s.Messages(MessageQuery{ID: "aaaa"})
	if err != nil {
		t.Fatal(err)
	}
	m := msgs[0]
	if m.OpensTotal != 3 || m.OpensHuman != 2 || m.FirstHumanOpen == nil || !m.FirstHumanOpen.Equal(sent.Add(time.Minute)) ||
		m.Status != record.StatusSent || m.SentAt == nil || !m.SentAt.Equal(sent) || m.Recipient != "" || m.Subject != "" {
		t.Fatalf("message after join: %+v", m)
	}
	feed := mustFeed(t, s, "laptop")
	if len(feed) != 3 || feed[0].TrackingID != "aaaa" || !feed[0].OpenedAt.Equal(sent.Add(2*time.Second)) || feed[0].BotType != "prefetch" {
		t.Fatalf("feed: %+v", feed)
	}
	if st := mustStats(t, s); st.EarlyOpens != 1 || st.Opens != 3 || st.RelayFeed != 3 {
		t.Fatalf("after registration: %+v", st)
	}
	if n := len(mustFeed(t, s, "desk")); n != 0 {
		t.Fatalf("another relay sees %d opens", n)
	}
}

func equalOutcomes(a, b []HitOutcome) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRegisterReplayed: the same registration twice, or an older state
// after a newer one, changes nothing; a later state moves the copy on.
func TestRegisterReplayed(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now, TrackerOnly: true})
	q := clk.Now()
	tests := []struct {
		name string
		c    record.Copy
		want RegisterResult
		st   string
	}{
		{"new, queued", minimal("cccc", q, record.StatusQueued, time.Time{}), RegisterResult{New: 1}, record.StatusQueued},
		{"replayed", minimal("cccc", q, record.StatusQueued, time.Time{}), RegisterResult{}, record.StatusQueued},
		{"deferred", record.Copy{TrackingID: "cccc", QueuedAt: q, Status: record.StatusDeferred, LastError: "451 later"}, RegisterResult{Updated: 1}, record.StatusDeferred},
		{"sent", minimal("cccc", q, record.StatusSent, q.Add(time.Minute)), RegisterResult{Updated: 1}, record.StatusSent},
		{"sent replayed", minimal("cccc", q, record.StatusSent, q.Add(time.Minute)), RegisterResult{}, record.StatusSent},
		{"old queued replayed", minimal("cccc", q, record.StatusQueued, time.Time{}), RegisterResult{}, record.StatusSent},
		{"old deferred replayed", record.Copy{TrackingID: "cccc", QueuedAt: q, Status: record.StatusDeferred}, RegisterResult{}, record.StatusSent},
	}
	for _, tt := range tests {
		got := mustRegister(t, s, "laptop", tt.c)
		m, err := s.Messages(MessageQuery{ID: "cccc"})
		if err != nil {
			t.Fatal(err)
		}
		if got != tt.want || len(m) != 1 || m[0].Status != tt.st {
			t.Fatalf("%s: register = %+v, messages %+v", tt.name, got, m)
		}
		if tt.st == record.StatusSent && !m[0].SentAt.Equal(q.Add(time.Minute)) {
			t.Fatalf("%s: sent_at %v", tt.name, m[0].SentAt)
		}
	}
	if st := mustStats(t, s); st.Copies != 1 {
		t.Fatalf("copies %d", st.Copies)
	}
	if _, err := s.Register("laptop", []record.Copy{{TrackingID: "dddd", Status: "lost"}}); err == nil {
		t.Error("an unknown status was registered")
	}
	plain := openTest(t, Options{Now: clk.Now})
	if _, err := plain.Register("laptop", []record.Copy{minimal("eeee", q, "", time.Time{})}); err == nil {
		t.Error("a store that serves no relays took a registration")
	}
}

// TestRelayFeedAck: a relay takes its opens and acknowledges them; what it
// has not acknowledged is offered again, also after a restart.
func TestRelayFeedAck(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "pixelrelay.db")
	s, err := OpenStore(path, Options{Now: clk.Now, TrackerOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	mustRegister(t, s, "laptop", minimal("ffff", clk.Now(), record.StatusSent, clk.Now()))
	mustRegister(t, s, "desk", minimal("gggg", clk.Now(), record.StatusSent, clk.Now()))
	for i := range 5 {
		mustRecord(t, s, Hit{TrackingID: "ffff", At: clk.Now().Add(time.Duration(i+1) * time.Minute), IP: "198.51.100.7", UserAgent: "Thunderbird"})
	}
	mustRecord(t, s, Hit{TrackingID: "gggg", At: clk.Now().Add(time.Minute), IP: "198.51.100.8", UserAgent: "Thunderbird"})
	feed := mustFeed(t, s, "laptop")
	if len(feed) != 5 {
		t.Fatalf("feed %d", len(feed))
	}
	n, err := s.AckRelayFeed("laptop", []uint64{feed[0].Seq, feed[1].Seq, feed[1].Seq, 999})
	if err != nil || n != 2 {
		t.Fatalf("ack = %d, %v", n, err)
	}
	if _, err := s.AckRelayFeed("desk", []uint64{feed[2].Seq}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = OpenStore(path, Options{Now: clk.Now, TrackerOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	left := mustFeed(t, s, "laptop")
	if len(left) != 3 || left[0].Seq != feed[2].Seq || left[0].UserAgent != "Thunderbird" || left[0].IP != "198.51.100.7" {
		t.Fatalf("after ack and restart: %+v", left)
	}
	if d := mustFeed(t, s, "desk"); len(d) != 1 || d[0].TrackingID != "gggg" {
		t.Fatalf("desk feed: %+v", d)
	}
	clk.Advance(48 * time.Hour)
	if _, err := s.Purge(context.Background(), clk.Now().Add(-24*time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	if st := mustStats(t, s); st.RelayFeed != 0 {
		t.Fatalf("purge left %d feed entries", st.RelayFeed)
	}
}

// TestRelayOutboxAndImport is the relay's side: every recorded or changed
// copy waits in the outbox until acknowledged (a change after it was read
// keeps it waiting), and imported opens are stored once, without dedup or
// the per-IP limit, with first-open marking.
func TestRelayOutboxAndImport(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now, RelayOutbox: true, DedupWindow: time.Hour, IPHourlyLimit: 1})
	addCopy(t, s, "hhhh", "Bob@Example.org", clk.Now())
	addCopy(t, s, "iiii", "carol@example.org", clk.Now())
	untracked := record.Copy{QueueID: "q-x", Recipient: "dan@example.org", UntrackedReason: "excluded", QueuedAt: clk.Now()}
	if err := s.Add([]record.Copy{untracked}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(untracked.ID(), record.StatusSent, "", clk.Now()); err != nil {
		t.Fatal(err)
	}
	p, err := s.RelayPending(10)
	if err != nil || len(p) != 2 || p[0].Recipient != "Bob@Example.org" || p[0].Subject != "Subject hhhh" {
		t.Fatalf("pending = %+v, %v", p, err)
	}
	if err := s.Update("hhhh", record.StatusSent, "", clk.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.RelayDone(p); err != nil {
		t.Fatal(err)
	}
	p2, err := s.RelayPending(10)
	if err != nil || len(p2) != 1 || p2[0].TrackingID != "hhhh" || p2[0].Status != record.StatusSent {
		t.Fatalf("after a change while in flight: %+v, %v", p2, err)
	}
	if err := s.RelayDone(p2); err != nil {
		t.Fatal(err)
	}
	if st := mustStats(t, s); st.RelayOutbox != 0 {
		t.Fatalf("outbox %d", st.RelayOutbox)
	}
	at := clk.Now().Add(time.Minute)
	hits := []Hit{
		{TrackingID: "hhhh", At: at, IP: "203.0.113.5", UserAgent: "Mail", Bot: true, BotType: "apple_mpp", Reason: "network: Apple"},
		{TrackingID: "hhhh", At: at.Add(time.Second), IP: "203.0.113.5", UserAgent: "Mail", Reason: "no machine signature"},
		{TrackingID: "hhhh", At: at.Add(2 * time.Second), IP: "203.0.113.5", UserAgent: "Mail", Reason: "no machine signature"},
		{TrackingID: "zzzz", At: at, IP: "203.0.113.5"},
	}
	r, err := s.Import(hits)
	if err != nil || r != (ImportResult{Stored: 3, Unknown: 1}) {
		t.Fatalf("import = %+v, %v", r, err)
	}
	r, err = s.Import(hits[:3])
	if err != nil || r != (ImportResult{Known: 3}) {
		t.Fatalf("import again = %+v, %v", r, err)
	}
	opens, err := s.Opens(OpenQuery{ID: "hhhh"})
	if err != nil || len(opens) != 3 {
		t.Fatalf("opens = %+v, %v", opens, err)
	}
	if opens[0].First || !opens[1].First || !opens[2].Bot || opens[2].Reason != "network: Apple" || opens[1].Recipient != "Bob@Example.org" {
		t.Fatalf("imported opens: %+v", opens)
	}
	m, _ := s.Messages(MessageQuery{Unopened: true})
	if len(m) != 1 || m[0].TrackingID != "iiii" {
		t.Fatalf("unopened: %+v", m)
	}
}
