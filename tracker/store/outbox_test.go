package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"pixelrelay/tracker/record"
	"pixelrelay/tracker/webhook"
)

// wakeLog records the store's wake calls.
type wakeLog struct {
	mu    sync.Mutex
	names []string
}

func (w *wakeLog) wake(names []string) {
	w.mu.Lock()
	w.names = append(w.names, names...)
	w.mu.Unlock()
}

func (w *wakeLog) got() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.names...)
}

func pending(t *testing.T, s *Store, name string) []webhook.Event {
	t.Helper()
	evs, err := s.PendingEvents(name, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func types(evs []webhook.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

// body decodes an event's JSON.
func body(t *testing.T, ev webhook.Event) (typ string, ts time.Time, data map[string]any) {
	t.Helper()
	var b struct {
		Type      string         `json:"type"`
		Timestamp time.Time      `json:"timestamp"`
		Data      map[string]any `json:"data"`
	}
	if err := json.Unmarshal(ev.Body, &b); err != nil {
		t.Fatalf("event body %s: %v", ev.Body, err)
	}
	return b.Type, b.Timestamp, b.Data
}

// TestEventsWithTheirCause: delivery states and opens write their events
// in the same commit, per endpoint as it subscribed, in order, one
// webhook-id per event shared by the endpoints.
func TestEventsWithTheirCause(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now, DedupWindow: time.Hour})
	var wl wakeLog
	s.SetWebhooks([]webhook.Target{
		{Name: "all", URL: "https://a.example/h", HumanOnly: true},
		{Name: "machines", URL: "https://m.example/h", Events: []string{webhook.Opened, webhook.Bounced}},
	}, wl.wake)
	q := clk.Now()
	addCopy(t, s, "id1", "Bob@Example.com", q)
	addCopy(t, s, "id2", "carol@example.com", q)

	steps := []func() error{
		func() error { return s.Update("id1", record.StatusDeferred, "451 later", clk.Now()) },
		func() error { return s.Update("id1", record.StatusDeferred, "451 again", clk.Now()) }, // no second event
		func() error { return s.Update("id1", record.StatusSent, "", clk.Now()) },
		func() error { return s.Update("id1", record.StatusSent, "", clk.Now()) }, // a resend after a crash: none
		func() error {
			_, err := s.Record(Hit{TrackingID: "id1", IP: "17.1.2.3", UserAgent: "Mozilla/5.0", Bot: true, BotType: "apple_mpp"})
			return err
		},
		func() error {
			_, err := s.Record(Hit{TrackingID: "id1", IP: "192.0.2.7", UserAgent: "Thunderbird"})
			return err
		},
		func() error {
			_, err := s.Record(Hit{TrackingID: "id1", IP: "192.0.2.7", UserAgent: "Thunderbird"}) // duplicate: not stored, no event
			return err
		},
		func() error { return s.Update("id2", record.StatusFailed, "550 no such user", clk.Now()) },
		func() error {
			_, err := s.Record(Hit{TrackingID: "unknown", IP: "192.0.2.7", UserAgent: "x"})
			return err
		},
	}
	for i, step := range steps {
		clk.Advance(time.Minute)
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	all := pending(t, s, "all")
	if want := []string{webhook.Deferred, webhook.Sent, webhook.Opened, webhook.Bounced}; !slices.Equal(types(all), want) {
		t.Fatalf("endpoint all got %v, want %v", types(all), want)
	}
	machines := pending(t, s, "machines")
	if want := []string{webhook.Opened, webhook.Opened, webhook.Bounced}; !slices.Equal(types(machines), want) {
		t.Fatalf("endpoint machines got %v, want %v", types(machines), want)
	}
	// The human open and the bounce are the same events for both.
	if all[2].ID != machines[1].ID || all[3].ID != machines[2].ID || all[2].ID == all[3].ID {
		t.Errorf("ids: all %s %s, machines %s %s", all[2].ID, all[3].ID, machines[1].ID, machines[2].ID)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Seq <= all[i-1].Seq {
			t.Errorf("seq not increasing: %d after %d", all[i].Seq, all[i-1].Seq)
		}
	}

	typ, ts, d := body(t, all[0])
	if typ != webhook.Deferred || !ts.Equal(q.Add(time.Minute)) || d["status"] != "deferred" || d["last_error"] != "451 later" ||
		d["recipient"] != "Bob@Example.com" || d["tracking_id"] != "id1" || d["message_id"] != "<m-id1@example.org>" {
		t.Errorf("deferred event: %s %v %v", typ, ts, d)
	}
	if _, _, d := body(t, all[1]); d["status"] != "sent" || d["sent_at"] == nil {
		t.Errorf("sent event data: %v", d)
	}
	_, ts, d = body(t, all[2])
	if d["ip"] != "192.0.2.7" || d["user_agent"] != "Thunderbird" || d["bot"] != false || d["first"] != true ||
		d["opened_at"] == nil || d["from"] != "alice@example.org" || d["status"] != "sent" || d["opens_human"] != 1.0 ||
		d["opens_total"] != 2.0 || d["first_human_open"] != d["opened_at"] || !ts.Equal(q.Add(6*time.Minute)) {
		t.Errorf("opened event data: %v", d)
	}
	if _, _, d := body(t, machines[0]); d["bot"] != true || d["bot_type"] != "apple_mpp" || d["first"] != false {
		t.Errorf("machine open data: %v", d)
	}
	if _, _, d := body(t, all[3]); d["status"] != "failed" || d["last_error"] != "550 no such user" || d["tracking_id"] != "id2" {
		t.Errorf("bounced event data: %v", d)
	}
	if !strings.Contains(string(all[2].Body), `"message_id":"<m-id1@example.org>"`) {
		t.Errorf("HTML-escaped or missing message_id: %s", all[2].Body)
	}
	// Every wake named an endpoint that had new events.
	woken := wl.got()
	if len(woken) == 0 || !slices.Contains(woken, "all") || !slices.Contains(woken, "machines") {
		t.Errorf("woken %v", woken)
	}
}

// TestOpenedDataKeys: the open's fields, then its message's other fields,
// each once.
func TestOpenedDataKeys(t *testing.T) {
	b, err := withMessage(Open{TrackingID: "x", Recipient: "r"}, Message{TrackingID: "x", Recipient: "r", From: "f", Status: "sent"})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := objectFields(b)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, f := range fs {
		keys = append(keys, f.key)
	}
	// The OPEN's own fields first, in its order; then the MESSAGE's that
	// the OPEN lacks, in theirs.
	fieldsOf := func(v any) []string {
		b, _ := marshal(v)
		fs, err := objectFields(b)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, f := range fs {
			out = append(out, f.key)
		}
		return out
	}
	open := fieldsOf(Open{})
	want := append([]string(nil), open...)
	for _, k := range fieldsOf(Message{}) {
		if !slices.Contains(open, k) {
			want = append(want, k)
		}
	}
	if !slices.Equal(keys, want) || !slices.Contains(keys, "from") || !slices.Contains(keys, "opened_at") {
		t.Errorf("keys = %v\nwant %v", keys, want)
	}
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k] {
			t.Errorf("key %s twice", k)
		}
		seen[k] = true
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || m["from"] != "f" || m["status"] != "sent" {
		t.Errorf("%s: %v", b, err)
	}
}

// TestNoEndpointsNoEvents: without endpoints nothing is written.
func TestNoEndpointsNoEvents(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	addCopy(t, s, "id1", "bob@example.com", clk.Now())
	s.SetWebhooks([]webhook.Target{{Name: "a", URL: "https://a/"}}, nil)
	s.SetWebhooks(nil, nil) // removed again
	mustRecord(t, s, Hit{TrackingID: "id1", IP: "192.0.2.1", UserAgent: "x"})
	if err := s.Update("id1", record.StatusSent, "", clk.Now()); err != nil {
		t.Fatal(err)
	}
	if evs := pending(t, s, "a"); len(evs) != 0 {
		t.Fatalf("events without endpoints: %v", types(evs))
	}
}

// TestDisabledEndpoint: a 410 drops the backlog and stops new events for
// that URL; a new URL takes events again. Delivered and expired events
// are deleted.
func TestDisabledEndpoint(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	s.SetWebhooks([]webhook.Target{{Name: "a", URL: "https://old/"}}, nil)
	for i := range 5 {
		id := string(rune('a'+i)) + "x"
		addCopy(t, s, id, "bob@example.com", clk.Now())
		clk.Advance(time.Hour)
		if err := s.Update(id, record.StatusSent, "", clk.Now()); err != nil {
			t.Fatal(err)
		}
	}
	evs := pending(t, s, "a")
	if len(evs) != 5 {
		t.Fatalf("%d events, want 5", len(evs))
	}
	// One delivered; those made more than 90 minutes ago expire.
	st := webhook.State{URL: "https://old/", Delivered: 1, Failures: 1}
	expired, err := s.RecordWebhook("a", []uint64{evs[0].Seq}, clk.Now().Add(-90*time.Minute), st)
	if err != nil || expired != 2 {
		t.Fatalf("RecordWebhook: expired %d, %v; want 2", expired, err)
	}
	if got := pending(t, s, "a"); len(got) != 2 || got[0].Seq != evs[3].Seq {
		t.Fatalf("after delivery and expiry: %d events", len(got))
	}
	if got, _ := s.WebhookState("a"); got.Expired != 2 || got.Delivered != 1 || got.Failures != 1 || got.URL != "https://old/" {
		t.Fatalf("state = %+v", got)
	}
	if n, oldest, err := s.WebhookBacklog("a"); n != 2 || !oldest.Equal(evs[3].Created) || err != nil {
		t.Fatalf("backlog = %d, %v, %v", n, oldest, err)
	}

	dropped, err := s.DisableWebhook("a", webhook.State{URL: "https://old/", DisabledReason: "410 Gone"})
	if err != nil || dropped != 2 {
		t.Fatalf("DisableWebhook = %d, %v", dropped, err)
	}
	addCopy(t, s, "new", "bob@example.com", clk.Now())
	if err := s.Update("new", record.StatusSent, "", clk.Now()); err != nil {
		t.Fatal(err)
	}
	if got := pending(t, s, "a"); len(got) != 0 {
		t.Fatalf("a disabled endpoint got %d events", len(got))
	}
	if got, _ := s.WebhookState("a"); !got.Disabled || got.Dropped != 2 || got.DisabledReason != "410 Gone" {
		t.Fatalf("state = %+v", got)
	}
	s.SetWebhooks([]webhook.Target{{Name: "a", URL: "https://new/"}}, nil)
	if err := s.Update("new", record.StatusFailed, "550", clk.Now()); err != nil {
		t.Fatal(err)
	}
	if got := pending(t, s, "a"); len(got) != 1 || got[0].Type != webhook.Bounced {
		t.Fatalf("new URL: %v", types(got))
	}
}

// TestPurgeWebhookEvents: events of endpoints no longer configured go when
// old; configured endpoints' events stay whatever their age.
func TestPurgeWebhookEvents(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	s.SetWebhooks([]webhook.Target{{Name: "gone"}, {Name: "kept"}, {Name: "k"}}, nil)
	for i := range 6 {
		id := string(rune('a'+i)) + "x"
		addCopy(t, s, id, "bob@example.com", clk.Now())
		if err := s.Update(id, record.StatusSent, "", clk.Now()); err != nil {
			t.Fatal(err)
		}
		clk.Advance(24 * time.Hour)
	}
	n, err := s.PurgeWebhookEvents(clk.Now().Add(-72*time.Hour), func(name string) bool { return name != "gone" })
	if err != nil || n != 3 {
		t.Fatalf("PurgeWebhookEvents = %d, %v; want 3", n, err)
	}
	for name, want := range map[string]int{"gone": 3, "kept": 6, "k": 6} {
		if got := len(pending(t, s, name)); got != want {
			t.Errorf("%s: %d events, want %d", name, got, want)
		}
	}
}

// TestEventsSurviveReopen: committed events are in the file.
func TestEventsSurviveReopen(t *testing.T) {
	clk := newClock()
	path := t.TempDir() + "/p.db"
	s, err := OpenStore(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	s.SetWebhooks([]webhook.Target{{Name: "a", URL: "https://a/"}}, nil)
	addCopy(t, s, "id1", "bob@example.com", clk.Now())
	if err := s.Update("id1", record.StatusSent, "", clk.Now()); err != nil {
		t.Fatal(err)
	}
	before := pending(t, s, "a")
	st := webhook.State{URL: "https://a/", LastError: "500", Failures: 3, NextAttempt: clk.Now().Add(time.Hour)}
	if _, err := s.RecordWebhook("a", nil, time.Time{}, st); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = OpenStore(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if after := pending(t, s, "a"); !reflect.DeepEqual(after, before) || len(after) != 1 {
		t.Fatalf("after reopen %+v, before %+v", after, before)
	}
	if got, _ := s.WebhookState("a"); !reflect.DeepEqual(got, st) {
		t.Fatalf("state after reopen %+v, want %+v", got, st)
	}
}

func FuzzDecodeOutbox(f *testing.F) {
	f.Add(encodeHookEvent(&webhook.Event{ID: "msg_x", Type: webhook.Sent, Created: time.Unix(5, 0), Body: []byte(`{}`)}))
	f.Add(encodeHookState(&webhook.State{URL: "https://x/", Disabled: true, Failures: 3, Delivered: 9, LastSuccess: time.Unix(9, 0)}))
	f.Add([]byte{1, 1, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		if ev, err := decodeHookEvent(b); err == nil {
			if got, err := decodeHookEvent(encodeHookEvent(&ev)); err != nil || !reflect.DeepEqual(got, ev) {
				t.Fatalf("event round trip: %+v vs %+v (%v)", got, ev, err)
			}
		}
		if st, err := decodeHookState(b); err == nil && b != nil {
			if got, err := decodeHookState(encodeHookState(&st)); err != nil || !reflect.DeepEqual(got, st) {
				t.Fatalf("state round trip: %+v vs %+v (%v)", got, st, err)
			}
		}
	})
}

// TestFinalStateAgain: a final state reported again exactly (the queue does
// that after a restart) changes nothing: no webhook event, no second
// delivery event, the same sent time.
func TestFinalStateAgain(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	s.SetWebhooks([]webhook.Target{{Name: "a", URL: "https://a/"}}, nil)
	addCopy(t, s, "id1", "bob@example.com", clk.Now())
	addCopy(t, s, "id2", "carol@example.com", clk.Now())
	sentAt := clk.Now().Add(time.Minute)
	for range 3 {
		clk.Advance(time.Hour)
		if err := s.Update("id1", record.StatusSent, "", sentAt); err != nil {
			t.Fatal(err)
		}
		if err := s.Update("id2", record.StatusFailed, "550 no", time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := types(pending(t, s, "a")); !slices.Equal(got, []string{webhook.Sent, webhook.Bounced}) {
		t.Errorf("events %v", got)
	}
	for _, id := range []string{"id1", "id2"} {
		if evs, err := s.Events(id); err != nil || len(evs) != 1 {
			t.Errorf("%s: delivery events %+v, %v", id, evs, err)
		}
	}
	if c, _, _ := s.Copy("id1"); !c.SentAt.Equal(sentAt) {
		t.Errorf("SentAt = %v, want %v", c.SentAt, sentAt)
	}
	// A second delivery (sent again later, after a crash) is news for the
	// timeline, but not a second message.sent.
	if err := s.Update("id1", record.StatusSent, "", clk.Now()); err != nil {
		t.Fatal(err)
	}
	if evs, _ := s.Events("id1"); len(evs) != 2 {
		t.Errorf("delivery events after a real second delivery: %+v", evs)
	}
	if n := len(pending(t, s, "a")); n != 2 {
		t.Errorf("%d webhook events, want 2", n)
	}
}

// BenchmarkEnqueueWebhooks is BenchmarkEnqueue with two endpoints that
// take every open: each stored open also writes its message.opened event
// (JSON built and stored twice) in the same transaction.
func BenchmarkEnqueueWebhooks(b *testing.B) {
	s, ids := benchStore(b)
	s.SetWebhooks([]webhook.Target{{Name: "crm", URL: "https://a/"}, {Name: "sheet", URL: "https://b/"}}, func([]string) {})
	b.SetParallelism(25)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Enqueue(benchHit(ids)); err != nil {
				b.Fatal(err)
			}
		}
	})
	if err := s.Flush(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if n, _, _ := s.WebhookBacklog("crm"); n != b.N {
		b.Fatalf("%d events for %d opens", n, b.N)
	}
}

type field struct {
	key string
	raw json.RawMessage
}

// objectFields lists the members of a JSON object in their order.
func objectFields(b []byte) ([]field, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object: %.40s", b)
	}
	var fs []field
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		fs = append(fs, field{key: t.(string), raw: raw})
	}
	return fs, nil
}
