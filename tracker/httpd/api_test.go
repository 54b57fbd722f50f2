package httpd

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"pixelrelay/config"
	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
)

// Field lists from CONTRACT.md.
var (
	contractOpen    = []string{"tracking_id", "recipient", "subject", "message_id", "sent_at", "opened_at", "ip", "user_agent", "bot", "bot_type", "proxy", "first", "reason"}
	contractMessage = []string{"tracking_id", "recipient", "from", "subject", "message_id", "queued_at", "sent_at", "status", "last_error", "opens_total", "opens_human", "first_human_open",
		"tracked", "untracked_reason", "clicks_total", "clicks_human", "first_human_click", "account", "sent_folder"} // the last ones from "Added fields"
)

func (f *fixture) api(method, path string) (*http.Response, []byte) {
	f.t.Helper()
	return f.get(method, path, "Authorization", "Bearer "+f.keys.AdminKey())
}

// keysOf decodes one JSON object and returns its key names, sorted.
func keysOf(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// checkFields: every contract field is present, and any other field is one
// of the allowed additions.
func checkFields(t *testing.T, what string, got, contract []string, extra ...string) {
	t.Helper()
	for _, k := range contract {
		if !slices.Contains(got, k) {
			t.Errorf("%s: field %q missing (have %v)", what, k, got)
		}
	}
	for _, k := range got {
		if !slices.Contains(contract, k) && !slices.Contains(extra, k) {
			t.Errorf("%s: unexpected field %q", what, k)
		}
	}
}

func TestAPIAuth(t *testing.T) {
	f := newFixture(t, nil)
	paths := []struct{ method, path string }{
		{"GET", "/api/opens"}, {"GET", "/api/messages"}, {"GET", "/api/status"}, {"GET", "/api/queue"},
		{"POST", "/api/keys/rotate"}, {"POST", "/api/purge"}, {"GET", "/api/nope"},
	}
	bad := [][]string{
		nil,
		{"Authorization", "Bearer wrong"},
		{"Authorization", "Bearer " + f.keys.AdminKey() + "x"},
		{"Authorization", "Basic " + f.keys.AdminKey()},
		{"Authorization", f.keys.AdminKey()},
		{"Authorization", "Bearer"},
	}
	for _, p := range paths {
		for _, h := range bad {
			resp, body := f.get(p.method, p.path, h...)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s with %v: status %d", p.method, p.path, h, resp.StatusCode)
				continue
			}
			if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
			}
			var e ErrorResponse
			if err := json.Unmarshal(body, &e); err != nil || e.Error == "" || resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("401 body %s (%v)", body, err)
			}
		}
	}
	if v := f.keys.Current(); v != 1 {
		t.Errorf("an unauthorized rotate changed the key version to %d", v)
	}
	if n := len(f.st.purgeList()); n != 0 {
		t.Errorf("an unauthorized purge ran %d times", n)
	}
	// Scheme is case-insensitive; the right key works.
	resp, _ := f.get("GET", "/api/status", "Authorization", "bearer "+f.keys.AdminKey())
	if resp.StatusCode != 200 {
		t.Errorf("right key: %d", resp.StatusCode)
	}
}

func TestAPIEmptyAdminKeyLocksOut(t *testing.T) {
	st := newFakeStore()
	keys := &fakeKeys{admin: ""}
	s := New(Options{Config: config.Default, Store: st, Keys: keys, Log: quiet})
	for _, auth := range []string{"", "Bearer ", "Bearer  "} {
		req, _ := http.NewRequest("GET", "/api/status", nil)
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("auth %q with empty admin key: %d", auth, rec.Code)
		}
	}
}

func TestAPIMethods(t *testing.T) {
	f := newFixture(t, nil)
	for _, c := range []struct{ method, path, allow string }{
		{"POST", "/api/opens", "GET"}, {"DELETE", "/api/messages", "GET"}, {"POST", "/api/status", "GET"},
		{"PUT", "/api/queue", "GET"}, {"GET", "/api/keys/rotate", "POST"}, {"GET", "/api/purge", "POST"},
	} {
		resp, body := f.api(c.method, c.path)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != c.allow || !strings.Contains(string(body), `"error"`) {
			t.Errorf("%s %s: %d Allow=%q %s", c.method, c.path, resp.StatusCode, resp.Header.Get("Allow"), body)
		}
	}
	if v := f.keys.Current(); v != 1 {
		t.Errorf("GET rotate changed the key version to %d", v)
	}
	resp, body := f.api("GET", "/api/nope")
	if resp.StatusCode != 404 || !strings.Contains(string(body), `"error"`) {
		t.Errorf("unknown route: %d %s", resp.StatusCode, body)
	}
}

func TestAPIOpens(t *testing.T) {
	f := newFixture(t, nil)
	sent := t0.Add(-time.Hour)
	f.st.opens = []store.Open{
		{TrackingID: "aaaaaaaaaaaaaaaa", Recipient: "bob@example.com", Subject: "Hi", MessageID: "<m@x>", SentAt: &sent, OpenedAt: t0, IP: "192.0.2.1", UserAgent: "ua", First: true},
		{TrackingID: "aaaaaaaaaaaaaaaa", Recipient: "bob@example.com", OpenedAt: t0.Add(-time.Minute), Bot: true, BotType: "scanner"},
	}
	resp, body := f.api("GET", "/api/opens?id=AAAAAAAAAAAAAAAA&to=Bob@Example.com&since=2026-11-01")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var got OpensResponse
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Opens) != 2 || got.Opens[0].SentAt == nil || !got.Opens[0].SentAt.Equal(sent) || !got.Opens[0].First {
		t.Errorf("decoded %+v", got)
	}
	var raw struct{ Opens []json.RawMessage }
	json.Unmarshal(body, &raw)
	for _, o := range raw.Opens {
		checkFields(t, "OPEN", keysOf(t, o), contractOpen, "country", "city")
	}
	if !strings.Contains(string(body), `"message_id":"<m@x>"`) {
		t.Errorf("message_id escaped: %s", body)
	}
	if !strings.Contains(string(body), `"opened_at":"2026-11-22T12:00:00Z"`) {
		t.Errorf("opened_at not RFC 3339 UTC: %s", body)
	}
	q := f.st.openQ[len(f.st.openQ)-1]
	want := store.OpenQuery{ID: "aaaaaaaaaaaaaaaa", To: "Bob@Example.com", Since: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Limit: 100}
	if q != want {
		t.Errorf("query %+v, want %+v", q, want)
	}

	// No opens: [] not null.
	f.st.opens = nil
	_, body = f.api("GET", "/api/opens")
	if strings.TrimSpace(string(body)) != `{"opens":[]}` {
		t.Errorf("empty: %s", body)
	}
}

func TestAPIMessages(t *testing.T) {
	f := newFixture(t, nil)
	first := t0
	f.st.messages = []store.Message{{TrackingID: "aaaaaaaaaaaaaaaa", Recipient: "bob@example.com", From: "me@example.com", QueuedAt: t0, Status: "sent", OpensTotal: 2, OpensHuman: 1, FirstHumanOpen: &first}}
	f.api("GET", "/api/messages?id=aaaaaaaaaaaaaaaa")
	if q := f.st.msgQ[len(f.st.msgQ)-1]; q.ID != "aaaaaaaaaaaaaaaa" {
		t.Errorf("id not passed to the store: %+v", q)
	}
	resp, body := f.api("GET", "/api/messages?to=bob@example.com&unopened=true&limit=7&since=24h")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var got MessagesResponse
	if err := json.Unmarshal(body, &got); err != nil || len(got.Messages) != 1 || got.Messages[0].OpensHuman != 1 {
		t.Fatalf("decoded %+v (%v)", got, err)
	}
	var raw struct{ Messages []json.RawMessage }
	json.Unmarshal(body, &raw)
	checkFields(t, "MESSAGE", keysOf(t, raw.Messages[0]), contractMessage)
	if !strings.Contains(string(body), `"sent_at":null`) {
		t.Errorf("unsent copy's sent_at is not null: %s", body)
	}
	q := f.st.msgQ[len(f.st.msgQ)-1]
	want := store.MessageQuery{To: "bob@example.com", Unopened: true, Limit: 7, Since: t0.Add(-24 * time.Hour)}
	if q != want {
		t.Errorf("query %+v, want %+v", q, want)
	}
	f.st.messages = nil
	_, body = f.api("GET", "/api/messages")
	if strings.TrimSpace(string(body)) != `{"messages":[]}` {
		t.Errorf("empty: %s", body)
	}
}

func TestAPIQueryParameters(t *testing.T) {
	f := newFixture(t, nil)
	rows := []struct {
		query     string
		code      int
		limit     int
		since     time.Time
		errSubstr string
	}{
		{query: "", code: 200, limit: 100},
		{query: "limit=1", code: 200, limit: 1},
		{query: "limit=500", code: 200, limit: 500},
		{query: "limit=501", code: 200, limit: 500},
		{query: "limit=99999999999999999999999", code: 200, limit: 500},
		{query: "limit=0", code: 400, errSubstr: "limit"},
		{query: "limit=-5", code: 400, errSubstr: "limit"},
		{query: "limit=ten", code: 400, errSubstr: "limit"},
		{query: "since=2026-11-20T10:00:00%2B02:00", code: 200, limit: 100, since: time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)},
		{query: "since=2026-11-20", code: 200, limit: 100, since: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)},
		{query: "since=7d", code: 200, limit: 100, since: t0.Add(-7 * 24 * time.Hour)},
		{query: "since=90m", code: 200, limit: 100, since: t0.Add(-90 * time.Minute)},
		{query: "since=yesterday", code: 400, errSubstr: errSince},
		{query: "since=2026-13-01", code: 400, errSubstr: errSince},
		{query: "since=-3d", code: 400, errSubstr: errSince},
	}
	for _, row := range rows {
		for _, route := range []string{"/api/opens", "/api/messages"} {
			resp, body := f.api("GET", route+"?"+row.query)
			if resp.StatusCode != row.code {
				t.Errorf("%s?%s: %d %s", route, row.query, resp.StatusCode, body)
				continue
			}
			if row.code != 200 {
				var e ErrorResponse
				if json.Unmarshal(body, &e); !strings.Contains(e.Error, row.errSubstr) {
					t.Errorf("%s?%s: error %q", route, row.query, e.Error)
				}
				continue
			}
			var limit int
			var since time.Time
			if route == "/api/opens" {
				q := f.st.openQ[len(f.st.openQ)-1]
				limit, since = q.Limit, q.Since
			} else {
				q := f.st.msgQ[len(f.st.msgQ)-1]
				limit, since = q.Limit, q.Since
			}
			if limit != row.limit || !since.Equal(row.since) {
				t.Errorf("%s?%s: limit %d since %v, want %d %v", route, row.query, limit, since, row.limit, row.since)
			}
		}
	}
	resp, body := f.api("GET", "/api/messages?unopened=maybe")
	if resp.StatusCode != 400 || !strings.Contains(string(body), "unopened") {
		t.Errorf("bad unopened: %d %s", resp.StatusCode, body)
	}
}

func TestAPIStatusQueueRotate(t *testing.T) {
	f := newFixture(t, func(c *config.Config) {
		c.Path = "/etc/pixelrelay.toml"
		c.Upstream.URL = "smtps://alice:secret@smtp.example.com:465"
	})
	f.srv.opt.Queue = fakeQueue{
		{QueueID: "q1", TrackingID: "aaaaaaaaaaaaaaaa", From: "me@example.com", Recipients: []string{"bob@example.com"}, Status: "queued", QueuedAt: t0},
		{QueueID: "q2", Status: "deferred", Attempts: 3, LastError: "451 try later"},
	}
	resp, body := f.api("GET", "/api/status")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var st StatusResponse
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	if st.Version != "test" || st.ConfigFile != "/etc/pixelrelay.toml" || st.TrackingKeyVersion != 1 ||
		st.Queue["queued"] != 1 || st.Queue["deferred"] != 1 || st.Database.SizeBytes != 4096 || st.SMTPListen != "127.0.0.1:2525" {
		t.Errorf("status %+v", st)
	}
	if strings.Contains(string(body), "secret") || !strings.Contains(st.Upstream, "smtp.example.com:465") {
		t.Errorf("upstream %q (body leaks credentials: %v)", st.Upstream, strings.Contains(string(body), "secret"))
	}
	checkFields(t, "status", keysOf(t, body), []string{"version", "config_file", "data_dir", "smtp_listen", "http_listen", "upstream", "tracking_key_version", "queue", "database", "webhooks", "accounts"})
	if len(st.Accounts) != 1 || st.Accounts[0].Name != "default" || st.Accounts[0].Queue["queued"] != 1 || st.Accounts[0].Queue["deferred"] != 1 {
		t.Errorf("status accounts %+v, want default with the queue", st.Accounts)
	}

	resp, body = f.api("GET", "/api/queue")
	var q QueueResponse
	if err := json.Unmarshal(body, &q); err != nil || resp.StatusCode != 200 || len(q.Queue) != 2 || q.Queue[1].Attempts != 3 {
		t.Errorf("queue %d %+v %v", resp.StatusCode, q, err)
	}
	if !strings.Contains(string(body), `"recipients":[]`) {
		t.Errorf("nil recipients not []: %s", body)
	}
	f.srv.opt.Queue = nil
	_, body = f.api("GET", "/api/queue")
	if strings.TrimSpace(string(body)) != `{"queue":[]}` {
		t.Errorf("no queue: %s", body)
	}

	_, oldTok := f.mint() // made with key version 1
	resp, body = f.api("POST", "/api/keys/rotate")
	var rot RotateResponse
	if err := json.Unmarshal(body, &rot); err != nil || resp.StatusCode != 200 || rot.Version != 2 || f.keys.Current() != 2 {
		t.Errorf("rotate: %d %s", resp.StatusCode, body)
	}
	// A token of version 1 keeps working after the rotation; new ones name version 2.
	f.get("GET", "/o/"+oldTok+".gif")
	_, newTok := f.mint()
	f.get("GET", "/o/"+newTok+".gif")
	if n := len(f.st.hitList()); n != 2 {
		t.Errorf("after rotation %d opens recorded, want 2", n)
	}
}

func TestAPIPurge(t *testing.T) {
	f := newFixture(t, func(c *config.Config) { c.Tracking.Retention = config.Duration(30 * 24 * time.Hour) })
	resp, body := f.api("POST", "/api/purge")
	var res PurgeResponse
	if err := json.Unmarshal(body, &res); err != nil || resp.StatusCode != 200 || res.Deleted != 3 || !res.Compacted {
		t.Fatalf("purge: %d %s", resp.StatusCode, body)
	}
	checkFields(t, "purge", keysOf(t, body), []string{"deleted", "size_before", "size_after", "compacted", "duration_ms"}, "deleted_copies", "deleted_clicks")
	resp, _ = f.api("POST", "/api/purge?older_than=90d")
	if resp.StatusCode != 200 {
		t.Fatalf("older_than=90d: %d", resp.StatusCode)
	}
	resp, _ = f.api("POST", "/api/purge?older_than=36h")
	if resp.StatusCode != 200 {
		t.Fatalf("older_than=36h: %d", resp.StatusCode)
	}
	got := f.st.purgeList()
	want := []time.Time{t0.Add(-30 * 24 * time.Hour), t0.Add(-90 * 24 * time.Hour), t0.Add(-36 * time.Hour)}
	if !slices.EqualFunc(got, want, time.Time.Equal) {
		t.Errorf("purged before %v, want %v", got, want)
	}
	for _, bad := range []string{"soon", "0", "-5d", "0d", "1d12h"} {
		resp, body := f.api("POST", "/api/purge?older_than="+bad)
		if resp.StatusCode != 400 || !strings.Contains(string(body), "older_than") {
			t.Errorf("older_than=%s: %d %s", bad, resp.StatusCode, body)
		}
	}
	if n := len(f.st.purgeList()); n != 3 {
		t.Errorf("bad requests purged: %d purges", n)
	}
}

func TestPurgeOneAtATime(t *testing.T) {
	f := newFixture(t, nil)
	f.st.purgeWait = make(chan struct{})
	f.st.purgeIn = make(chan struct{}, 1)
	errc := make(chan error, 1)
	go func() {
		_, err := f.srv.Purge(context.Background(), time.Hour)
		errc <- err
	}()
	<-f.st.purgeIn
	resp, body := f.api("POST", "/api/purge")
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), "already running") {
		t.Errorf("second purge: %d %s", resp.StatusCode, body)
	}
	close(f.st.purgeWait)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestRunPurge(t *testing.T) {
	st := newFakeStore()
	cfg := config.Default()
	cfg.Tracking.Retention = config.Duration(48 * time.Hour)
	s := New(Options{
		Config: func() *config.Config { return cfg }, Store: st, Keys: &fakeKeys{admin: "k"}, Log: quiet,
		Now: func() time.Time { return t0 }, PurgeDelay: 5 * time.Millisecond, PurgeEvery: 20 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.RunPurge(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(st.purgeList()) < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("RunPurge returned %v", err)
	}
	got := st.purgeList()
	if len(got) < 3 {
		t.Fatalf("%d purges, want at least 3", len(got))
	}
	for _, b := range got {
		if !b.Equal(t0.Add(-48 * time.Hour)) {
			t.Errorf("purged before %v, want now - retention", b)
		}
	}
}

// damagedQueue is a queue that also counts damaged spool entries.
type damagedQueue struct {
	fakeQueue
	damaged int
}

func (q damagedQueue) Damaged() int { return q.damaged }

// TestAPIStatusDamaged: the queue section of /api/status carries the
// number of damaged spool entries when the queue counts them (zero
// included), next to the waiting copies, and nothing when it cannot.
func TestAPIStatusDamaged(t *testing.T) {
	waiting := fakeQueue{{QueueID: "q1", Status: "deferred", Attempts: 2}}
	for _, tc := range []struct {
		name  string
		queue record.Queue
		want  map[string]int
	}{
		{"two damaged", damagedQueue{waiting, 2}, map[string]int{"queued": 0, "deferred": 1, "damaged": 2}},
		{"none damaged", damagedQueue{waiting, 0}, map[string]int{"queued": 0, "deferred": 1, "damaged": 0}},
		{"queue cannot count", waiting, map[string]int{"queued": 0, "deferred": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.srv.opt.Queue = tc.queue
			resp, body := f.api("GET", "/api/status")
			var st struct {
				Queue map[string]int `json:"queue"`
			}
			if err := json.Unmarshal(body, &st); err != nil || resp.StatusCode != 200 {
				t.Fatalf("%d %s (%v)", resp.StatusCode, body, err)
			}
			if !maps.Equal(st.Queue, tc.want) {
				t.Errorf("queue section %v, want %v", st.Queue, tc.want)
			}
		})
	}
}
