package store

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"pixelrelay/tracker/classify"
	"pixelrelay/tracker/record"
)

// eop is an Exchange Online Protection address: the built-in table calls
// it a scanner, whatever its user agent.
const (
	eop      = "40.107.212.5"
	home     = "203.0.113.7"
	chrome   = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36"
	bird     = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.5.0"
	safari   = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15"
	relayNet = "172.225.40.1" // Apple Private Relay egress
)

func judge(sentAt time.Time, fs []classify.Fetch) []classify.Result {
	return classify.Default().Reclassify(sentAt, fs, 0)
}

// TestReclassifyFixesCountersAndFlags: opens recorded with old verdicts
// (an EOP scan counted as a person's first open; a Safari reader counted as
// MPP) are classified again; opens_human, first_human_open, the first flags,
// the unopened index and the store's counters follow.
func TestReclassifyFixesCountersAndFlags(t *testing.T) {
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
	// Copy a: EOP scan a minute after delivery, stored as human (the old
	// rules); the reader with Thunderbird an hour later.
	mustRecord(t, s, Hit{TrackingID: "aaaaaaaaaaaaaaaa", At: t0.Add(time.Minute), IP: eop, UserAgent: chrome})
	mustRecord(t, s, Hit{TrackingID: "aaaaaaaaaaaaaaaa", At: t0.Add(time.Hour), IP: home, UserAgent: bird})
	// Copy b: only an EOP scan, stored as human: the copy looks opened.
	mustRecord(t, s, Hit{TrackingID: "bbbbbbbbbbbbbbbb", At: t0.Add(2 * time.Minute), IP: eop, UserAgent: chrome})
	// Copy a again: a Safari reader through Private Relay stored as MPP.
	mustRecord(t, s, Hit{TrackingID: "aaaaaaaaaaaaaaaa", At: t0.Add(2 * time.Hour), IP: relayNet, UserAgent: safari, Bot: true, BotType: classify.AppleMPP})

	unopened := func() []string {
		ms, err := s.Messages(MessageQuery{Unopened: true})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range ms {
			ids = append(ids, m.TrackingID)
		}
		return ids
	}
	if got := unopened(); len(got) != 0 {
		t.Fatalf("before: unopened %v", got)
	}
	before := mustStats(t, s)

	res, err := s.Reclassify(context.Background(), time.Time{}, judge)
	if err != nil {
		t.Fatal(err)
	}
	want := ReclassifyResult{Copies: 2, Examined: 4, Changed: 3,
		Before: map[string]int{"human": 3, "bot:apple_mpp": 1},
		After:  map[string]int{"human": 2, "bot:scanner": 2},
		Clicks: &ReclassifyResult{Before: map[string]int{}, After: map[string]int{}}}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("result %+v, want %+v", res, want)
	}
	if got := unopened(); !reflect.DeepEqual(got, []string{"bbbbbbbbbbbbbbbb"}) {
		t.Errorf("unopened after: %v", got)
	}
	msgs, _ := s.Messages(MessageQuery{ID: "aaaaaaaaaaaaaaaa"})
	if m := msgs[0]; m.OpensHuman != 2 || m.OpensTotal != 3 || m.FirstHumanOpen == nil || !m.FirstHumanOpen.Equal(t0.Add(time.Hour)) {
		t.Errorf("copy a: human %d total %d first %v", m.OpensHuman, m.OpensTotal, m.FirstHumanOpen)
	}
	msgs, _ = s.Messages(MessageQuery{ID: "bbbbbbbbbbbbbbbb"})
	if m := msgs[0]; m.OpensHuman != 0 || m.FirstHumanOpen != nil {
		t.Errorf("copy b: human %d first %v", m.OpensHuman, m.FirstHumanOpen)
	}
	opens, _ := s.Opens(OpenQuery{ID: "aaaaaaaaaaaaaaaa"})
	wantOpens := []struct {
		bot    bool
		first  bool
		reason string
	}{ // newest first
		{false, false, classify.ReasonHuman},
		{false, true, classify.ReasonHuman},
		{true, false, "network: Microsoft Exchange Online Protection 40.107.0.0/16"},
	}
	for i, w := range wantOpens {
		o := opens[i]
		if o.Bot != w.bot || o.First != w.first || o.Reason != w.reason {
			t.Errorf("open %d: bot %v first %v reason %q, want %+v", i, o.Bot, o.First, o.Reason, w)
		}
	}
	after := mustStats(t, s)
	if after.OpensHuman != before.OpensHuman-1 || after.Opens != before.Opens {
		t.Errorf("stats before %+v after %+v", before, after)
	}
	// The time index carries the flags purge uses: a purge of everything
	// must bring the human count to zero, not below.
	if _, err := s.Purge(context.Background(), t0.Add(24*time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	if st := mustStats(t, s); st.Opens != 0 || st.OpensHuman != 0 {
		t.Errorf("after purge: %+v", st)
	}
	// Reclassifying again changes nothing.
	res, err = s.Reclassify(context.Background(), time.Time{}, judge)
	if err != nil || res.Examined != 0 {
		t.Errorf("second run: %+v %v", res, err)
	}
}

// TestReclassifySince re-examines only opens since the time, and keeps a
// first human open that purge already deleted.
func TestReclassifySince(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	t0 := clk.Now()
	id := "cccccccccccccccc"
	addCopy(t, s, id, "dan@example.com", t0)
	// Sent (again, say after a crash) at the purge's cutoff: a copy done
	// before it would go with all its opens; this one stays while its
	// first open is purged.
	if err := s.Update(id, record.StatusSent, "", t0.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	mustRecord(t, s, Hit{TrackingID: id, At: t0.Add(time.Hour), IP: home, UserAgent: bird})
	mustRecord(t, s, Hit{TrackingID: id, At: t0.Add(48 * time.Hour), IP: eop, UserAgent: chrome})
	mustRecord(t, s, Hit{TrackingID: id, At: t0.Add(72 * time.Hour), IP: eop, UserAgent: chrome})
	if _, err := s.Purge(context.Background(), t0.Add(24*time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	res, err := s.Reclassify(context.Background(), t0.Add(60*time.Hour), judge)
	if err != nil {
		t.Fatal(err)
	}
	if res.Examined != 1 || res.Changed != 1 {
		t.Errorf("%+v", res)
	}
	msgs, _ := s.Messages(MessageQuery{ID: id})
	m := msgs[0]
	if m.OpensHuman != 2 || m.FirstHumanOpen == nil || !m.FirstHumanOpen.Equal(t0.Add(time.Hour)) {
		t.Errorf("human %d first %v", m.OpensHuman, m.FirstHumanOpen)
	}
	opens, _ := s.Opens(OpenQuery{ID: id})
	if len(opens) != 2 || !opens[0].Bot || opens[1].Bot || opens[1].First {
		t.Errorf("opens %+v", opens)
	}
}

// TestVersion1OpensStillRead writes an open in the format of databases made
// before reasons were stored; it is read with an empty reason and
// reclassify gives it one.
func TestVersion1OpensStillRead(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "pixelrelay.db")
	s, err := OpenStore(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t0 := clk.Now()
	id := "dddddddddddddddd"
	addCopy(t, s, id, "erin@example.com", t0)
	mustRecord(t, s, Hit{TrackingID: id, At: t0.Add(time.Hour), IP: home, UserAgent: bird, Reason: "x"})
	s.Close()
	// Rewrite the open as version 1: no reason field.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bOpens)
		k, v := b.Cursor().First()
		o, err := decodeOpen(v)
		if err != nil {
			return err
		}
		v1 := []byte{openV1, o.Flags}
		for _, s := range []string{o.IP, o.UserAgent, o.BotType, o.Proxy, o.Country, o.City} {
			v1 = appendStr(v1, s)
		}
		return b.Put(append([]byte(nil), k...), v1)
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
	opens, err := s.Opens(OpenQuery{ID: id})
	if err != nil || len(opens) != 1 || opens[0].Reason != "" || opens[0].UserAgent != bird || !opens[0].First {
		t.Fatalf("v1 open read as %+v, %v", opens, err)
	}
	res, err := s.Reclassify(context.Background(), time.Time{}, judge)
	if err != nil || res.Examined != 1 || res.Changed != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	opens, _ = s.Opens(OpenQuery{ID: id})
	if opens[0].Reason != classify.ReasonHuman || !opens[0].First {
		t.Errorf("after reclassify: %+v", opens[0])
	}
}
