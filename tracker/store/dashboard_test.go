package store

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"pixelrelay/tracker/record"
)

// Tests of what the dashboard reads: delivery events, hourly activity,
// live changes, hit outcomes and the list.

func TestDeliveryEvents(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	t0 := clk.Now()
	addCopy(t, s, "ev", "bob@example.com", t0)
	steps := []Event{
		{At: t0.Add(time.Minute), Status: record.StatusDeferred, Error: "451 4.3.0 try later"},
		{At: t0.Add(3 * time.Minute), Status: record.StatusDeferred, Error: "connect: connection refused"},
		{At: t0.Add(7 * time.Minute), Status: record.StatusSent},
	}
	for _, e := range steps {
		if err := s.Update("ev", e.Status, e.Error, e.At); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Events("ev")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, steps) {
		t.Errorf("events = %+v\nwant %+v", got, steps)
	}
	if got, _ := s.Events("nope"); len(got) != 0 {
		t.Errorf("events of an unknown copy = %+v", got)
	}
	if err := s.Update("nope", record.StatusSent, "", t0); err == nil {
		t.Error("Update of an unknown copy recorded an event")
	}
}

func TestDeliveryEventsBounded(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	t0 := clk.Now()
	addCopy(t, s, "many", "bob@example.com", t0)
	for i := 1; i <= maxEventsPerCopy+50; i++ {
		if err := s.Update("many", record.StatusDeferred, fmt.Sprint("attempt ", i), t0.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Update("many", record.StatusSent, "", t0.Add(time.Hour*24)); err != nil {
		t.Fatal(err)
	}
	got, err := s.Events("many")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != maxEventsPerCopy {
		t.Fatalf("%d events kept, want %d", len(got), maxEventsPerCopy)
	}
	if got[0].Error != "attempt 1" || got[len(got)-1].Status != record.StatusSent {
		t.Errorf("first = %+v, last = %+v; want the first attempt and the final state", got[0], got[len(got)-1])
	}
}

func TestActivityCounts(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now, DedupWindow: time.Hour})
	t0 := clk.Now().Truncate(time.Hour)
	addCopy(t, s, "a1", "bob@example.com", t0.Add(5*time.Minute))
	addCopy(t, s, "a2", "carol@example.com", t0.Add(70*time.Minute))
	for _, id := range []string{"a1", "a2"} {
		for range 2 { // sent twice (a replayed update): counted once
			if err := s.Update(id, record.StatusSent, "", t0.Add(80*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
	}
	hits := []Hit{
		{TrackingID: "a1", At: t0.Add(90 * time.Minute), IP: "10.0.0.1", Bot: true, BotType: "apple_mpp"},
		{TrackingID: "a1", At: t0.Add(150 * time.Minute), IP: "10.0.0.2"},            // first human
		{TrackingID: "a1", At: t0.Add(151 * time.Minute), IP: "10.0.0.2"},            // duplicate: not counted
		{TrackingID: "a1", At: t0.Add(152 * time.Minute), IP: "10.0.0.3"},            // human, not first
		{TrackingID: "a2", At: t0.Add(155 * time.Minute), IP: "10.0.0.4"},            // first human of a2
		{TrackingID: "zz", At: t0.Add(155 * time.Minute), IP: "10.0.0.4"},            // unknown copy
		{TrackingID: "a2", At: t0.Add(200 * time.Minute), IP: "10.0.0.5", Bot: true}, // machine
	}
	for _, h := range hits {
		mustRecord(t, s, h)
	}
	want := []Activity{
		{Start: t0, Queued: 1},
		{Start: t0.Add(time.Hour), Queued: 1, Sent: 2, OpensMachine: 1},
		{Start: t0.Add(2 * time.Hour), OpensHuman: 3, FirstHuman: 2},
		{Start: t0.Add(3 * time.Hour), OpensMachine: 1},
	}
	got, err := s.ActivityBetween(t0.Add(-time.Hour), t0.Add(10*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("activity =\n%+v\nwant\n%+v", got, want)
	}
	got, _ = s.ActivityBetween(t0.Add(time.Hour+time.Minute), t0.Add(3*time.Hour))
	if !reflect.DeepEqual(got, want[1:3]) {
		t.Errorf("activity of hours 1-2 = %+v, want %+v", got, want[1:3])
	}
}

// TestActivityBuiltForOldDatabase: a database written before the hourly
// counts existed gets them built from its opens and copies when opened.
func TestActivityBuiltForOldDatabase(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "db")
	s, err := OpenStore(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t0 := clk.Now()
	fill(t, s, "old", 30, 4, t0)
	if err := s.Update("old000003", record.StatusSent, "", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	before, err := s.ActivityBetween(t0.Add(-time.Hour), t0.Add(24*time.Hour))
	if err != nil || len(before) == 0 {
		t.Fatalf("activity = %v, %v", before, err)
	}
	s.Close()
	db, err := bolt.Open(path, 0o600, nil) // make it look like an old file
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bActivity); err != nil {
			return err
		}
		return tx.Bucket(bMeta).Delete(mActivity)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s, err = OpenStore(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	after, err := s.ActivityBetween(t0.Add(-time.Hour), t0.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(after, before) {
		t.Errorf("rebuilt activity =\n%+v\nwant\n%+v", after, before)
	}
}

func TestSubscribe(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	t0 := clk.Now()
	sub := s.Subscribe()
	defer sub.Close()
	addCopy(t, s, "live", "bob@example.com", t0)
	if err := s.Update("live", record.StatusSent, "", t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	mustRecord(t, s, Hit{TrackingID: "live", At: t0.Add(time.Minute), IP: "10.0.0.1", Bot: true})
	mustRecord(t, s, Hit{TrackingID: "unknown", At: t0.Add(time.Minute), IP: "10.0.0.1"})
	var got []Change
	deadline := time.After(5 * time.Second)
	for len(got) < 3 {
		select {
		case <-sub.C:
			ch, over := sub.Take()
			if over {
				t.Fatal("overflow with 3 changes")
			}
			got = append(got, ch...)
		case <-deadline:
			t.Fatalf("got %+v within 5s, want 3 changes", got)
		}
	}
	want := []Change{
		{Kind: ChangeCopy, TrackingID: "live", At: t0, Status: record.StatusQueued},
		{Kind: ChangeStatus, TrackingID: "live", At: t0.Add(time.Second), Status: record.StatusSent},
		{Kind: ChangeOpen, TrackingID: "live", At: t0.Add(time.Minute), Bot: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("changes =\n%+v\nwant\n%+v", got, want)
	}

	// A reader that never reads: its changes are dropped past maxPending
	// and it is told so; the writer never waits for it.
	slow := s.Subscribe()
	defer slow.Close()
	ids := fill(t, s, "f", maxPending+10, 1, t0.Add(time.Hour))
	if _, over := slow.Take(); !over {
		t.Errorf("a subscriber %d changes behind was not told it overflowed", 2*len(ids))
	}
	sub.Close()
	slow.Close()
	if n := s.feed.n.Load(); n != 0 {
		t.Errorf("%d subscribers after Close", n)
	}
}

func TestOnHitOutcomes(t *testing.T) {
	clk := newClock()
	var got []string
	s := openTest(t, Options{Now: clk.Now, DedupWindow: time.Hour, IPHourlyLimit: 2,
		OnHit: func(o HitOutcome, h *Hit) { got = append(got, o.String()+":"+h.IP) }})
	addCopy(t, s, "o1", "bob@example.com", clk.Now())
	at := clk.Now().Add(time.Minute)
	for _, h := range []Hit{
		{TrackingID: "o1", At: at, IP: "10.0.0.1", UserAgent: "a"},
		{TrackingID: "o1", At: at, IP: "10.0.0.1", UserAgent: "a"}, // duplicate
		{TrackingID: "o1", At: at, IP: "10.0.0.1", UserAgent: "b"},
		{TrackingID: "o1", At: at, IP: "10.0.0.1", UserAgent: "c"}, // third from that IP this hour
		{TrackingID: "xx", At: at, IP: "10.0.0.2"},
	} {
		mustRecord(t, s, h)
	}
	want := []string{"stored:10.0.0.1", "duplicate:10.0.0.1", "stored:10.0.0.1", "limited:10.0.0.1", "unknown:10.0.0.2"}
	if !reflect.DeepEqual(got, want) { // OnHit runs on the writer; Record returned after it
		t.Errorf("outcomes = %v, want %v", got, want)
	}
}

// listFixture stores 12 copies, one an hour: recipients cycle through
// alice@a.example, alina@b.example, bob@b.example; subjects "report N";
// copy 4 has "Quarterly INVOICE" as subject; opens, states as named.
func listFixture(t *testing.T) (*Store, time.Time) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	t0 := clk.Now()
	rcpts := []string{"alice@a.example", "Alina@B.example", "bob@b.example"}
	var cs []record.Copy
	for i := range 12 {
		subj := fmt.Sprint("report ", i)
		if i == 4 {
			subj = "Quarterly INVOICE"
		}
		cs = append(cs, record.Copy{TrackingID: fmt.Sprintf("c%02d", i), Recipient: rcpts[i%3], Subject: subj,
			QueuedAt: t0.Add(time.Duration(i) * time.Hour)})
		if i == 6 || i == 8 {
			cs[i].QueueID, cs[i].Links = fmt.Sprint("q", i), testLinks
		}
	}
	if err := s.Add(cs); err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		st := record.StatusSent
		switch i {
		case 10:
			st = record.StatusDeferred
		case 11:
			continue // still queued
		case 9:
			st = record.StatusFailed
		}
		if err := s.Update(fmt.Sprintf("c%02d", i), st, "", t0.Add(time.Duration(i)*time.Hour+time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int{1, 2, 5} {
		mustRecord(t, s, Hit{TrackingID: fmt.Sprintf("c%02d", i), At: t0.Add(20 * time.Hour), IP: fmt.Sprint("10.0.0.", i)})
	}
	mustRecord(t, s, Hit{TrackingID: "c03", At: t0.Add(20 * time.Hour), IP: "10.0.1.1", Bot: true})
	mustClick(t, s, click("c06", 1, t0.Add(20*time.Hour), "10.0.2.1", ua1)) // a person's, not settled yet
	bot := click("c08", 2, t0.Add(20*time.Hour), "10.0.2.2", ua1)
	bot.Bot, bot.BotType = true, "scanner"
	mustClick(t, s, bot)
	return s, t0
}

func pageIDs(p ListPage) string {
	var b []string
	for _, m := range p.Messages {
		b = append(b, strings.TrimPrefix(m.TrackingID, "c"))
	}
	return strings.Join(b, ",")
}

func TestList(t *testing.T) {
	s, t0 := listFixture(t)
	tests := []struct {
		name     string
		q        ListQuery
		want     string
		searchIn string
	}{
		{"all", ListQuery{}, "11,10,09,08,07,06,05,04,03,02,01,00", ""},
		{"opened", ListQuery{Filter: FilterOpened}, "05,02,01", ""},
		{"clicked by a person", ListQuery{Filter: FilterClicked}, "06", ""},
		{"unopened: sent, no human open", ListQuery{Filter: FilterUnopened}, "08,07,06,04,03,00", ""},
		{"unopened for 5 hours at hour 10", ListQuery{Filter: FilterUnopened, QueuedBefore: t0.Add(5 * time.Hour)}, "04,03,00", ""},
		{"pending", ListQuery{Filter: FilterPending}, "11,10", ""},
		{"failed", ListQuery{Filter: FilterFailed}, "09", ""},
		{"recipient prefix merges recipients", ListQuery{Search: "ali"}, "10,09,07,06,04,03,01,00", SearchRecipient},
		{"recipient prefix any case", ListQuery{Search: "ALINA@b"}, "10,07,04,01", SearchRecipient},
		{"recipient prefix and filter", ListQuery{Search: "ali", Filter: FilterOpened}, "01", SearchRecipient},
		{"no recipient: text in subject", ListQuery{Search: "invoice"}, "04", SearchText},
		{"text in recipient domain", ListQuery{Search: "b.EXAMPLE"}, "11,10,08,07,05,04,02,01", SearchText},
		{"text forced", ListQuery{Search: "ali", SearchIn: SearchText}, "10,09,07,06,04,03,01,00", SearchText},
		{"recipient forced, none", ListQuery{Search: "report", SearchIn: SearchRecipient}, "", SearchRecipient},
		{"nothing", ListQuery{Search: "zebra"}, "", SearchText},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := s.List(tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if pageIDs(p) != tt.want || p.SearchIn != tt.searchIn {
				t.Errorf("got %s (%s), want %s (%s)", pageIDs(p), p.SearchIn, tt.want, tt.searchIn)
			}
			if p.Next != nil {
				t.Errorf("Next = %v on a complete page", p.Next)
			}
		})
	}
	p, _ := s.List(ListQuery{Search: "bob", Limit: 1})
	if m := p.Messages[0]; m.Recipient != "bob@b.example" || m.Status != record.StatusQueued || m.Subject != "report 11" || m.SentAt != nil {
		t.Errorf("message = %+v", m)
	}
}

// TestListPaging: following Next visits every match exactly once, in
// order, for each kind of query, also when the scan budget is tiny.
func TestListPaging(t *testing.T) {
	s, _ := listFixture(t)
	defer func(b int) { scanBudget = b }(scanBudget)
	queries := []ListQuery{
		{}, {Filter: FilterOpened}, {Filter: FilterClicked}, {Filter: FilterUnopened}, {Search: "ali"}, {Search: "ali", Filter: FilterUnopened},
		{Search: "example"}, {Search: "a", SearchIn: SearchRecipient},
	}
	for _, budget := range []int{20000, 5, 2} {
		scanBudget = budget
		for _, base := range queries {
			for _, limit := range []int{1, 2, 3, 50} {
				q := base
				name := fmt.Sprintf("budget %d limit %d %+v", budget, limit, q)
				scanBudget = 20000
				full, err := s.List(q)
				scanBudget = budget
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				q.Limit = limit
				q.Before = nil
				for n := 0; ; n++ {
					if n > 50 {
						t.Fatalf("%s: no end after 50 pages", name)
					}
					p, err := s.List(q)
					if err != nil {
						t.Fatal(err)
					}
					if len(p.Messages) > limit {
						t.Fatalf("%s: page of %d", name, len(p.Messages))
					}
					if ids := pageIDs(p); ids != "" {
						got = append(got, ids)
					}
					if p.Next == nil {
						break
					}
					q.Before = p.Next
				}
				if strings.Join(got, ",") != pageIDs(full) {
					t.Errorf("%s: pages %v, want %s", name, got, pageIDs(full))
				}
			}
		}
	}
}

func TestListScanBudgetSaysHowFar(t *testing.T) {
	s, t0 := listFixture(t)
	defer func(b int) { scanBudget = b }(scanBudget)
	scanBudget = 4
	p, err := s.List(ListQuery{Search: "invoice"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Messages) != 0 || p.Next == nil || !p.ScannedTo.Equal(t0.Add(8*time.Hour)) {
		t.Fatalf("page = %+v, next %v; want nothing yet, scanned to hour 8", p, p.Next)
	}
	p, _ = s.List(ListQuery{Search: "invoice", Before: p.Next})
	if pageIDs(p) != "04" {
		t.Errorf("second page = %s, want 04", pageIDs(p))
	}
}

func TestCursorRoundTrip(t *testing.T) {
	c := Cursor{QueuedAt: time.Date(2026, 3, 1, 12, 0, 0, 5, time.UTC), ID: "abcdefghijklmnop"}
	got, err := ParseCursor(c.String())
	if err != nil || got != c {
		t.Errorf("ParseCursor(%q) = %+v, %v", c.String(), got, err)
	}
	for _, bad := range []string{"", "-", "12", "x-abc", "12-", "-abc", "1-a\x00b", "99999999999999999999-a", "1-" + strings.Repeat("a", 65)} {
		if _, err := ParseCursor(bad); err == nil {
			t.Errorf("ParseCursor(%q) accepted", bad)
		}
	}
}

func TestContainsFold(t *testing.T) {
	tests := []struct {
		s, sub string
		want   bool
	}{
		{"Quarterly INVOICE", "invoice", true},
		{"Quarterly INVOICE", "terly in", true},
		{"Grüße aus Köln", "KÖLN", true},
		{"Grüße", "üß", true},
		{"abc", "", true},
		{"", "a", false},
		{"abc", "abcd", false},
		{"naïve", "ive", false},
	}
	for _, tt := range tests {
		if got := containsFold([]byte(tt.s), []byte(tt.sub)); got != tt.want {
			t.Errorf("containsFold(%q, %q) = %v", tt.s, tt.sub, got)
		}
	}
}

func FuzzDashboardRecords(f *testing.F) {
	f.Add([]byte{eventVersion, 4, 's', 'e', 'n', 't', 0}, "report", "Rep")
	f.Add(encodeActivity(&Activity{OpensHuman: 3, Sent: 1}), "Grüße", "SS")
	f.Add([]byte("1-abc"), "", "")
	f.Add(encodeCopy(&copyRec{Copy: record.Copy{TrackingID: "a", Recipient: "b@c", Subject: "s", Status: "sent"}, OpensHuman: 2}), "", "")
	f.Add(encodeCopy(&copyRec{Copy: record.Copy{TrackingID: "a", Status: "sent"}, ClicksTotal: 3, ClicksHuman: 2}), "", "")
	f.Fuzz(func(t *testing.T, b []byte, s, sub string) {
		k := timeSeq(1, 2)
		if e, err := decodeEvent(k, b); err == nil {
			if got, err := decodeEvent(k, encodeEvent(&e)); err != nil || got != e {
				t.Fatalf("event round trip: %+v vs %+v (%v)", got, e, err)
			}
		}
		if a, err := decodeActivity(b); err == nil {
			if got, err := decodeActivity(encodeActivity(&a)); err != nil || got != a {
				t.Fatalf("activity round trip: %+v vs %+v (%v)", got, a, err)
			}
		}
		if c, err := decodeCopy(b); err == nil {
			r, subj, ok := peekCopyText(b)
			f, fok := peekCopyFacts(b)
			if !ok || !fok || string(r) != c.Recipient || string(subj) != c.Subject ||
				string(f.status) != c.Status || f.opensHuman != uint64(c.OpensHuman) || f.clicksHuman != uint64(c.ClicksHuman) {
				t.Fatalf("peek = %q %q %+v (%v %v); decodeCopy = %+v", r, subj, f, ok, fok, c)
			}
			r, subj, ok = peekTimeValue(copyTimeValue(&c.Copy))
			if !ok || string(r) != c.Recipient || string(subj) != c.Subject {
				t.Fatalf("peekTimeValue = %q %q %v; copy %+v", r, subj, ok, c)
			}
		}
		if c, err := ParseCursor(string(b)); err == nil {
			if got, err := ParseCursor(c.String()); err != nil || got != c {
				t.Fatalf("cursor round trip: %+v vs %+v (%v)", got, c, err)
			}
		}
		if strings.Contains(s, sub) && !containsFold([]byte(s), []byte(sub)) {
			t.Fatalf("containsFold(%q, %q) = false, but it is there", s, sub)
		}
		if isASCII(s) && isASCII(sub) && containsFold([]byte(s), []byte(sub)) != strings.Contains(strings.ToLower(s), strings.ToLower(sub)) {
			t.Fatalf("containsFold(%q, %q) disagrees with ToLower", s, sub)
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// TestReclassifyKeepsActivity: after a reclassify changed verdicts and a
// copy's first human open, the hourly counts equal counts made afresh from
// the stored opens and copies.
func TestReclassifyKeepsActivity(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	t0 := clk.Now()
	addCopy(t, s, "aaaaaaaaaaaaaaaa", "bob@example.com", t0)
	addCopy(t, s, "bbbbbbbbbbbbbbbb", "carol@example.com", t0)
	for _, id := range []string{"aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"} {
		if err := s.Update(id, record.StatusSent, "", t0); err != nil {
			t.Fatal(err)
		}
	}
	mustRecord(t, s, Hit{TrackingID: "aaaaaaaaaaaaaaaa", At: t0.Add(time.Minute), IP: eop, UserAgent: chrome})
	mustRecord(t, s, Hit{TrackingID: "aaaaaaaaaaaaaaaa", At: t0.Add(3 * time.Hour), IP: home, UserAgent: bird})
	mustRecord(t, s, Hit{TrackingID: "bbbbbbbbbbbbbbbb", At: t0.Add(2 * time.Minute), IP: eop, UserAgent: chrome})
	mustRecord(t, s, Hit{TrackingID: "aaaaaaaaaaaaaaaa", At: t0.Add(5 * time.Hour), IP: relayNet, UserAgent: safari, Bot: true, BotType: "apple_mpp"})
	res, err := s.Reclassify(context.Background(), time.Time{}, judge)
	if err != nil || res.Changed == 0 {
		t.Fatalf("reclassify: %+v, %v; want some verdicts changed", res, err)
	}
	got, err := s.ActivityBetween(t0.Add(-time.Hour), t0.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var want []Activity
	err = s.view(func(tx *bolt.Tx) error {
		act, err := countActivity(tx)
		for h := hourOf(t0.Add(-time.Hour)); h < hourOf(t0.Add(24*time.Hour)); h++ {
			if a := act[h]; a != nil {
				a.Start = time.Unix(int64(h)*3600, 0).UTC()
				want = append(want, *a)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("activity after reclassify =\n%+v\ncounted afresh\n%+v", got, want)
	}
}

// TestListUntracked: copies sent without a pixel are listed (with the key
// their timeline is found by), have their own filter, and are never "not
// opened".
func TestListUntracked(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	t0 := clk.Now()
	addCopy(t, s, "tracked000000000", "bob@example.com", t0)
	plain := record.Copy{QueueID: "q7", Recipient: "Ann@Example.com", Subject: "plain", QueuedAt: t0.Add(time.Minute), UntrackedReason: "no HTML part"}
	if err := s.Add([]record.Copy{plain}); err != nil {
		t.Fatal(err)
	}
	key := record.UntrackedID("q7", "Ann@Example.com")
	for _, id := range []string{"tracked000000000", key} {
		if err := s.Update(id, record.StatusSent, "", t0.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.List(ListQuery{})
	if err != nil || len(all.Messages) != 2 || all.Messages[0].Key != key || all.Messages[1].Key != "tracked000000000" {
		t.Fatalf("all = %+v, %v", all.Messages, err)
	}
	for _, tt := range []struct {
		q    ListQuery
		want string
	}{
		{ListQuery{Filter: FilterUntracked}, key},
		{ListQuery{Filter: FilterUnopened}, "tracked000000000"},
		{ListQuery{Filter: FilterUntracked, Search: "ann"}, key},
		{ListQuery{Filter: FilterUntracked, Search: "plain"}, key},
	} {
		p, err := s.List(tt.q)
		if err != nil || len(p.Messages) != 1 || p.Messages[0].Key != tt.want {
			t.Errorf("%+v = %+v, %v; want %s", tt.q, p.Messages, err, tt.want)
		}
	}
	m, ok, err := s.ByKey(key)
	if err != nil || !ok || m.Tracked || m.UntrackedReason != "no HTML part" || m.Key != key {
		t.Errorf("ByKey(%s) = %+v, %v, %v", key, m, ok, err)
	}
	if _, ok, _ := s.ByKey("nope"); ok {
		t.Error("ByKey of an unknown key found something")
	}
	if ev, err := s.Events(key); err != nil || len(ev) != 1 || ev[0].Status != record.StatusSent {
		t.Errorf("Events(%s) = %+v, %v", key, ev, err)
	}
}
