package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"pixelrelay/tracker/record"
)

var _ record.Recorder = (*Store)(nil)

// clock is an injectable, settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openTest(t testing.TB, opt Options) *Store {
	t.Helper()
	s, err := OpenStore(filepath.Join(t.TempDir(), "pixelrelay.db"), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func addCopy(t testing.TB, s *Store, id, rcpt string, queued time.Time) {
	t.Helper()
	err := s.Add([]record.Copy{{
		TrackingID: id, QueueID: "q-" + id, Recipient: rcpt, From: "alice@example.org",
		Subject: "Subject " + id, MessageID: "<m-" + id + "@example.org>", QueuedAt: queued,
	}})
	if err != nil {
		t.Fatal(err)
	}
}

func mustRecord(t testing.TB, s *Store, h Hit) bool {
	t.Helper()
	ok, err := s.Record(h)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func mustStats(t testing.TB, s *Store) Stats {
	t.Helper()
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestAddUpdateCopy(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	q := clk.Now()
	addCopy(t, s, "id1", "Bob@Example.com", q)
	addCopy(t, s, "id1", "other@example.com", q.Add(time.Hour)) // ignored: already stored

	c, ok, err := s.Copy("id1")
	if err != nil || !ok {
		t.Fatalf("Copy: %v %v", ok, err)
	}
	want := record.Copy{TrackingID: "id1", QueueID: "q-id1", Recipient: "Bob@Example.com", From: "alice@example.org",
		Subject: "Subject id1", MessageID: "<m-id1@example.org>", QueuedAt: q, Status: record.StatusQueued}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Copy = %+v\nwant %+v", c, want)
	}
	if _, ok, err := s.Copy("nope"); ok || err != nil {
		t.Fatalf("Copy(unknown) = %v, %v", ok, err)
	}

	steps := []struct {
		status, lastErr string
		wantSent        bool
	}{
		{record.StatusDeferred, "451 try later", false},
		{record.StatusSent, "", true},
	}
	for _, st := range steps {
		clk.Advance(time.Minute)
		if err := s.Update("id1", st.status, st.lastErr, clk.Now()); err != nil {
			t.Fatal(err)
		}
		c, _, _ := s.Copy("id1")
		if c.Status != st.status || c.LastError != st.lastErr || c.SentAt.IsZero() == st.wantSent {
			t.Fatalf("after Update(%s): %+v", st.status, c)
		}
	}
	if c, _, _ := s.Copy("id1"); !c.SentAt.Equal(clk.Now()) {
		t.Errorf("SentAt = %v, want %v", c.SentAt, clk.Now())
	}
	if err := s.Update("nope", record.StatusSent, "", clk.Now()); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update(unknown) = %v, want ErrNotFound", err)
	}
	if err := s.Update("id1", "bogus", "", clk.Now()); err == nil {
		t.Error("Update with an unknown status succeeded")
	}
	if err := s.Add([]record.Copy{{TrackingID: "bad\x00id"}}); err == nil {
		t.Error("Add accepted an id with a NUL byte")
	}
	if st := mustStats(t, s); st.Copies != 1 {
		t.Errorf("Stats.Copies = %d, want 1", st.Copies)
	}
}

func TestRecordDedup(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now, DedupWindow: time.Hour, IPHourlyLimit: 100})
	addCopy(t, s, "a", "bob@example.com", clk.Now())
	addCopy(t, s, "b", "carol@example.com", clk.Now())
	t0 := clk.Now()
	steps := []struct {
		name string
		hit  Hit
		want bool
	}{
		{"first", Hit{TrackingID: "a", At: t0, IP: "10.0.0.1", UserAgent: "UA"}, true},
		{"same within window", Hit{TrackingID: "a", At: t0.Add(30 * time.Minute), IP: "10.0.0.1", UserAgent: "UA"}, false},
		{"other UA", Hit{TrackingID: "a", At: t0.Add(31 * time.Minute), IP: "10.0.0.1", UserAgent: "UA2"}, true},
		{"other IP", Hit{TrackingID: "a", At: t0.Add(32 * time.Minute), IP: "10.0.0.2", UserAgent: "UA"}, true},
		{"other copy", Hit{TrackingID: "b", At: t0.Add(33 * time.Minute), IP: "10.0.0.1", UserAgent: "UA"}, true},
		{"just inside window", Hit{TrackingID: "a", At: t0.Add(time.Hour - time.Second), IP: "10.0.0.1", UserAgent: "UA"}, false},
		{"after window", Hit{TrackingID: "a", At: t0.Add(time.Hour), IP: "10.0.0.1", UserAgent: "UA"}, true},
		{"window restarts at stored open", Hit{TrackingID: "a", At: t0.Add(90 * time.Minute), IP: "10.0.0.1", UserAgent: "UA"}, false},
		{"unknown id", Hit{TrackingID: "zzz", At: t0, IP: "10.0.0.9", UserAgent: "UA"}, false},
	}
	stored := 0
	for _, st := range steps {
		if got := mustRecord(t, s, st.hit); got != st.want {
			t.Errorf("%s: stored = %v, want %v", st.name, got, st.want)
		}
		if st.want {
			stored++
		}
	}
	if st := mustStats(t, s); st.Opens != stored {
		t.Errorf("Stats.Opens = %d, want %d", st.Opens, stored)
	}
	// Hits without a time take the injected clock.
	clk.Advance(5 * time.Hour)
	if !mustRecord(t, s, Hit{TrackingID: "b", IP: "10.0.0.3", UserAgent: "UA"}) {
		t.Fatal("hit without time not stored")
	}
	opens, err := s.Opens(OpenQuery{ID: "b", Limit: 1})
	if err != nil || len(opens) != 1 || !opens[0].OpenedAt.Equal(clk.Now()) {
		t.Fatalf("Opens = %+v, %v; want opened_at %v", opens, err, clk.Now())
	}

	// Hot reload: dedup off.
	s.SetLimits(0, 100)
	if !mustRecord(t, s, Hit{TrackingID: "b", IP: "10.0.0.3", UserAgent: "UA"}) {
		t.Error("duplicate not stored with dedup disabled")
	}
}

func TestRecordIPHourlyLimit(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now, DedupWindow: time.Hour, IPHourlyLimit: 100})
	addCopy(t, s, "a", "bob@example.com", clk.Now())
	t0 := clk.Now()
	hit := func(i int, at time.Time, ip string) Hit {
		return Hit{TrackingID: "a", At: at, IP: ip, UserAgent: fmt.Sprintf("UA %d", i)}
	}
	for i := 0; i < 100; i++ {
		if !mustRecord(t, s, hit(i, t0.Add(time.Duration(i)*10*time.Second), "192.0.2.1")) {
			t.Fatalf("open %d not stored", i+1)
		}
	}
	at := t0.Add(20 * time.Minute)
	if mustRecord(t, s, hit(100, at, "192.0.2.1")) {
		t.Error("101st open within the hour was stored")
	}
	if !mustRecord(t, s, hit(101, at, "192.0.2.10")) {
		t.Error("another IP was limited")
	}
	if !mustRecord(t, s, hit(102, t0.Add(time.Hour+17*time.Minute), "192.0.2.1")) {
		t.Error("open an hour after the burst not stored")
	}
	s.SetLimits(time.Hour, 0)
	if !mustRecord(t, s, hit(103, t0.Add(time.Hour+17*time.Minute), "192.0.2.1")) {
		t.Error("open not stored with the limit disabled")
	}
}

func TestFirstHumanOpenAndCounters(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now, DedupWindow: time.Hour})
	addCopy(t, s, "a", "bob@example.com", clk.Now())
	t0 := clk.Now()
	steps := []struct {
		hit       Hit
		wantFirst bool
		total     int
		human     int
	}{
		{Hit{TrackingID: "a", At: t0.Add(1 * time.Minute), IP: "17.0.0.1", UserAgent: "Mozilla", Bot: true, BotType: "apple_mpp"}, false, 1, 0},
		{Hit{TrackingID: "a", At: t0.Add(2 * time.Minute), IP: "66.249.0.1", UserAgent: "GoogleImageProxy", Proxy: "gmail"}, true, 2, 1},
		{Hit{TrackingID: "a", At: t0.Add(3 * time.Minute), IP: "198.51.100.7", UserAgent: "Thunderbird"}, false, 3, 2},
	}
	for i, st := range steps {
		if !mustRecord(t, s, st.hit) {
			t.Fatalf("step %d not stored", i)
		}
		msgs, err := s.Messages(MessageQuery{})
		if err != nil || len(msgs) != 1 {
			t.Fatalf("Messages = %v, %v", msgs, err)
		}
		m := msgs[0]
		if m.OpensTotal != st.total || m.OpensHuman != st.human {
			t.Errorf("step %d: counters %d/%d, want %d/%d", i, m.OpensTotal, m.OpensHuman, st.total, st.human)
		}
		if (m.FirstHumanOpen != nil) != (st.human > 0) {
			t.Errorf("step %d: first_human_open %v", i, m.FirstHumanOpen)
		}
		byID, err := s.Messages(MessageQuery{ID: "A"})
		if err != nil || len(byID) != 1 || !reflect.DeepEqual(byID[0], m) {
			t.Errorf("step %d: Messages by id = %v, %v; want %v", i, byID, err, m)
		}
		if none, _ := s.Messages(MessageQuery{ID: "zz"}); len(none) != 0 {
			t.Errorf("step %d: unknown id gave %v", i, none)
		}
		unopened, _ := s.Messages(MessageQuery{Unopened: true})
		if (len(unopened) == 1) != (st.human == 0) {
			t.Errorf("step %d: unopened list %v", i, unopened)
		}
	}
	opens, err := s.Opens(OpenQuery{ID: "a"})
	if err != nil || len(opens) != 3 {
		t.Fatalf("Opens = %v, %v", opens, err)
	}
	for i, o := range opens { // newest first
		st := steps[len(steps)-1-i]
		if o.First != st.wantFirst || o.Bot != st.hit.Bot || o.BotType != st.hit.BotType || o.Proxy != st.hit.Proxy ||
			o.IP != st.hit.IP || o.UserAgent != st.hit.UserAgent || !o.OpenedAt.Equal(st.hit.At) {
			t.Errorf("open %d = %+v, want hit %+v first=%v", i, o, st.hit, st.wantFirst)
		}
		if o.Recipient != "bob@example.com" || o.Subject != "Subject a" || o.MessageID != "<m-a@example.org>" || o.SentAt != nil {
			t.Errorf("open %d join = %+v", i, o)
		}
	}
	msgs, _ := s.Messages(MessageQuery{})
	if !msgs[0].FirstHumanOpen.Equal(steps[1].hit.At) {
		t.Errorf("first_human_open = %v, want %v", msgs[0].FirstHumanOpen, steps[1].hit.At)
	}
	if st := mustStats(t, s); st.Opens != 3 || st.OpensHuman != 2 || st.Copies != 1 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestHugeUserAgentIsClipped(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now, DedupWindow: time.Hour})
	addCopy(t, s, "a", "bob@example.com", clk.Now())
	ua := strings.Repeat("é", 5000) // 10000 bytes, 2-byte runes
	if !mustRecord(t, s, Hit{TrackingID: "a", IP: "10.0.0.1", UserAgent: ua}) {
		t.Fatal("not stored")
	}
	if mustRecord(t, s, Hit{TrackingID: "a", IP: "10.0.0.1", UserAgent: ua}) {
		t.Error("duplicate of a clipped hit stored")
	}
	opens, err := s.Opens(OpenQuery{ID: "a"})
	if err != nil || len(opens) != 1 {
		t.Fatalf("Opens = %v, %v", opens, err)
	}
	if got := opens[0].UserAgent; len(got) > maxUserAgent || !strings.HasPrefix(ua, got) || !utf8.ValidString(got) {
		t.Errorf("stored user agent of %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
	}
}

func TestDuplicatesInOneBatch(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now, DedupWindow: time.Hour, IPHourlyLimit: 5, BatchDelay: 50 * time.Millisecond})
	addCopy(t, s, "a", "bob@example.com", clk.Now())
	var wg sync.WaitGroup
	var mu sync.Mutex
	stored := 0
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if mustRecord(t, s, Hit{TrackingID: "a", IP: "10.1.1.1", UserAgent: "UA"}) {
				mu.Lock()
				stored++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if stored != 1 {
		t.Errorf("%d of 20 identical concurrent hits stored, want 1", stored)
	}
	// The IP limit within one batch: 20 distinct UAs, limit 5 (one used).
	for i := 0; i < 20; i++ {
		if err := s.Enqueue(Hit{TrackingID: "a", IP: "10.1.1.1", UserAgent: fmt.Sprint("UA", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if st := mustStats(t, s); st.Opens != 5 {
		t.Errorf("Stats.Opens = %d, want 5 (IP limit)", st.Opens)
	}
}

// Updates and hits that share a batch: each update lands, an unknown id
// fails only its own Update, and a hit on an updated copy keeps both the
// new status and the open count.
func TestUpdatesInOneBatch(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now, BatchDelay: 50 * time.Millisecond})
	const n = 20
	for i := range n {
		addCopy(t, s, fmt.Sprint("c", i), fmt.Sprintf("r%d@example.com", i), clk.Now())
	}
	var wg sync.WaitGroup
	errs := make([]error, n+1)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Update(fmt.Sprint("c", i), record.StatusSent, "", clk.Now().Add(time.Duration(i)*time.Second))
		}()
	}
	wg.Add(1)
	go func() { defer wg.Done(); errs[n] = s.Update("nope", record.StatusSent, "", clk.Now()) }()
	if err := s.Enqueue(Hit{TrackingID: "c0", IP: "10.0.0.1", UserAgent: "UA"}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(errs[n], ErrNotFound) {
		t.Errorf("Update(unknown) = %v, want ErrNotFound", errs[n])
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Update(c%d) = %v", i, errs[i])
		}
		c, _, err := s.Copy(fmt.Sprint("c", i))
		if err != nil || c.Status != record.StatusSent || !c.SentAt.Equal(clk.Now().Add(time.Duration(i)*time.Second)) {
			t.Errorf("c%d after Update: %+v, %v", i, c, err)
		}
	}
	ms, err := s.Messages(MessageQuery{To: "r0@example.com"})
	if err != nil || len(ms) != 1 || ms[0].Status != record.StatusSent || ms[0].OpensTotal != 1 {
		t.Errorf("c0 = %+v, %v; want sent with 1 open", ms, err)
	}
}

func TestOpensQueries(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	t0 := clk.Now()
	addCopy(t, s, "a", "Bob@Example.com", t0)
	addCopy(t, s, "b", "bob@example.com", t0.Add(time.Minute))
	addCopy(t, s, "c", "carol@example.com", t0.Add(2*time.Minute))
	addCopy(t, s, "bo", "bo@example.com", t0.Add(3*time.Minute)) // prefix of "bob" and of id "b..."
	// 600 opens of a, 2 of b, 1 of c, 1 of bo, interleaved in time.
	var hits []Hit
	for i := 0; i < 600; i++ {
		hits = append(hits, Hit{TrackingID: "a", At: t0.Add(time.Duration(i) * time.Second), IP: "10.0.0.1"})
	}
	hits = append(hits,
		Hit{TrackingID: "b", At: t0.Add(100*time.Second + 500*time.Millisecond), IP: "10.0.0.2"},
		Hit{TrackingID: "b", At: t0.Add(700 * time.Second), IP: "10.0.0.2"},
		Hit{TrackingID: "c", At: t0.Add(650 * time.Second), IP: "10.0.0.3"},
		Hit{TrackingID: "bo", At: t0.Add(800 * time.Second), IP: "10.0.0.4"},
	)
	for _, h := range hits {
		if err := s.Enqueue(h); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		q     OpenQuery
		n     int
		first string // tracking id of the newest
		last  time.Time
	}{
		{"by id default limit", OpenQuery{ID: "a"}, 100, "a", t0.Add(500 * time.Second)},
		{"by id capped at 500", OpenQuery{ID: "a", Limit: 10000}, 500, "a", t0.Add(100 * time.Second)},
		{"by id since", OpenQuery{ID: "a", Since: t0.Add(590 * time.Second)}, 10, "a", t0.Add(590 * time.Second)},
		{"by short id", OpenQuery{ID: "b"}, 2, "b", t0.Add(100*time.Second + 500*time.Millisecond)},
		{"unknown id", OpenQuery{ID: "x"}, 0, "", time.Time{}},
		{"id and wrong to", OpenQuery{ID: "b", To: "carol@example.com"}, 0, "", time.Time{}},
		{"to, case-insensitive", OpenQuery{To: "BOB@example.COM", Limit: 3}, 3, "b", t0.Add(598 * time.Second)},
		{"to all", OpenQuery{To: "bob@example.com", Limit: 500}, 500, "b", t0.Add(101 * time.Second)},
		{"to since", OpenQuery{To: "bob@example.com", Since: t0.Add(599 * time.Second)}, 2, "b", t0.Add(599 * time.Second)},
		{"to bo", OpenQuery{To: "<bo@example.com>"}, 1, "bo", t0.Add(800 * time.Second)},
		{"recent", OpenQuery{Limit: 4}, 4, "bo", t0.Add(599 * time.Second)},
		{"recent since", OpenQuery{Since: t0.Add(640 * time.Second)}, 3, "bo", t0.Add(650 * time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Opens(tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.n {
				t.Fatalf("%d opens, want %d", len(got), tt.n)
			}
			if tt.n == 0 {
				return
			}
			if got[0].TrackingID != tt.first || !got[len(got)-1].OpenedAt.Equal(tt.last) {
				t.Errorf("first %s, last at %v; want %s, %v", got[0].TrackingID, got[len(got)-1].OpenedAt, tt.first, tt.last)
			}
			for i := 1; i < len(got); i++ {
				if got[i].OpenedAt.After(got[i-1].OpenedAt) {
					t.Fatalf("not newest first at %d", i)
				}
			}
		})
	}
}

func TestMessagesQueries(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	t0 := clk.Now()
	for i := 0; i < 8; i++ {
		rcpt := "bob@example.com"
		if i%2 == 1 {
			rcpt = "Carol@Example.com"
		}
		addCopy(t, s, fmt.Sprint("m", i), rcpt, t0.Add(time.Duration(i)*time.Hour))
	}
	for _, id := range []string{"m1", "m2"} {
		mustRecord(t, s, Hit{TrackingID: id, At: t0.Add(10 * time.Hour), IP: "10.0.0.1"})
	}
	mustRecord(t, s, Hit{TrackingID: "m3", At: t0.Add(10 * time.Hour), IP: "10.0.0.1", Bot: true, BotType: "scanner"})
	ids := func(ms []Message) string {
		var b []string
		for _, m := range ms {
			b = append(b, m.TrackingID)
		}
		return strings.Join(b, ",")
	}
	tests := []struct {
		name string
		q    MessageQuery
		want string
	}{
		{"all", MessageQuery{}, "m7,m6,m5,m4,m3,m2,m1,m0"},
		{"limit", MessageQuery{Limit: 2}, "m7,m6"},
		{"to", MessageQuery{To: "CAROL@example.com"}, "m7,m5,m3,m1"},
		{"since", MessageQuery{Since: t0.Add(5 * time.Hour)}, "m7,m6,m5"},
		{"unopened", MessageQuery{Unopened: true}, "m7,m6,m5,m4,m3,m0"},
		{"unopened to since", MessageQuery{Unopened: true, To: "carol@example.com", Since: t0.Add(time.Hour)}, "m7,m5,m3"},
		{"nobody", MessageQuery{To: "dave@example.com"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Messages(tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if ids(got) != tt.want {
				t.Errorf("got %s, want %s", ids(got), tt.want)
			}
		})
	}
	ms, _ := s.Messages(MessageQuery{To: "bob@example.com", Limit: 1})
	if ms[0].From != "alice@example.org" || ms[0].Status != record.StatusQueued || ms[0].SentAt != nil || !ms[0].QueuedAt.Equal(t0.Add(6*time.Hour)) {
		t.Errorf("message = %+v", ms[0])
	}
}

func TestReopenKeepsData(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "db")
	s, err := OpenStore(path, Options{Now: clk.Now, DedupWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	addCopy(t, s, "a", "bob@example.com", clk.Now())
	for i := 0; i < 10; i++ {
		if err := s.Enqueue(Hit{TrackingID: "a", At: clk.Now().Add(time.Duration(i) * time.Second), IP: fmt.Sprint("10.0.0.", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil { // commits the queued hits
		t.Fatal(err)
	}
	if _, err := s.Record(Hit{TrackingID: "a"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Record after Close = %v, want ErrClosed", err)
	}
	s, err = OpenStore(path, Options{Now: clk.Now, DedupWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if mustRecord(t, s, Hit{TrackingID: "a", At: clk.Now().Add(time.Minute), IP: "10.0.0.1"}) {
		t.Error("dedup state lost across reopen")
	}
	if !mustRecord(t, s, Hit{TrackingID: "a", At: clk.Now().Add(time.Minute), IP: "10.0.0.99"}) {
		t.Error("new open not stored after reopen")
	}
	opens, err := s.Opens(OpenQuery{ID: "a"})
	if err != nil || len(opens) != 11 {
		t.Fatalf("%d opens after reopen (%v), want 11", len(opens), err)
	}
	if st := mustStats(t, s); st.Opens != 11 || st.Copies != 1 {
		t.Errorf("Stats = %+v", st)
	}
}

func FuzzDecodeRecords(f *testing.F) {
	c := copyRec{Copy: record.Copy{TrackingID: "a", Recipient: "b@c", QueuedAt: time.Unix(1, 0)}, OpensTotal: 3}
	f.Add(encodeCopy(&c))
	u := copyRec{Copy: record.Copy{QueueID: "q", Recipient: "b@c", Status: record.StatusFailed, UntrackedReason: "dkim"}, DoneAt: time.Unix(2, 0)}
	f.Add(encodeCopy(&u))
	f.Add(encodeOpen(&openRec{Flags: 3, IP: "1.2.3.4", UserAgent: "x"}))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := decodeCopy(b); err == nil {
			if got, err := decodeCopy(encodeCopy(&c)); err != nil || !reflect.DeepEqual(got, c) {
				t.Fatalf("copy round trip: %+v vs %+v (%v)", got, c, err)
			}
		}
		if c, err := decodeCopy(b); err == nil {
			p, err := decodeCopyForOpen(b)
			if err != nil || p.TrackingID != c.TrackingID || p.Recipient != c.Recipient || p.Subject != c.Subject ||
				p.MessageID != c.MessageID || !p.SentAt.Equal(c.SentAt) {
				t.Fatalf("decodeCopyForOpen = %+v, %v; decodeCopy = %+v", p, err, c)
			}
		}
		if o, err := decodeOpen(b); err == nil {
			if got, err := decodeOpen(encodeOpen(&o)); err != nil || got != o {
				t.Fatalf("open round trip: %+v vs %+v (%v)", got, o, err)
			}
		}
		parseTimeIndexValue(b)
	})
}
