package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"pixelrelay/tracker/classify"
	"pixelrelay/tracker/record"
	"pixelrelay/tracker/webhook"
)

var testLinks = []string{"https://example.com/a?x=1&y=2", "http://example.org/b", "https://example.net/c"}

// addLinked records the tracked copies ids of one message (queue id qid)
// with testLinks.
func addLinked(t testing.TB, s *Store, qid string, queued time.Time, ids ...string) {
	t.Helper()
	var cs []record.Copy
	for _, id := range ids {
		cs = append(cs, record.Copy{TrackingID: id, QueueID: qid, Recipient: id + "@example.com", From: "alice@example.org",
			Subject: "Subject " + qid, MessageID: "<" + qid + "@example.org>", QueuedAt: queued, Links: testLinks})
	}
	if err := s.Add(cs); err != nil {
		t.Fatal(err)
	}
}

func click(id string, link int, at time.Time, ip, ua string) ClickHit {
	return ClickHit{TrackingID: id, Link: link, At: at, IP: ip, UserAgent: ua, Reason: classify.ReasonHuman}
}

func mustClick(t testing.TB, s *Store, c ClickHit) bool {
	t.Helper()
	ok, err := s.RecordClick(c)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func mustMessage(t testing.TB, s *Store, id string) Message {
	t.Helper()
	ms, err := s.Messages(MessageQuery{ID: id})
	if err != nil || len(ms) != 1 {
		t.Fatalf("Messages(%s) = %v, %v", id, ms, err)
	}
	return ms[0]
}

func mustClicks(t testing.TB, s *Store, q ClickQuery) []Click {
	t.Helper()
	cs, err := s.Clicks(q)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

const ua1 = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Safari/605.1.15"

// TestLinkOf: the URL of a copy's link by number, the honeypot (0), and
// nothing for unknown copies, links, or untracked copies.
func TestLinkOf(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	addLinked(t, s, "q1", clk.Now(), "ida", "idb")
	addCopy(t, s, "nolinks", "x@example.com", clk.Now())
	if err := s.Add([]record.Copy{{QueueID: "q1", Recipient: "u@example.com", UntrackedReason: "excluded"}}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		id    string
		n     int
		url   string
		found bool
	}{
		{"ida", 1, testLinks[0], true}, {"idb", 3, testLinks[2], true}, {"ida", 0, "", true},
		{"ida", 4, "", false}, {"ida", -1, "", false}, {"nope", 1, "", false}, {"nolinks", 1, "", false},
		{"nolinks", 0, "", false}, {record.UntrackedID("q1", "u@example.com"), 1, "", false},
	}
	for _, tc := range cases {
		url, _, found, err := s.LinkOf(tc.id, tc.n)
		if err != nil || url != tc.url || found != tc.found {
			t.Errorf("LinkOf(%s, %d) = %q, %v, %v; want %q, %v", tc.id, tc.n, url, found, err, tc.url, tc.found)
		}
	}
	checkConsistent(t, s)
}

// TestRecordClick: a click is stored with its URL and counted on its
// copy; dedup keys on copy, link, IP and user agent; unknown links and
// copies are refused; the per-IP limit counts opens and clicks together.
func TestRecordClick(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now, DedupWindow: time.Hour, IPHourlyLimit: 4})
	addLinked(t, s, "q1", clk.Now(), "ida", "idb")
	clk.Advance(time.Hour)
	at := clk.Now()
	steps := []struct {
		c    ClickHit
		want bool
	}{
		{click("ida", 1, at, "192.0.2.1", ua1), true},
		{click("ida", 1, at.Add(time.Minute), "192.0.2.1", ua1), false},      // duplicate
		{click("ida", 1, at.Add(time.Minute), "192.0.2.1", ua1+"x"), true},   // other user agent
		{click("ida", 2, at.Add(2*time.Minute), "192.0.2.1", ua1), true},     // other link
		{click("ida", 4, at.Add(3*time.Minute), "198.51.100.1", ua1), false}, // no such link
		{click("nope", 1, at, "198.51.100.1", ua1), false},
	}
	for i, st := range steps {
		if got := mustClick(t, s, st.c); got != st.want {
			t.Fatalf("step %d: stored %v, want %v", i, got, st.want)
		}
	}
	if mustRecord(t, s, Hit{TrackingID: "idb", At: at.Add(4 * time.Minute), IP: "192.0.2.1", UserAgent: ua1}) != true {
		t.Fatal("open refused under the limit")
	}
	if mustClick(t, s, click("idb", 1, at.Add(5*time.Minute), "192.0.2.1", ua1)) {
		t.Fatal("click stored over the per-IP limit shared with opens")
	}
	cs := mustClicks(t, s, ClickQuery{ID: "ida"})
	if len(cs) != 3 || cs[0].URL != testLinks[1] || cs[2].URL != testLinks[0] || !cs[2].First || cs[0].First {
		t.Fatalf("clicks of ida: %+v", cs)
	}
	m := mustMessage(t, s, "ida")
	if m.ClicksTotal != 3 || m.ClicksHuman != 3 || m.FirstHumanClick == nil || !m.FirstHumanClick.Equal(at) {
		t.Fatalf("message: %+v", m)
	}
	if got := mustClicks(t, s, ClickQuery{To: "IDA@example.com"}); len(got) != 3 {
		t.Fatalf("clicks of the recipient: %d", len(got))
	}
	if got := mustClicks(t, s, ClickQuery{Since: at.Add(90 * time.Second)}); len(got) != 1 || got[0].URL != testLinks[1] {
		t.Fatalf("clicks since: %+v", got)
	}
	st := mustStats(t, s)
	if st.Clicks != 3 || st.ClicksHuman != 3 {
		t.Fatalf("stats: %+v", st)
	}
	checkConsistent(t, s)
}

// TestClickRules: a honeypot fetch turns the clicks of its network
// around it into a scanner's, also those stored before it; several
// links within LinkBurstWindow are a scanner's; a person elsewhere stays
// a person; counters and first flags follow.
func TestClickRules(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	addLinked(t, s, "q1", clk.Now(), "ida", "idb")
	clk.Advance(time.Hour)
	t0 := clk.Now()
	mustClick(t, s, click("ida", 1, t0, "192.0.2.10", ua1))
	mustClick(t, s, click("ida", 2, t0.Add(5*time.Second), "192.0.2.11", ua1))
	mustClick(t, s, click("ida", 3, t0.Add(9*time.Second), "203.0.113.5", ua1)) // another network
	if m := mustMessage(t, s, "ida"); m.ClicksHuman != 3 {
		t.Fatalf("before the honeypot: %+v", m)
	}
	mustClick(t, s, click("ida", 0, t0.Add(12*time.Second), "192.0.2.99", ua1))
	cs := mustClicks(t, s, ClickQuery{ID: "ida"})
	want := []struct {
		link  int
		bot   bool
		first bool
	}{{0, true, false}, {3, false, true}, {2, true, false}, {1, true, false}}
	if len(cs) != len(want) {
		t.Fatalf("%d clicks", len(cs))
	}
	for i, w := range want {
		if cs[i].Link != w.link || cs[i].Bot != w.bot || cs[i].First != w.first {
			t.Errorf("click %d: %+v, want %+v", i, cs[i], w)
		}
	}
	if cs[0].Reason != classify.ReasonHoneypot || !strings.HasPrefix(cs[3].Reason, "honeypot fetched from the same network") {
		t.Errorf("reasons: %q, %q", cs[0].Reason, cs[3].Reason)
	}
	m := mustMessage(t, s, "ida")
	if m.ClicksTotal != 4 || m.ClicksHuman != 1 || !m.FirstHumanClick.Equal(t0.Add(9*time.Second)) {
		t.Fatalf("after the honeypot: %+v", m)
	}

	t1 := t0.Add(10 * time.Minute)
	mustClick(t, s, click("idb", 1, t1, "198.51.100.7", ua1))
	mustClick(t, s, click("idb", 3, t1.Add(1500*time.Millisecond), "198.51.100.8", ua1))
	for _, c := range mustClicks(t, s, ClickQuery{ID: "idb"}) {
		if !c.Bot || c.First || !strings.Contains(c.Reason, "2 links of the copy followed within") {
			t.Errorf("burst click: %+v", c)
		}
	}
	if m := mustMessage(t, s, "idb"); m.ClicksHuman != 0 || m.FirstHumanClick != nil {
		t.Fatalf("after the burst: %+v", m)
	}
	if st := mustStats(t, s); st.Clicks != 6 || st.ClicksHuman != 1 {
		t.Fatalf("stats: %+v", st)
	}
	checkConsistent(t, s)
}

// TestClickSettles: once HoneypotWindow has passed, a human click on a
// copy nobody opened makes it opened (an open of its own, flagByClick),
// also across a restart; machine clicks and copies already opened get
// none.
func TestClickSettles(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "pixelrelay.db")
	s, err := OpenStore(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	addLinked(t, s, "q1", clk.Now(), "ida", "idb", "idc")
	clk.Advance(time.Hour)
	t0 := clk.Now()
	mustRecord(t, s, Hit{TrackingID: "idc", At: t0, IP: "203.0.113.1", UserAgent: ua1})
	mustClick(t, s, click("ida", 2, t0, "192.0.2.1", ua1))
	bot := click("idb", 1, t0, "192.0.2.2", "curl/8.0")
	bot.Bot, bot.BotType, bot.Reason = true, classify.Scanner, "user agent: curl/"
	mustClick(t, s, bot)
	mustClick(t, s, click("idc", 1, t0.Add(time.Second), "203.0.113.1", ua1))
	if m := mustMessage(t, s, "ida"); m.OpensHuman != 0 {
		t.Fatalf("opened before the click settled: %+v", m)
	}
	clk.Advance(classify.HoneypotWindow / 2)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if m := mustMessage(t, s, "ida"); m.OpensHuman != 0 {
		t.Fatal("settled too early")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	clk.Advance(classify.HoneypotWindow)
	s, err = OpenStore(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	deadline := time.Now().Add(5 * time.Second)
	for mustMessage(t, s, "ida").OpensHuman == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // the writer's settle timer
	}
	m := mustMessage(t, s, "ida")
	if m.OpensHuman != 1 || m.OpensTotal != 1 || m.FirstHumanOpen == nil || !m.FirstHumanOpen.Equal(t0) {
		t.Fatalf("clicked copy after settling: %+v", m)
	}
	opens, err := s.Opens(OpenQuery{ID: "ida"})
	if err != nil || len(opens) != 1 || opens[0].Reason != ReasonByClick || !opens[0].First || opens[0].IP != "192.0.2.1" {
		t.Fatalf("opens of the clicked copy: %+v, %v", opens, err)
	}
	if m := mustMessage(t, s, "idb"); m.OpensTotal != 0 {
		t.Fatalf("machine click opened its copy: %+v", m)
	}
	if m := mustMessage(t, s, "idc"); m.OpensTotal != 1 {
		t.Fatalf("an opened copy got another open from its click: %+v", m)
	}
	unopened, err := s.Messages(MessageQuery{Unopened: true})
	if err != nil || len(unopened) != 1 || unopened[0].TrackingID != "idb" {
		t.Fatalf("unopened: %+v, %v", unopened, err)
	}
	checkConsistent(t, s)
}

// TestClickLimiterRebuilt: a reopened store remembers the last hour's
// clicks for dedup.
func TestClickLimiterRebuilt(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "pixelrelay.db")
	s, err := OpenStore(path, Options{Now: clk.Now, DedupWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	addLinked(t, s, "q1", clk.Now(), "ida")
	c := click("ida", 1, clk.Now(), "192.0.2.1", ua1)
	if !mustClick(t, s, c) {
		t.Fatal("first click refused")
	}
	s.Close()
	clk.Advance(time.Minute)
	s, err = OpenStore(path, Options{Now: clk.Now, DedupWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c.At = clk.Now()
	if mustClick(t, s, c) {
		t.Fatal("the same click stored again after a restart")
	}
}

// TestPurgeClicks: a purge deletes old clicks, and done copies take their
// clicks and their hold on the links with them; the links go with the
// message's last copy.
func TestPurgeClicks(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	start := clk.Now()
	addLinked(t, s, "q1", start, "ida", "idb")
	addLinked(t, s, "q2", start, "idc")
	for _, id := range []string{"ida", "idb", "idc"} {
		if err := s.Update(id, record.StatusSent, "", start.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		mustClick(t, s, click(id, 1, start.Add(time.Hour), "192.0.2.1", ua1))
	}
	if err := s.Update("idc", record.StatusDeferred, "451 later", start.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.Update("idb", record.StatusSent, "", start.Add(10*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	mustClick(t, s, click("idb", 2, start.Add(10*24*time.Hour), "192.0.2.1", ua1))
	clk.Advance(20 * 24 * time.Hour)
	res, err := s.Purge(context.Background(), start.Add(5*24*time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.DeletedCopies != 1 || res.DeletedClicks != 2 {
		t.Fatalf("purge: %+v", res)
	}
	if _, _, found, _ := s.LinkOf("idb", 2); !found {
		t.Fatal("links of q1 gone while idb still uses them")
	}
	if got := mustClicks(t, s, ClickQuery{}); len(got) != 1 || got[0].TrackingID != "idb" || got[0].Link != 2 {
		t.Fatalf("clicks left: %+v", got)
	}
	checkConsistent(t, s)
	clk.Advance(20 * 24 * time.Hour)
	if _, err := s.Purge(context.Background(), clk.Now(), nil); err != nil {
		t.Fatal(err)
	}
	err = s.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bLinks).Get([]byte("q1")) != nil {
			return fmt.Errorf("links of q1 kept after its last copy")
		}
		if tx.Bucket(bLinks).Get([]byte("q2")) == nil {
			return fmt.Errorf("links of q2 (deferred copy) deleted")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, s)
}

// TestLinksWithoutQueueID: copies recorded without a queue id (a public
// tracker's, registered by a relay) keep their links each, and a purge
// takes them with the copy.
func TestLinksWithoutQueueID(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	other := []string{"https://other.example/x"}
	if err := s.Add([]record.Copy{{TrackingID: "ida", Recipient: "a@example.com", QueuedAt: clk.Now(), Links: testLinks},
		{TrackingID: "idb", Recipient: "b@example.com", QueuedAt: clk.Now(), Links: other}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id, url string
	}{{"ida", testLinks[0]}, {"idb", other[0]}} {
		if url, _, found, err := s.LinkOf(tc.id, 1); err != nil || !found || url != tc.url {
			t.Fatalf("LinkOf(%s, 1) = %q, %v, %v", tc.id, url, found, err)
		}
	}
	mustClick(t, s, click("idb", 1, clk.Now(), "192.0.2.1", ua1))
	if cs := mustClicks(t, s, ClickQuery{ID: "idb"}); len(cs) != 1 || cs[0].URL != other[0] {
		t.Fatalf("clicks: %+v", cs)
	}
	if err := s.Update("idb", record.StatusSent, "", clk.Now()); err != nil {
		t.Fatal(err)
	}
	clk.Advance(48 * time.Hour)
	if _, err := s.Purge(context.Background(), clk.Now().Add(-time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	if _, _, found, _ := s.LinkOf("ida", 1); !found {
		t.Fatal("ida's links went with idb")
	}
	checkConsistent(t, s)
}

// TestCopyRecordVersions: a version 2 copy record (before clicks) reads
// with no clicks, a version 3 one (before accounts) with no account, and
// both are written back as version 4.
func TestCopyRecordVersions(t *testing.T) {
	c := copyRec{Copy: record.Copy{TrackingID: "a", QueueID: "q", Recipient: "b@c", Status: record.StatusSent,
		QueuedAt: time.Unix(5, 0).UTC()}, OpensTotal: 2, OpensHuman: 1, DoneAt: time.Unix(9, 0).UTC()}
	b := []byte{copyV2}
	for _, s := range []string{c.TrackingID, c.QueueID, c.Recipient, c.From, c.Subject, c.MessageID, c.Status, c.LastError} {
		b = appendStr(b, s)
	}
	b = appendTime(b, c.QueuedAt)
	b = appendTime(b, c.SentAt)
	b = appendTime(b, c.FirstHumanOpen)
	b = binary.AppendUvarint(b, 2)
	b = binary.AppendUvarint(b, 1)
	b = appendStr(b, "")
	b = appendTime(b, c.DoneAt)
	got, err := decodeCopy(b)
	if err != nil || got.ClicksTotal != 0 || got.OpensHuman != 1 || !got.DoneAt.Equal(c.DoneAt) {
		t.Fatalf("v2 record: %+v, %v", got, err)
	}
	c.ClicksTotal, c.ClicksHuman, c.FirstHumanClick = 4, 2, time.Unix(7, 0).UTC()
	enc := encodeCopy(&c)
	if enc[0] != copyVersion || !bytes.HasPrefix(enc[1:], b[1:]) {
		t.Fatal("version 5 does not extend version 2")
	}
	if got, err := decodeCopy(enc); err != nil || got.ClicksHuman != 2 || !got.FirstHumanClick.Equal(c.FirstHumanClick) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	v3 := append([]byte{copyV3}, enc[1:len(enc)-2]...) // without the account's and sent folder's lengths (0)
	if got, err := decodeCopy(v3); err != nil || got.ClicksHuman != 2 || got.Account != "" {
		t.Fatalf("v3 record: %+v, %v", got, err)
	}
	v4 := append([]byte{copyV4}, enc[1:len(enc)-1]...) // without the sent folder's length (0)
	if got, err := decodeCopy(v4); err != nil || got.ClicksHuman != 2 || got.SentFolder != "" {
		t.Fatalf("v4 record: %+v, %v", got, err)
	}
	c.Account, c.SentFolder = "work", "failed: no Sent mailbox found"
	if got, err := decodeCopy(encodeCopy(&c)); err != nil || got.Account != "work" || got.SentFolder != c.SentFolder || got.ClicksHuman != 2 {
		t.Fatalf("v5 round trip: %+v, %v", got, err)
	}
}

// checkClicksConsistent: every click has its copy, its index and pending
// entries agree with the records, the counters with what is stored, and
// each message's links are held by as many stored copies as use them.
func checkClicksConsistent(tx *bolt.Tx, copies map[string]copyRec) error {
	ct := newClickTx(tx)
	var n, human int64
	wantRcpt := map[string]bool{}
	err := ct.clicks.ForEach(func(k, v []byte) error {
		i := bytes.IndexByte(k, 0)
		c, ok := copies[string(k[:max(i, 0)])]
		if i < 0 || len(k)-i-1 != 16 || !ok {
			return fmt.Errorf("click %q has no copy", k)
		}
		r, err := decodeClick(v)
		if err != nil {
			return err
		}
		tsq := k[i+1:]
		if got := ct.byTime.Get(tsq); !bytes.Equal(got, timeIndexValue(r.Flags, c.ID(), normAddr(c.Recipient))) {
			return fmt.Errorf("click %q: time index %q", k, got)
		}
		wantRcpt[string(prefixed(normAddr(c.Recipient), tsq))] = true
		n++
		if r.Flags&flagBot == 0 {
			human++
		}
		return nil
	})
	if err != nil {
		return err
	}
	if got := int64(ct.byTime.Stats().KeyN); got != n {
		return fmt.Errorf("clicks_by_time has %d keys for %d clicks", got, n)
	}
	if got := ct.byRcpt.Stats().KeyN; got != len(wantRcpt) {
		return fmt.Errorf("clicks_by_rcpt has %d keys for %d clicks", got, len(wantRcpt))
	}
	err = ct.pending.ForEach(func(k, v []byte) error {
		if ct.clicks.Get(prefixed(string(v), k)) == nil {
			return fmt.Errorf("pending %q has no click", k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	meta := tx.Bucket(bMeta)
	if counter(meta, mClicks) != n || counter(meta, mClicksHuman) != human {
		return fmt.Errorf("click counters %d/%d, the records say %d/%d", counter(meta, mClicks), counter(meta, mClicksHuman), n, human)
	}
	refs := map[string]int{}
	for _, c := range copies {
		if k := linksKey(c.QueueID, c.TrackingID); c.Tracked() && ct.links.Get(k) != nil {
			refs[string(k)]++
		}
	}
	return ct.links.ForEach(func(k, v []byte) error {
		l, err := decodeLinks(v)
		if err != nil {
			return err
		}
		if l.Refs != refs[string(k)] {
			return fmt.Errorf("links of %q held by %d, %d copies use them", k, l.Refs, refs[string(k)])
		}
		return nil
	})
}

// TestReclassifyClicks: clicks are classified again with the open rules
// (the judge) and the click rules; a click that turns into a machine's
// takes the open it made with it, one that turns into a person's opens
// its copy; counters, first flags and the unopened list follow.
func TestReclassifyClicks(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	addLinked(t, s, "q1", clk.Now(), "ida", "idb")
	for _, id := range []string{"ida", "idb"} {
		if err := s.Update(id, record.StatusSent, "", clk.Now()); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(time.Hour)
	t0 := clk.Now()
	// ida: a click from EOP stored as a person's (older rules); it opens
	// the copy when it settles.
	mustClick(t, s, click("ida", 1, t0, eop, chrome))
	// idb: a person's click stored as a scanner's.
	wrong := click("idb", 2, t0, home, bird)
	wrong.Bot, wrong.BotType, wrong.Reason = true, classify.Scanner, "user agent: bot"
	mustClick(t, s, wrong)
	clk.Advance(classify.HoneypotWindow + time.Second)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if m := mustMessage(t, s, "ida"); m.OpensHuman != 1 || m.ClicksHuman != 1 {
		t.Fatalf("before: %+v", m)
	}
	res, err := s.Reclassify(context.Background(), time.Time{}, judge)
	if err != nil {
		t.Fatal(err)
	}
	if res.Clicks == nil || res.Clicks.Examined != 2 || res.Clicks.Changed != 2 ||
		res.Clicks.After["human"] != 1 || res.Clicks.After["bot:scanner"] != 1 {
		t.Fatalf("result: %+v clicks %+v", res, res.Clicks)
	}
	a, b := mustMessage(t, s, "ida"), mustMessage(t, s, "idb")
	if a.ClicksHuman != 0 || a.FirstHumanClick != nil || a.OpensHuman != 0 || a.FirstHumanOpen != nil {
		t.Errorf("ida after: %+v", a)
	}
	if b.ClicksHuman != 1 || b.FirstHumanClick == nil || b.OpensHuman != 1 || b.FirstHumanOpen == nil {
		t.Errorf("idb after: %+v", b)
	}
	ms, err := s.Messages(MessageQuery{Unopened: true})
	if err != nil || len(ms) != 1 || ms[0].TrackingID != "ida" {
		t.Errorf("unopened after: %+v, %v", ms, err)
	}
	opens, _ := s.Opens(OpenQuery{ID: "ida"})
	if len(opens) != 1 || !opens[0].Bot || opens[0].Reason != ReasonClickMachine {
		t.Errorf("ida's open after: %+v", opens)
	}
	if st := mustStats(t, s); st.ClicksHuman != 1 || st.OpensHuman != 1 {
		t.Errorf("stats after: %+v", st)
	}
	checkConsistent(t, s)
}

// TestClickedEvents: message.clicked is written when a click settles,
// with the verdict that stands then (a click the honeypot shows to be a
// scanner's never reaches a human_only endpoint), its URL and its
// MESSAGE fields; the open a click makes sends message.opened; the
// honeypot sends nothing.
func TestClickedEvents(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	s.SetWebhooks([]webhook.Target{
		{Name: "people", URL: "https://a.example/h", HumanOnly: true},
		{Name: "all", URL: "https://m.example/h", Events: []string{webhook.Clicked}},
	}, nil)
	addLinked(t, s, "q1", clk.Now(), "ida", "idb")
	clk.Advance(time.Hour)
	t0 := clk.Now()
	mustClick(t, s, click("ida", 2, t0, "203.0.113.5", ua1))                  // a person
	mustClick(t, s, click("idb", 1, t0, "192.0.2.1", ua1))                    // a scanner, shown by...
	mustClick(t, s, click("idb", 0, t0.Add(5*time.Second), "192.0.2.2", ua1)) // ...the honeypot after it
	if n := len(pending(t, s, "all")); n != 0 {
		t.Fatalf("%d events before the clicks settled", n)
	}
	clk.Advance(classify.HoneypotWindow + 10*time.Second)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	people := pending(t, s, "people")
	if got := types(people); !slices.Equal(got, []string{webhook.Opened, webhook.Clicked}) {
		t.Fatalf("human_only endpoint got %v", got)
	}
	typ, at, data := body(t, people[1])
	if typ != webhook.Clicked || !at.Equal(t0) || data["url"] != testLinks[1] || data["tracking_id"] != "ida" ||
		data["bot"] != false || data["clicks_human"] != float64(1) || data["opens_human"] != float64(1) || data["from"] != "alice@example.org" {
		t.Fatalf("message.clicked: %s %v %v", typ, at, data)
	}
	if _, _, od := body(t, people[0]); od["reason"] != ReasonByClick || od["first"] != true {
		t.Fatalf("message.opened of the click: %v", od)
	}
	all := pending(t, s, "all")
	if got := types(all); !slices.Equal(got, []string{webhook.Clicked, webhook.Clicked}) {
		t.Fatalf("endpoint for every click got %v", got)
	}
	_, _, bd := body(t, all[1])
	if bd["tracking_id"] != "idb" || bd["bot"] != true || !strings.HasPrefix(bd["reason"].(string), "honeypot fetched") {
		t.Fatalf("the scanner's click: %v", bd)
	}
}

// TestClickFlood: many fetches of one link (a gateway retrying, a
// benchmark) are people's clicks while nothing else happens, and the
// writer does not read the copy's clicks for each; a second link within
// LinkBurstWindow then turns the clicks around it into a scanner's.
func TestClickFlood(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	addLinked(t, s, "q1", clk.Now(), "ida")
	clk.Advance(time.Hour)
	t0 := clk.Now()
	const n = 300
	for i := range n {
		if !mustClick(t, s, click("ida", 1, t0.Add(time.Duration(i)*100*time.Millisecond), "192.0.2.1", fmt.Sprintf("%s/%d", ua1, i))) {
			t.Fatalf("click %d not stored", i)
		}
	}
	if m := mustMessage(t, s, "ida"); m.ClicksHuman != n || !m.FirstHumanClick.Equal(t0) {
		t.Fatalf("after the flood: %+v", m)
	}
	last := t0.Add((n - 1) * 100 * time.Millisecond)
	mustClick(t, s, click("ida", 2, last.Add(50*time.Millisecond), "198.51.100.1", ua1))
	m := mustMessage(t, s, "ida")
	// link 2 and the 20 clicks of link 1 within 2s of it (the 21st is 2050ms back)
	if m.ClicksTotal != n+1 || m.ClicksHuman != n+1-21 || !m.FirstHumanClick.Equal(t0) {
		t.Fatalf("after another link: %+v", m)
	}
	checkConsistent(t, s)
}
