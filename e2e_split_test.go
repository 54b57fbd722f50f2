package main

// The split deployment through the real binaries: a public tracker
// (`serve --tracker-only`) and a relay paired with it (`keys export`,
// `keys import`, tracker.remote_url), and the faults of issue 16: the
// tracker down while mail is sent, the laptop off while opens come in, the
// two clocks minutes apart, keys rotated on one side, a registration
// replayed.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pixelrelay/tracker/webhook/webhooktest"
)

// noPrefetch turns the tracker's prefetch rule off: the tests fetch pixels
// right after delivery.
const noPrefetch = "prefetch_window = \"0s\"\n"

// splitPair is a public tracker and a relay paired with it.
type splitPair struct {
	t       *testing.T
	tracker *instance
	relay   *instance
	keyFile string // the exported relay key
}

// splitInstance writes a config and returns an instance not started yet.
func splitInstance(t *testing.T, name, body string, env ...string) *instance {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	in := &instance{
		t: t, dir: filepath.Join(dir, "data"), cfgPath: filepath.Join(dir, "pixelrelay.toml"),
		smtpAddr: freePort(t), httpAddr: freePort(t),
		env: append(append(os.Environ(), "PIXELRELAY_ADMIN_KEY=test-admin-key", "HOME="+dir), env...),
	}
	cfg := fmt.Sprintf("data_dir = %q\n[smtp]\nlisten = %q\n[http]\nlisten = %q\n", in.dir, in.smtpAddr, in.httpAddr) +
		strings.ReplaceAll(body, "{http}", in.httpAddr)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return in
}

// newSplitPair makes a tracker (trackerTOML added to its config, env to
// its environment) and a relay whose tracker.remote_url is remoteURL (""
// for the tracker itself; its pixels always point at the tracker), pairs
// them, and starts the tracker only.
func newSplitPair(t *testing.T, trackerTOML, remoteURL string, env ...string) *splitPair {
	t.Helper()
	p := &splitPair{t: t}
	p.tracker = splitInstance(t, "tracker", "[tracking]\nbase_url = \"http://{http}\"\n"+trackerTOML, env...)
	p.tracker.args, p.tracker.noSMTP = []string{"--tracker-only"}, true
	relayTOML := "[queue]\nmin_retry = \"200ms\"\nmax_retry = \"1s\"\n"
	if remoteURL == "" {
		remoteURL = "http://" + p.tracker.httpAddr // tracking.base_url follows it
	} else {
		relayTOML += fmt.Sprintf("[tracking]\nbase_url = \"http://%s\"\n", p.tracker.httpAddr)
	}
	p.relay = splitInstance(t, "relay", relayTOML+fmt.Sprintf("[tracker]\nremote_url = %q\n", remoteURL))
	p.tracker.start()
	p.keyFile = filepath.Join(t.TempDir(), "laptop.key")
	p.mustCLI(p.tracker, "keys", "export", "--name", "laptop", "--out", p.keyFile)
	if out := p.mustCLI(p.relay, "keys", "import", p.keyFile); !strings.Contains(out, `relay key for "laptop" saved`) {
		t.Fatalf("keys import said %q", out)
	}
	return p
}

func (p *splitPair) mustCLI(in *instance, args ...string) string {
	p.t.Helper()
	out, errOut, code := in.cli(args...)
	if code != 0 {
		p.t.Fatalf("pixelrelay %s: exit %d: %s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// send submits one HTML message to rcpts through the relay and returns
// the pixel URL of each recipient's copy once delivered.
func (p *splitPair) send(subject string, rcpts ...string) map[string]string {
	p.t.Helper()
	before := len(p.relay.outbox())
	if _, err := sendMail(p.t, p.relay.smtpAddr, "me@example.com", rcpts, htmlMessage("me@example.com", rcpts, subject)); err != nil {
		p.t.Fatal(err)
	}
	copies := p.relay.waitOutbox(before+len(rcpts), 15*time.Second)
	urls := map[string]string{}
	for _, c := range copies {
		for _, r := range rcpts {
			if strings.Contains(c, "Delivered-To: "+r+"\r\n") && strings.Contains(c, "Subject: "+subject+"\r\n") {
				u := pixelURLs(c)
				if len(u) != 1 || !strings.HasPrefix(u[0], "http://"+p.tracker.httpAddr+"/o/") {
					p.t.Fatalf("copy for %s has pixels %v, want one on the tracker", r, u)
				}
				urls[r] = u[0]
			}
		}
	}
	if len(urls) != len(rcpts) {
		p.t.Fatalf("pixels for %v, want %v", urls, rcpts)
	}
	return urls
}

// idOf is the tracking id in a pixel URL.
func idOf(pixel string) string {
	return pixel[strings.LastIndex(pixel, "/o/")+3:][:16]
}

type splitOpen struct {
	TrackingID string `json:"tracking_id"`
	Recipient  string `json:"recipient"`
	Subject    string `json:"subject"`
	UserAgent  string `json:"user_agent"`
	Bot        bool   `json:"bot"`
	BotType    string `json:"bot_type"`
	Reason     string `json:"reason"`
	First      bool   `json:"first"`
}

type splitMessage struct {
	TrackingID string `json:"tracking_id"`
	Recipient  string `json:"recipient"`
	From       string `json:"from"`
	Subject    string `json:"subject"`
	MessageID  string `json:"message_id"`
	Status     string `json:"status"`
	OpensTotal int    `json:"opens_total"`
	OpensHuman int    `json:"opens_human"`
}

func (p *splitPair) opens(in *instance, id string) []splitOpen {
	p.t.Helper()
	var r struct {
		Opens []splitOpen `json:"opens"`
	}
	in.api("/api/opens?id="+id, &r)
	return r.Opens
}

func (p *splitPair) messages(in *instance) []splitMessage {
	p.t.Helper()
	var r struct {
		Messages []splitMessage `json:"messages"`
	}
	in.api("/api/messages", &r)
	return r.Messages
}

type splitStatus struct {
	Role               string `json:"role"`
	TrackingKeyVersion int    `json:"tracking_key_version"`
	Database           struct {
		Copies      int `json:"copies"`
		Opens       int `json:"opens"`
		EarlyOpens  int `json:"early_opens"`
		RelayFeed   int `json:"relay_feed"`
		RelayOutbox int `json:"relay_outbox"`
	} `json:"database"`
	Remote *struct {
		Reachable    bool    `json:"reachable"`
		LastError    string  `json:"last_error"`
		Waiting      int     `json:"waiting"`
		KeyVersion   int     `json:"key_version"`
		ClockSkewSec float64 `json:"clock_skew_s"`
	} `json:"remote"`
}

func (p *splitPair) status(in *instance) splitStatus {
	p.t.Helper()
	var st splitStatus
	in.api("/api/status", &st)
	return st
}

// registered waits until the tracker holds n copies, all sent.
func (p *splitPair) registered(n int) {
	p.t.Helper()
	waitFor(p.t, func() bool {
		ms := p.messages(p.tracker)
		sent := 0
		for _, m := range ms {
			if m.Status == "sent" {
				sent++
			}
		}
		return len(ms) == n && sent == n
	})
}

// TestSplitRoundTrip: pairing through the two commands, mail through the
// relay, opens at the tracker, and the relay's query commands showing them
// with recipients and subjects, which the tracker never learns: not in its
// API, not anywhere in its database file.
func TestSplitRoundTrip(t *testing.T) {
	p := newSplitPair(t, noPrefetch, "")
	p.relay.start()
	pixels := p.send("Quarterly numbers", "alice@example.org", "bob@example.org")
	p.registered(2)
	fetchPixel(t, pixels["alice@example.org"], uaThunderbird)
	fetchPixel(t, pixels["alice@example.org"], uaThunderbird) // duplicate
	fetchPixel(t, pixels["bob@example.org"], uaCurl)
	alice, bob := idOf(pixels["alice@example.org"]), idOf(pixels["bob@example.org"])
	waitFor(t, func() bool { return len(p.opens(p.relay, alice)) == 1 && len(p.opens(p.relay, bob)) == 1 })
	a := p.opens(p.relay, alice)[0]
	if a.Recipient != "alice@example.org" || a.Subject != "Quarterly numbers" || a.Bot || !a.First {
		t.Errorf("alice's open at the relay: %+v", a)
	}
	if b := p.opens(p.relay, bob)[0]; !b.Bot || b.BotType != "scanner" {
		t.Errorf("bob's open at the relay: %+v", b)
	}
	out := p.mustCLI(p.relay, "opens", "--to", "alice@example.org")
	if !strings.Contains(out, "Quarterly numbers") || !strings.Contains(out, "human") {
		t.Errorf("pixelrelay opens on the relay:\n%s", out)
	}
	out = p.mustCLI(p.relay, "messages", "--unopened")
	if !strings.Contains(out, "bob@example.org") || strings.Contains(out, "alice@example.org") {
		t.Errorf("messages --unopened on the relay:\n%s", out)
	}
	st := p.mustCLI(p.relay, "status")
	if !strings.Contains(st, "remote tracker") || !strings.Contains(st, "reachable") || !strings.Contains(st, "ids and times only") {
		t.Errorf("status on the relay:\n%s", st)
	}
	for _, m := range p.messages(p.tracker) {
		if m.Recipient != "" || m.Subject != "" || m.From != "" || m.MessageID != "" {
			t.Errorf("the tracker holds personal data: %+v", m)
		}
	}
	if ts := p.mustCLI(p.tracker, "status"); !strings.Contains(ts, "tracker only") || strings.Contains(ts, "smtp listen") {
		t.Errorf("status on the tracker:\n%s", ts)
	}
	if err := p.tracker.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("tracker stop: %v", err)
	}
	db, err := os.ReadFile(filepath.Join(p.tracker.dir, "pixelrelay.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"alice@example.org", "bob@example.org", "me@example.com", "Quarterly", "example.com>"} {
		if bytes.Contains(bytes.ToLower(db), bytes.ToLower([]byte(secret))) {
			t.Errorf("the tracker's database file contains %q", secret)
		}
	}
}

// TestSplitTrackerDown: the tracker is down while mail is sent: the relay
// accepts and delivers at once and keeps the registrations, also across a
// kill -9; the tracker, back up, records opens of copies not registered
// yet, and joins them when the relay registers.
func TestSplitTrackerDown(t *testing.T) {
	p := newSplitPair(t, noPrefetch, "")
	if err := p.tracker.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.relay.start()
	start := time.Now()
	pixels := p.send("Sent while the tracker is down", "carol@example.org", "dan@example.org")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("delivery took %v with the tracker down", d)
	}
	waitFor(t, func() bool {
		st := p.status(p.relay)
		return st.Remote != nil && !st.Remote.Reachable && st.Remote.Waiting == 2 && st.Remote.LastError != ""
	})
	p.relay.cmd.Process.Signal(syscall.SIGKILL)
	<-p.relay.done

	p.tracker.start() // the laptop is still off
	fetchPixel(t, pixels["carol@example.org"], uaThunderbird)
	waitFor(t, func() bool { return p.status(p.tracker).Database.EarlyOpens == 1 })
	if n := len(p.messages(p.tracker)); n != 0 {
		t.Fatalf("tracker has %d copies before any registration", n)
	}
	p.relay.start()
	p.registered(2)
	carol := idOf(pixels["carol@example.org"])
	waitFor(t, func() bool { return len(p.opens(p.relay, carol)) == 1 })
	if o := p.opens(p.relay, carol)[0]; o.Recipient != "carol@example.org" || o.Bot || !o.First {
		t.Errorf("early open at the relay: %+v", o)
	}
	if st := p.status(p.tracker); st.Database.EarlyOpens != 0 || st.Database.Opens != 1 {
		t.Errorf("tracker after the join: %+v", st.Database)
	}
	waitFor(t, func() bool { st := p.status(p.relay); return st.Remote.Reachable && st.Remote.Waiting == 0 })
}

// TestSplitLaptopOff: opens that come in while the relay is off wait at
// the tracker and reach the relay when it is back, classified there.
func TestSplitLaptopOff(t *testing.T) {
	p := newSplitPair(t, noPrefetch, "")
	rcv := webhooktest.Start(t, e2eSecret)
	p.appendConfig(p.relay, fmt.Sprintf("[[webhooks]]\nname = \"crm\"\nurl = %q\nsecret = %q\n", rcv.URL(), e2eSecret))
	p.relay.start()
	pixels := p.send("Read while the laptop sleeps", "erin@example.org")
	p.registered(1)
	if err := p.relay.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	px := pixels["erin@example.org"]
	fetchPixel(t, px, uaCurl)
	fetchPixel(t, px, uaThunderbird)
	fetchPixel(t, px, uaGmailProxy)
	waitFor(t, func() bool { return p.status(p.tracker).Database.RelayFeed == 3 })
	p.relay.start()
	id := idOf(px)
	waitFor(t, func() bool { return len(p.opens(p.relay, id)) == 3 })
	human, first := 0, 0
	for _, o := range p.opens(p.relay, id) {
		if !o.Bot {
			human++
		}
		if o.First {
			first++
		}
	}
	if human != 2 || first != 1 {
		t.Errorf("opens at the relay: %+v", p.opens(p.relay, id))
	}
	waitFor(t, func() bool { return p.status(p.tracker).Database.RelayFeed == 0 })
	var m []splitMessage
	p.relay.api("/api/messages?id="+id, &struct {
		Messages *[]splitMessage `json:"messages"`
	}{&m})
	if len(m) != 1 || m[0].OpensTotal != 3 || m[0].OpensHuman != 2 {
		t.Errorf("message at the relay: %+v", m)
	}
	// The relay's webhooks report the opens it took, with the recipient
	// the tracker never knew (human_only: the two human ones).
	ds := rcv.WaitFor(t, 20*time.Second, func(all []webhooktest.Delivery) bool {
		return len(eventRecipients(t, all)["message.opened"]) == 2
	}, "two message.opened events")
	if r := eventRecipients(t, ds)["message.opened"]; r[0] != "erin@example.org" || r[1] != "erin@example.org" {
		t.Errorf("message.opened recipients %v", r)
	}
}

// appendConfig adds TOML to an instance's config file (before it starts).
func (p *splitPair) appendConfig(in *instance, toml string) {
	p.t.Helper()
	f, err := os.OpenFile(in.cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		p.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(toml); err != nil {
		p.t.Fatal(err)
	}
}

// TestSplitClockSkew: the tracker's clock is 7 minutes ahead of the
// relay's. The relay's delivery time is moved onto the tracker's clock, so
// a fetch within the prefetch window of delivery is still a prefetch and
// a later one is human; without the correction the first would be human.
func TestSplitClockSkew(t *testing.T) {
	p := newSplitPair(t, "prefetch_window = \"4s\"\n", "", "PIXELRELAY_TEST_CLOCK_OFFSET=7m")
	p.relay.start()
	pixels := p.send("Clocks apart", "fred@example.org")
	p.registered(1)
	px := pixels["fred@example.org"]
	fetchPixel(t, px, uaThunderbird)
	time.Sleep(5 * time.Second)
	fetchPixel(t, px, "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15")
	id := idOf(px)
	waitFor(t, func() bool { return len(p.opens(p.relay, id)) == 2 })
	o := p.opens(p.relay, id) // newest first
	if !o[1].Bot || o[1].BotType != "prefetch" || o[0].Bot {
		t.Errorf("opens with the clocks 7 minutes apart: %+v", o)
	}
	st := p.status(p.relay)
	if st.Remote == nil || st.Remote.ClockSkewSec < 415 || st.Remote.ClockSkewSec > 425 {
		t.Errorf("relay status clock skew: %+v", st.Remote)
	}
	if out := p.mustCLI(p.relay, "status"); !strings.Contains(out, "7m0s off this one") {
		t.Errorf("status does not tell about the clocks:\n%s", out)
	}
}

// TestSplitKeysRotated: keys rotated on the tracker reach the relay, which
// mints with the new version while old pixels keep counting; `keys rotate`
// on the relay rotates at the tracker, and fails with one line while the
// tracker is down; pairing again shuts the old key out until the new one
// is imported, which the running relay picks up.
func TestSplitKeysRotated(t *testing.T) {
	p := newSplitPair(t, noPrefetch, "")
	p.relay.start()
	old := p.send("Before the rotation", "gina@example.org")["gina@example.org"]
	p.mustCLI(p.tracker, "keys", "rotate")
	waitFor(t, func() bool { return p.status(p.relay).TrackingKeyVersion == 2 })
	fresh := p.send("After the rotation", "hal@example.org")["hal@example.org"]
	p.registered(2)
	fetchPixel(t, old, uaThunderbird)
	fetchPixel(t, fresh, uaThunderbird)
	waitFor(t, func() bool { return len(p.opens(p.relay, idOf(old))) == 1 && len(p.opens(p.relay, idOf(fresh))) == 1 })

	if out := p.mustCLI(p.relay, "keys", "rotate"); !strings.Contains(out, "version 3") {
		t.Errorf("keys rotate on the relay: %q", out)
	}
	if v := p.status(p.tracker).TrackingKeyVersion; v != 3 {
		t.Errorf("tracker key version %d after the relay rotated", v)
	}

	p.mustCLI(p.tracker, "keys", "export", "--name", "laptop", "--out", p.keyFile+".2")
	p.send("With a revoked key", "ivy@example.org")
	waitFor(t, func() bool {
		st := p.status(p.relay)
		return st.Remote.Waiting == 1 && strings.Contains(st.Remote.LastError, "refused this relay's key")
	})
	p.mustCLI(p.relay, "keys", "import", p.keyFile+".2")
	waitFor(t, func() bool { return len(p.messages(p.tracker)) == 3 })

	if err := p.tracker.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := p.relay.cli("keys", "rotate")
	if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "belong to the tracker") {
		t.Errorf("keys rotate with the tracker down: exit %d, %q %q", code, out, errOut)
	}
	if v := p.status(p.relay).TrackingKeyVersion; v != 3 {
		t.Errorf("relay key version %d after a failed rotation", v)
	}
}

// TestSplitRegistrationReplayed: a proxy between relay and tracker
// forwards every registration and then replays it twice, and replays the
// first registration (queued) after the later ones: every copy is stored
// once, in its last state, and each open counts once.
func TestSplitRegistrationReplayed(t *testing.T) {
	var (
		mu     sync.Mutex
		target *url.URL
		first  []byte
		replay int
	)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		tu := target
		mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		forward := func() *http.Response {
			req, _ := http.NewRequest(r.Method, tu.String()+r.URL.RequestURI(), bytes.NewReader(body))
			req.Header = r.Header.Clone()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return nil
			}
			return resp
		}
		resp := forward()
		if resp == nil {
			http.Error(w, "tracker down", http.StatusBadGateway)
			return
		}
		if r.URL.Path == "/relay/v1/copies" {
			for range 2 {
				if again := forward(); again != nil {
					again.Body.Close()
				}
			}
			mu.Lock()
			replay++
			if first == nil {
				first = body
			}
			mu.Unlock()
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
		resp.Body.Close()
	}))
	t.Cleanup(func() { proxy.CloseClientConnections(); proxy.Close() }) // after the binaries are gone
	p := newSplitPair(t, noPrefetch, proxy.URL)
	mu.Lock()
	target, _ = url.Parse("http://" + p.tracker.httpAddr)
	mu.Unlock()
	p.relay.start()
	pixels := p.send("Replayed", "jo@example.org", "kim@example.org")
	p.registered(2)
	mu.Lock()
	old := first
	mu.Unlock()
	_, secret := relaySecret(t, p.keyFile)
	req, _ := http.NewRequest(http.MethodPost, "http://"+p.tracker.httpAddr+"/relay/v1/copies", bytes.NewReader(old))
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("replaying the first registration: %d", resp.StatusCode)
	}
	for _, px := range pixels {
		fetchPixel(t, px, uaThunderbird)
	}
	for _, px := range pixels {
		id := idOf(px)
		waitFor(t, func() bool { return len(p.opens(p.relay, id)) == 1 })
	}
	ms := p.messages(p.tracker)
	if len(ms) != 2 || ms[0].Status != "sent" || ms[1].Status != "sent" || ms[0].OpensTotal != 1 {
		t.Errorf("tracker after replays: %+v", ms)
	}
	mu.Lock()
	n := replay
	mu.Unlock()
	if n == 0 || old == nil {
		t.Fatal("the proxy replayed nothing")
	}
	time.Sleep(time.Second) // another pull round: nothing more may arrive
	for _, px := range pixels {
		if o := p.opens(p.relay, idOf(px)); len(o) != 1 {
			t.Errorf("opens at the relay after replays: %+v", o)
		}
	}
}

// relaySecret reads the relay's name and secret from an exported key.
func relaySecret(t *testing.T, path string) (string, string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rk struct {
		Relay  string `json:"relay"`
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal(b, &rk); err != nil {
		t.Fatal(err)
	}
	return rk.Relay, rk.Secret
}
