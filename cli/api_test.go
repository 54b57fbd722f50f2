package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"pixelrelay/internal/testport"
	"pixelrelay/tracker/httpd"
	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
)

const testKey = "test-admin-key-0123456789"

func tp(t time.Time) *time.Time { return &t }

// fakeAPI is an admin API serving canned bodies built from the real
// response types, remembering the requests it got.
type fakeAPI struct {
	mu       sync.Mutex
	requests []*http.Request
	key      string // the admin key; testKey when empty
	// byID makes /api/messages honour ?id= (a server that has the filter).
	byID     bool
	opens    []store.Open
	clicks   []store.Click
	messages []store.Message
	queue    []record.QueueEntry
	status   httpd.StatusResponse
	purged   store.PurgeResult
	reclass  store.ReclassifyResult
	rotated  int
	// fail, when set, is answered to every /api request.
	failCode int
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.Clone(r.Context()))
	key := f.key
	f.mu.Unlock()
	if key == "" {
		key = testKey
	}
	if r.URL.Path == "/healthz" {
		writeBody(w, 200, map[string]string{"status": "ok"})
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+key {
		writeBody(w, 401, httpd.ErrorResponse{Error: "missing or wrong admin key"})
		return
	}
	if f.failCode != 0 {
		writeBody(w, f.failCode, httpd.ErrorResponse{Error: "database is busy\n(try later)"})
		return
	}
	q := r.URL.Query()
	if id := q.Get("id"); id != "" && !f.known(id) {
		writeBody(w, 404, httpd.ErrorResponse{Error: "no tracked copy has the id " + id})
		return
	}
	switch r.Method + " " + r.URL.Path {
	case "GET /api/opens":
		writeBody(w, 200, httpd.OpensResponse{Opens: f.filterOpens(q)})
	case "GET /api/clicks":
		writeBody(w, 200, httpd.ClicksResponse{Clicks: f.filterClicks(q)})
	case "GET /api/messages":
		msgs := f.messages
		if f.byID && q.Get("id") != "" {
			msgs = nil
			for _, m := range f.messages {
				if m.TrackingID == q.Get("id") {
					msgs = append(msgs, m)
				}
			}
		}
		if n, err := strconv.Atoi(q.Get("limit")); err == nil && n < len(msgs) {
			msgs = msgs[:n]
		}
		writeBody(w, 200, httpd.MessagesResponse{Messages: msgs})
	case "GET /api/queue":
		writeBody(w, 200, httpd.QueueResponse{Queue: f.queue})
	case "GET /api/status":
		writeBody(w, 200, f.status)
	case "POST /api/keys/rotate":
		writeBody(w, 200, httpd.RotateResponse{Version: f.rotated})
	case "POST /api/purge":
		writeBody(w, 200, httpd.PurgeResponse(f.purged))
	case "POST /api/dashboard/login":
		writeBody(w, 200, httpd.DashboardLoginResponse{Path: "/ui/login?token=fake", ExpiresAt: testNow.Add(5 * time.Minute)})
	case "POST /api/reclassify":
		writeBody(w, 200, httpd.ReclassifyResponse(f.reclass))
	case "GET /api/webhooks":
		writeBody(w, 200, httpd.WebhooksResponse{Webhooks: f.status.Webhooks})
	default:
		writeBody(w, 404, httpd.ErrorResponse{Error: "no such route"})
	}
}

// known reports whether a copy has the id, as the real server's 404 does.
func (f *fakeAPI) known(id string) bool {
	for _, o := range f.opens {
		if o.TrackingID == id {
			return true
		}
	}
	for _, c := range f.clicks {
		if c.TrackingID == id {
			return true
		}
	}
	for _, m := range f.messages {
		if m.TrackingID == id {
			return true
		}
	}
	return false
}

func (f *fakeAPI) filterOpens(q url.Values) []store.Open {
	out := []store.Open{}
	for _, o := range f.opens {
		if id := q.Get("id"); id != "" && o.TrackingID != id {
			continue
		}
		if to := q.Get("to"); to != "" && !strings.EqualFold(o.Recipient, to) {
			continue
		}
		out = append(out, o)
	}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n < len(out) {
		out = out[:n]
	}
	return out
}

func (f *fakeAPI) filterClicks(q url.Values) []store.Click {
	out := []store.Click{}
	for _, c := range f.clicks {
		if id := q.Get("id"); id != "" && c.TrackingID != id {
			continue
		}
		if to := q.Get("to"); to != "" && !strings.EqualFold(c.Recipient, to) {
			continue
		}
		out = append(out, c)
	}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n < len(out) {
		out = out[:n]
	}
	return out
}

func (f *fakeAPI) last() *http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[len(f.requests)-1]
}

func (f *fakeAPI) find(path string) *http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.requests {
		if r.URL.Path == path {
			return r
		}
	}
	return nil
}

func writeBody(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// sampleAPI is a fake server with two copies and their opens.
func sampleAPI() *fakeAPI {
	sent := testNow.Add(-4 * time.Hour)
	return &fakeAPI{
		opens: []store.Open{
			{TrackingID: "k7q2m4xwah3bdf5a", Recipient: "bob@example.com", Subject: "Quarterly numbers", MessageID: "<a@x>",
				SentAt: &sent, OpenedAt: testNow.Add(-1 * time.Hour), IP: "203.0.113.9",
				UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
				Reason:    "no machine signature"},
			{TrackingID: "k7q2m4xwah3bdf5a", Recipient: "bob@example.com", Subject: "Quarterly numbers", MessageID: "<a@x>",
				SentAt: &sent, OpenedAt: testNow.Add(-2 * time.Hour), IP: "66.249.84.1",
				UserAgent: "Mozilla/5.0 (via ggpht.com GoogleImageProxy)", Proxy: "gmail", First: true, Reason: "user agent: GoogleImageProxy"},
			{TrackingID: "k7q2m4xwah3bdf5a", Recipient: "bob@example.com", Subject: "Quarterly numbers", MessageID: "<a@x>",
				SentAt: &sent, OpenedAt: testNow.Add(-3*time.Hour - 50*time.Minute), IP: "17.58.0.1",
				UserAgent: "Mozilla/5.0", Bot: true, BotType: "apple_mpp", Reason: "network: Apple 17.0.0.0/8"},
			{TrackingID: "p7z6y5x4cdefghij", Recipient: "carol@example.org", Subject: "Lunch \x1b[2J on Friday?", MessageID: "<b@x>",
				SentAt: &sent, OpenedAt: testNow.Add(-30 * time.Minute), IP: "198.51.100.4", UserAgent: "Thunderbird"},
		},
		clicks: []store.Click{
			{TrackingID: "k7q2m4xwah3bdf5a", Recipient: "bob@example.com", Subject: "Quarterly numbers",
				URL: "https://example.com/report?q=4", Link: 2, ClickedAt: testNow.Add(-50 * time.Minute), IP: "203.0.113.9",
				UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0", Reason: "no machine signature", First: true},
			{TrackingID: "k7q2m4xwah3bdf5a", Recipient: "bob@example.com", Subject: "Quarterly numbers",
				Link: 0, ClickedAt: testNow.Add(-3*time.Hour - 59*time.Minute), IP: "40.107.1.2", UserAgent: "Mozilla/5.0",
				Bot: true, BotType: "scanner", Reason: "honeypot: fetched the hidden link no reader can see"},
		},
		messages: []store.Message{
			{TrackingID: "d4e5f6g7abcdefgh", Recipient: "dave@example.com", From: "me@example.net", Subject: "Invoice 42",
				MessageID: "<c@x>", QueuedAt: testNow.Add(-10 * time.Minute), Status: "deferred",
				LastError: "451 4.7.0 try again later", Tracked: true},
			{TrackingID: "k7q2m4xwah3bdf5a", Recipient: "bob@example.com", From: "me@example.net", Subject: "Quarterly numbers",
				MessageID: "<a@x>", QueuedAt: sent, SentAt: &sent, Status: "sent", OpensTotal: 3, OpensHuman: 2,
				FirstHumanOpen: tp(testNow.Add(-2 * time.Hour)), Tracked: true,
				ClicksTotal: 2, ClicksHuman: 1, FirstHumanClick: tp(testNow.Add(-50 * time.Minute))},
			{Recipient: "me@example.net", From: "me@example.net", Subject: "Quarterly numbers",
				MessageID: "<a@x>", QueuedAt: sent, SentAt: &sent, Status: "sent", UntrackedReason: "sender"},
		},
		queue: []record.QueueEntry{
			{QueueID: "q1", TrackingID: "d4e5f6g7abcdefgh", From: "me@example.net", Recipients: []string{"dave@example.com"},
				Status: "deferred", Attempts: 3, QueuedAt: testNow.Add(-10 * time.Minute),
				NextAttempt: testNow.Add(5 * time.Minute), LastError: "451 4.7.0 try again later"},
			{QueueID: "q2", From: "me@example.net", Recipients: []string{"x@example.com", "y@example.com"},
				Status: "queued", QueuedAt: testNow.Add(-time.Minute), NextAttempt: testNow.Add(-time.Second)},
		},
		status: httpd.StatusResponse{
			Version: "9.9.9", ConfigFile: "/etc/pixelrelay.toml", DataDir: "/var/lib/pixelrelay",
			SMTPListen: "127.0.0.1:2525", HTTPListen: "127.0.0.1:8025", Upstream: "smtps://smtp.gmail.com:465",
			TrackingKeyVersion: 3, Queue: map[string]int{"queued": 2, "deferred": 1},
			Database: store.Stats{Path: "/var/lib/pixelrelay/tracker.db", SizeBytes: 4_000_000, FreeBytes: 1_000_000,
				Copies: 57, Opens: 120, OpensHuman: 80},
		},
		purged: store.PurgeResult{Deleted: 1234, DeletedClicks: 78, DeletedCopies: 56, SizeBefore: 12_400_000, SizeAfter: 8_100_000, Compacted: true, DurationMS: 1530},
		reclass: store.ReclassifyResult{Copies: 40, Examined: 120, Changed: 31,
			Before: map[string]int{"human": 90, "proxy:gmail": 10, "bot:apple_mpp": 20},
			After:  map[string]int{"human": 59, "proxy:gmail": 10, "bot:apple_mpp": 22, "bot:scanner": 29},
			Clicks: &store.ReclassifyResult{Copies: 1, Examined: 3, Changed: 2,
				Before: map[string]int{"human": 3}, After: map[string]int{"human": 1, "bot:scanner": 2}}},
		rotated: 4,
	}
}

// writeConfig writes a config file pointing the CLI at addr, with a temp
// data_dir, and returns its path.
func writeConfig(t *testing.T, addr string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "pixelrelay.toml")
	body := fmt.Sprintf("data_dir = %q\n\n[http]\nlisten = %q\n", filepath.Join(dir, "data"), addr)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startAPI runs f on a loopback httptest server and returns a config file
// for it. The admin key comes from the environment.
func startAPI(t *testing.T, f *fakeAPI) string {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	t.Setenv("PIXELRELAY_ADMIN_KEY", testKey)
	return writeConfig(t, srv.Listener.Addr().String())
}

// run runs the CLI with a fixed clock and width.
func run(width int, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, now: func() time.Time { return testNow }, width: width}
	code = e.main(args)
	return code, out.String(), errb.String()
}

// closedAddr is a loopback address nothing listens on while the test runs.
func closedAddr(t *testing.T) string {
	t.Helper()
	return testport.Addr(t)
}

func TestOpensOfOneCopy(t *testing.T) {
	for _, byID := range []bool{false, true} {
		t.Run(fmt.Sprintf("messages-by-id=%v", byID), func(t *testing.T) {
			f := sampleAPI()
			f.byID = byID
			cfg := startAPI(t, f)
			code, out, errOut := run(0, "opens", "k7q2m4xwah3bdf5a", "--config", cfg)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			q := f.find("/api/opens").URL.Query()
			if q.Get("id") != "k7q2m4xwah3bdf5a" || q.Get("limit") != "100" {
				t.Errorf("query = %v, want id=k7q2m4xwah3bdf5a limit=100", q)
			}
			for _, want := range []string{
				"copy     k7q2m4xwah3bdf5a",
				"to       bob@example.com",
				"subject  Quarterly numbers",
				"sent     2026-11-22 12:03 UTC (4h ago)",
				"OPENED                         KIND                 IP           REASON                        USER AGENT",
				"2026-11-22 15:03 UTC (1h ago)  human                203.0.113.9  no machine signature          Mozilla/5.0 (Windows NT 10.0;",
				"2026-11-22 14:03 UTC (2h ago)  proxy:gmail (first)  66.249.84.1  user agent: GoogleImageProxy  Mozilla/5.0 (via ggpht.com GoogleImageProxy)",
				"bot:apple_mpp        17.58.0.1    network: Apple 17.0.0.0/8",
				"3 opens, 2 human, 1 bot; first human open 2026-11-22 14:03 UTC (2h ago)",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "carol") {
				t.Errorf("output shows another copy's opens:\n%s", out)
			}
			if got := strings.Contains(out, "status   sent"); got != byID {
				t.Errorf("status line shown = %v, want %v (only when the server selects by id):\n%s", got, byID, out)
			}
		})
	}
}

// A mistyped id is an error (the server answers 404), not "no opens yet".
func TestOpensUnknownID(t *testing.T) {
	cfg := startAPI(t, sampleAPI())
	for _, args := range [][]string{{"opens", "aaaaaaaaaaaaaaaa"}, {"opens", "--json", "aaaaaaaaaaaaaaaa"}} {
		code, out, errOut := run(0, append(args, "--config", cfg)...)
		want := "pixelrelay: no tracked copy has the id aaaaaaaaaaaaaaaa (pixelrelay messages lists them)\n"
		if code != 1 || out != "" || errOut != want {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 1 and %q", args, code, out, errOut, want)
		}
	}
}

// A copy the server knows (GET /api/messages?id=) but nobody opened yet.
func TestOpensCopyWithoutOpens(t *testing.T) {
	f := sampleAPI()
	f.byID = true
	cfg := startAPI(t, f)
	code, out, _ := run(0, "opens", "d4e5f6g7abcdefgh", "--config", cfg)
	want := "" +
		"copy     d4e5f6g7abcdefgh\n" +
		"to       dave@example.com\n" +
		"subject  Invoice 42\n" +
		"sent     not yet\n" +
		"status   deferred (451 4.7.0 try again later)\n" +
		"\n" +
		"no opens yet for d4e5f6g7abcdefgh\n"
	if code != 0 || out != want {
		t.Errorf("exit %d, out:\n%s\nwant:\n%s", code, out, want)
	}
}

func TestOpensList(t *testing.T) {
	f := sampleAPI()
	cfg := startAPI(t, f)
	code, out, errOut := run(0, "opens", "--since", "2026-11-20", "--to", "Carol@Example.org", "--config", cfg)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	q := f.last().URL.Query()
	if q.Get("to") != "Carol@Example.org" || q.Get("since") != "2026-11-20T00:00:00Z" {
		t.Errorf("query = %v", q)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "OPENED") {
		t.Fatalf("want a header and one row:\n%s", out)
	}
	for _, want := range []string{"carol@example.org", "Lunch [2J on Friday?", "p7z6y5x4cdefghij", "human", "15:33 UTC (30m ago)"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("row lacks %q: %q", want, lines[1])
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("an escape sequence from a subject reached the terminal: %q", out)
	}
}

func TestOpensLimit(t *testing.T) {
	f := sampleAPI()
	cfg := startAPI(t, f)
	code, _, errOut := run(0, "opens", "--limit", "2000", "--config", cfg)
	if code != 0 || f.last().URL.Query().Get("limit") != "500" {
		t.Errorf("exit %d, limit sent %q; want 500", code, f.last().URL.Query().Get("limit"))
	}
	if !strings.Contains(errOut, "capped at 500") {
		t.Errorf("stderr %q does not say the limit was capped", errOut)
	}
	code, _, errOut = run(0, "opens", "--limit", "2", "--config", cfg)
	if code != 0 || !strings.Contains(errOut, "showing the newest 2 opens") {
		t.Errorf("exit %d, stderr %q; want a note that more may exist", code, errOut)
	}
}

func TestOpensTruncatesToWidth(t *testing.T) {
	cfg := startAPI(t, sampleAPI())
	code, out, _ := run(80, "opens", "k7q2m4xwah3bdf5a", "--config", cfg)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out, "…") {
		t.Errorf("long user agents were not cut at 80 columns:\n%s", out)
	}
	inTable := false
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "OPENED") {
			inTable = true
		}
		if line == "" {
			inTable = false
		}
		if inTable && textWidth(line) > 80 {
			t.Errorf("table line is %d wide: %q", textWidth(line), line)
		}
	}
}

func TestMessages(t *testing.T) {
	f := sampleAPI()
	cfg := startAPI(t, f)
	code, out, errOut := run(0, "messages", "--unopened", "--since", "3d", "--config", cfg)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	q := f.last().URL.Query()
	if q.Get("unopened") != "true" || q.Get("since") != "2026-11-19T16:03:30Z" || q.Get("limit") != "100" {
		t.Errorf("query = %v", q)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("want header and three rows:\n%s", out)
	}
	for i, want := range [][]string{
		{"SENT", "RECIPIENT", "SUBJECT", "STATUS", "HUMAN", "OPENS", "FIRST HUMAN OPEN", "CLICKS", "ID"},
		{"-", "dave@example.com", "Invoice 42", "deferred", " 0 ", "d4e5f6g7abcdefgh"},
		{"2026-11-22 12:03 UTC (4h ago)", "bob@example.com", "Quarterly numbers", "sent", " 2 ", " 3 ", "2026-11-22 14:03 UTC (2h ago)  1 ", "k7q2m4xwah3bdf5a"},
		{"2026-11-22 12:03 UTC (4h ago)", "me@example.net", "Quarterly numbers", "sent", " - ", "not tracked: sender"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d lacks %q: %q", i, w, lines[i])
			}
		}
	}
}

// TestClicks: the clicks of one copy with the rule of each and a summary
// from its record; the recent clicks with their copies; an unknown id.
func TestClicks(t *testing.T) {
	f := sampleAPI()
	f.byID = true
	cfg := startAPI(t, f)
	code, out, errOut := run(0, "clicks", "https://t.example/c/K7Q2M4XWAH3BDF5Aabcdefghijklmnopqrstuvwxyz234567abcdefgh", "--config", cfg)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if q := f.find("/api/clicks").URL.Query(); q.Get("id") != "k7q2m4xwah3bdf5a" {
		t.Errorf("query = %v: a click URL names its copy", q)
	}
	for _, want := range []string{
		"copy     k7q2m4xwah3bdf5a",
		"to       bob@example.com",
		"CLICKED                         KIND           IP           URL                             REASON",
		"2026-11-22 15:13 UTC (50m ago)  human (first)  203.0.113.9  https://example.com/report?q=4  no machine signature",
		"bot:scanner    40.107.1.2   -                               honeypot: fetched the hidden link",
		"2 clicks, 1 human, 1 bot; first human click 2026-11-22 15:13 UTC (50m ago)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = run(0, "clicks", "--to", "bob@example.com", "--config", cfg)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "CLICKED") || !strings.Contains(lines[1], "https://example.com/report?q=4") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	code, out, errOut = run(0, "clicks", "aaaaaaaaaaaaaaaa", "--config", cfg)
	if code != 1 || out != "" || errOut != "pixelrelay: no tracked copy has the id aaaaaaaaaaaaaaaa (pixelrelay messages lists them)\n" {
		t.Fatalf("unknown id: exit %d, %q, %q", code, out, errOut)
	}
	if code, _, errOut = run(0, "clicks", "a", "b", "--config", cfg); code != 2 {
		t.Fatalf("two ids: exit %d, %q", code, errOut)
	}
}

func TestJSONPassesTheAPIBodyThrough(t *testing.T) {
	f := sampleAPI()
	cfg := startAPI(t, f)
	for _, tc := range []struct {
		args []string
		want any
		got  any
	}{
		{[]string{"opens", "--json"}, httpd.OpensResponse{Opens: f.opens}, &httpd.OpensResponse{}},
		{[]string{"messages", "--json"}, httpd.MessagesResponse{Messages: f.messages}, &httpd.MessagesResponse{}},
		{[]string{"queue", "--json"}, httpd.QueueResponse{Queue: f.queue}, &httpd.QueueResponse{}},
		{[]string{"status", "--json"}, f.status, &httpd.StatusResponse{}},
	} {
		code, out, _ := run(0, append(tc.args, "--config", cfg)...)
		if code != 0 {
			t.Fatalf("%v: exit %d", tc.args, code)
		}
		want, _ := json.Marshal(tc.want)
		var compact bytes.Buffer
		if err := json.Compact(&compact, []byte(out)); err != nil {
			t.Fatalf("%v: output is not JSON: %v\n%s", tc.args, err, out)
		}
		if compact.String() != strings.TrimSpace(string(want)) {
			t.Errorf("%v: JSON differs from the API body:\n got %s\nwant %s", tc.args, compact.String(), want)
		}
	}
}

func TestStatus(t *testing.T) {
	cfg := startAPI(t, sampleAPI())
	code, out, _ := run(0, "--config", cfg, "status") // --config before the command works too
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"version         9.9.9",
		"config file     /etc/pixelrelay.toml (this command read " + cfg + ")",
		"smtp listen     127.0.0.1:2525",
		"upstream        smtps://smtp.gmail.com:465",
		"tracking key    version 3",
		"queue           3 waiting: 2 queued, 1 deferred",
		"database        /var/lib/pixelrelay/tracker.db, 4.0 MB (25% free)",
		"tracked copies  57",
		"opens           120 (80 human, 40 bot)",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

func TestQueue(t *testing.T) {
	f := sampleAPI()
	cfg := startAPI(t, f)
	code, out, _ := run(0, "queue", "--config", cfg)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "RECIPIENTS") {
		t.Fatalf("want header and two rows:\n%s", out)
	}
	for i, want := range [][]string{
		{"dave@example.com", "deferred", "3", "(10m ago)", "(in 5m)", "451 4.7.0 try again later"},
		{"x@example.com, y@example.com", "queued", "0", "now", "-"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("row %d lacks %q: %q", i+1, w, lines[i+1])
			}
		}
	}
	f.queue = nil
	code, out, _ = run(0, "queue", "--config", cfg)
	if code != 0 || out != "the queue is empty\n" {
		t.Errorf("empty queue: exit %d, out %q", code, out)
	}
}

func TestKeysRotate(t *testing.T) {
	f := sampleAPI()
	cfg := startAPI(t, f)
	code, out, _ := run(0, "keys", "rotate", "--config", cfg)
	if code != 0 || !strings.Contains(out, "tracking key version 4 is now current") {
		t.Errorf("exit %d, out %q", code, out)
	}
	if r := f.last(); r.Method != http.MethodPost || r.URL.Path != "/api/keys/rotate" {
		t.Errorf("request %s %s", r.Method, r.URL.Path)
	}
}

func TestPurge(t *testing.T) {
	f := sampleAPI()
	cfg := startAPI(t, f)
	code, out, errOut := run(0, "purge", "--older-than", "30d", "--config", cfg)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	r := f.last()
	if r.Method != http.MethodPost || r.URL.Path != "/api/purge" || r.URL.Query().Get("older_than") != "720h0m0s" {
		t.Errorf("request %s %s", r.Method, r.URL)
	}
	if !strings.Contains(errOut, "purging opens, clicks and delivered copies older than 30d") {
		t.Errorf("no progress on stderr: %q", errOut)
	}
	want := "deleted 1234 opens, 78 clicks and 56 delivered copy records; database 12.4 MB before, 8.1 MB after (compacted); took 1.53s\n"
	if out != want {
		t.Errorf("out %q, want %q", out, want)
	}
	// Without --older-than the server's retention applies: no parameter.
	if code, _, _ := run(0, "purge", "--config", cfg); code != 0 || f.last().URL.RawQuery != "" {
		t.Errorf("exit %d, query %q; want no older_than", code, f.last().URL.RawQuery)
	}
}

func TestFailures(t *testing.T) {
	f := sampleAPI()
	cfg := startAPI(t, f)
	downAddr := closedAddr(t)
	down := writeConfig(t, downAddr)
	anyAddr := writeConfig(t, "0.0.0.0:"+strings.Split(closedAddr(t), ":")[1])
	tests := []struct {
		name     string
		setup    func(t *testing.T)
		args     []string
		wantCode int
		want     string
	}{
		{name: "not running", args: []string{"opens", "--config", down}, wantCode: 1,
			want: "pixelrelay is not running at " + downAddr + " — start it with `pixelrelay serve`\n"},
		{name: "not running, any address", args: []string{"status", "--config", anyAddr}, wantCode: 1,
			want: "pixelrelay is not running at 127.0.0.1:"},
		{name: "wrong key", setup: func(t *testing.T) { t.Setenv("PIXELRELAY_ADMIN_KEY", "wrong") },
			args: []string{"messages", "--config", cfg}, wantCode: 1,
			want: "the admin key was refused by 127.0.0.1:"},
		{name: "server error", setup: func(t *testing.T) { f.failCode = 500; t.Cleanup(func() { f.failCode = 0 }) },
			args: []string{"queue", "--config", cfg}, wantCode: 1, want: "answered 500: database is busy (try later)"},
		{name: "missing config file", args: []string{"opens", "--config", filepath.Join(t.TempDir(), "nope.toml")},
			wantCode: 1, want: "nope.toml"},
		{name: "bad since", args: []string{"opens", "--since", "last week", "--config", cfg}, wantCode: 2,
			want: `--since "last week": want an RFC 3339 time`},
		{name: "bad older-than", args: []string{"purge", "--older-than", "soon", "--config", cfg}, wantCode: 2,
			want: `--older-than "soon": want a Go duration`},
		{name: "zero older-than", args: []string{"purge", "--older-than", "0d", "--config", cfg}, wantCode: 2,
			want: `--older-than "0d": want more than zero`},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, want: `unknown command "frobnicate"; see pixelrelay help`},
		{name: "unknown flag", args: []string{"status", "--verbose"}, wantCode: 2, want: "unknown flag --verbose; see pixelrelay status --help"},
		{name: "extra argument", args: []string{"queue", "all"}, wantCode: 2, want: `unexpected argument "all"`},
		{name: "two ids", args: []string{"opens", "a", "b"}, wantCode: 2, want: "one tracking id at most"},
		{name: "keys without rotate", args: []string{"keys"}, wantCode: 2, want: "keys rotate"},
		{name: "config without check", args: []string{"config", "lint"}, wantCode: 2, want: `unknown config subcommand "lint"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup(t)
			}
			code, out, errOut := run(0, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.wantCode, errOut)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			if strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "pixelrelay") {
				t.Errorf("stderr %q is not one line starting with \"pixelrelay\"", errOut)
			}
			if !strings.Contains(errOut, tt.want) {
				t.Errorf("stderr %q lacks %q", errOut, tt.want)
			}
			if tt.wantCode == 2 && !strings.Contains(errOut, "see pixelrelay ") {
				t.Errorf("usage error %q does not point to help", errOut)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, c := range commands() {
		for _, args := range [][]string{{c.name, "--help"}, {"help", c.name}, {c.name, "x", "-h"}} {
			code, out, errOut := run(0, args...)
			if code != 0 || errOut != "" {
				t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
			}
			if !strings.HasPrefix(out, "Usage: pixelrelay "+c.name) || !strings.Contains(out, "Example") {
				t.Errorf("%v: help lacks a usage line or an example:\n%s", args, out)
			}
		}
	}
	code, out, _ := run(0, "help")
	if code != 0 {
		t.Errorf("help: exit %d", code)
	}
	for _, c := range commands() {
		if !strings.Contains(out, "\n  "+c.name+" ") {
			t.Errorf("help does not list %s:\n%s", c.name, out)
		}
	}
	code, out, errOut := run(0)
	if code != 2 || out != "" || !strings.Contains(errOut, "Commands:") {
		t.Errorf("no arguments: exit %d, stdout %q, stderr %q; want the list on stderr, exit 2", code, out, errOut)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, _ := run(0, args...)
		if code != 0 || out != "pixelrelay "+Version+"\n" {
			t.Errorf("%v: exit %d, out %q", args, code, out)
		}
	}
}

func TestMainWritesToGivenWriters(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main([]string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "pixelrelay ") {
		t.Errorf("Main version: exit %d, out %q", code, out.String())
	}
	if code := Main([]string{"opens", "--limit", "x"}, &out, &errb); code != 2 {
		t.Errorf("Main bad usage: exit %d, want 2", code)
	}
}

func TestQueryTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	t.Setenv("PIXELRELAY_ADMIN_KEY", testKey)
	old := queryTimeout
	queryTimeout = 200 * time.Millisecond
	defer func() { queryTimeout = old }()

	cfg := writeConfig(t, srv.Listener.Addr().String())
	start := time.Now()
	code, _, errOut := run(0, "messages", "--config", cfg)
	if code != 1 || errOut != "pixelrelay: no answer from "+srv.Listener.Addr().String()+" within 200ms\n" {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v: the timeout did not apply", took)
	}
}

func TestPurgeProgress(t *testing.T) {
	f := sampleAPI()
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/purge" {
			time.Sleep(150 * time.Millisecond)
		}
		f.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(slow)
	defer srv.Close()
	t.Setenv("PIXELRELAY_ADMIN_KEY", testKey)
	old := purgeTick
	purgeTick = 20 * time.Millisecond
	defer func() { purgeTick = old }()

	code, out, errOut := run(0, "purge", "--config", writeConfig(t, srv.Listener.Addr().String()))
	if code != 0 || !strings.Contains(out, "deleted 1234 opens") {
		t.Errorf("exit %d, out %q", code, out)
	}
	if !strings.Contains(errOut, "pixelrelay: still purging (") {
		t.Errorf("no progress while waiting: %q", errOut)
	}
}

// TestStatusDamagedLine: damaged spool entries get their own line, only
// when there are some, and are not counted as waiting copies.
func TestStatusDamagedLine(t *testing.T) {
	for _, tc := range []struct {
		name      string
		queue     map[string]int
		wantQueue string
		damaged   bool
	}{
		{"some damaged", map[string]int{"queued": 2, "deferred": 0, "damaged": 3}, "2 waiting: 2 queued", true},
		{"only damaged", map[string]int{"queued": 0, "deferred": 0, "damaged": 1}, "empty", true},
		{"none damaged", map[string]int{"queued": 0, "deferred": 1, "damaged": 0}, "1 waiting: 1 deferred", false},
		{"older server", map[string]int{"queued": 1}, "1 waiting: 1 queued", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := sampleAPI()
			f.status.Queue = tc.queue
			code, out, errOut := run(0, "status", "--config", startAPI(t, f))
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			if want := "queue           " + tc.wantQueue + "\n"; !strings.Contains(out, want) {
				t.Errorf("status lacks %q:\n%s", want, out)
			}
			line := fmt.Sprintf("damaged         %d (moved aside in /var/lib/pixelrelay/spool/damaged; see the server log)\n", tc.queue["damaged"])
			if got := strings.Contains(out, line); got != tc.damaged {
				t.Errorf("damaged line shown = %v, want %v:\n%s", got, tc.damaged, out)
			}
			if !tc.damaged && strings.Contains(out, "\ndamaged") {
				t.Errorf("a damaged line without damaged entries:\n%s", out)
			}
		})
	}
}

// TestStatusLostOpens: opens answered but not stored get a line each,
// only when there are some: store errors (dropped) and a full limiter
// (refused).
func TestStatusLostOpens(t *testing.T) {
	dropped := "dropped opens   4 since start (store errors; see the server log)\n"
	refused := "refused opens   1234 since start (dedup/per-IP tables full: a flood from many addresses? see the server log)\n"
	for _, tc := range []struct {
		name             string
		dropped, refused int64
		want, notWant    []string
	}{
		{"none lost", 0, 0, nil, []string{"dropped opens", "refused opens"}},
		{"limiter refused", 0, 1234, []string{refused}, []string{"dropped opens"}},
		{"both", 4, 1234, []string{dropped, refused}, nil},
		{"store errors", 4, 0, []string{dropped}, []string{"refused opens"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := sampleAPI()
			f.status.Database.Dropped, f.status.Database.LimiterRefused = tc.dropped, tc.refused
			code, out, errOut := run(0, "status", "--config", startAPI(t, f))
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("status lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Errorf("status shows %q:\n%s", w, out)
				}
			}
		})
	}
}
