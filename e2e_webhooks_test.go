package main

// Webhooks through the real binary: a receiver that verifies every
// signature with its own code (webhooktest) goes down, answers 500, comes
// back, answers 410; serve is killed with kill -9 while events wait; the
// retry waits are scaled down with PIXELRELAY_WEBHOOK_TIMESCALE.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"pixelrelay/tracker/webhook"
	"pixelrelay/tracker/webhook/webhooktest"
)

const e2eSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// webhookTimescale makes 3 days 130 s and the waits after failures
// 2.5 ms, 150 ms, 0.9 s, 3.6 s, 9 s, ...
const webhookTimescale = "0.0005"

func newWebhookInstance(t *testing.T, url string) *instance {
	t.Helper()
	in := newInstanceTracking(t, `prefetch_window = "0s"`, fmt.Sprintf(`
[[webhooks]]
name = "crm"
url = %q
secret = %q
`, url, e2eSecret))
	in.env = append(in.env, "PIXELRELAY_WEBHOOK_TIMESCALE="+webhookTimescale)
	return in
}

// webhooksJSON runs `pixelrelay webhooks --json`.
func (in *instance) webhooksJSON() []webhook.Status {
	in.t.Helper()
	out, errOut, code := in.cli("webhooks", "--json")
	if code != 0 {
		in.t.Fatalf("webhooks --json: exit %d: %s", code, errOut)
	}
	var r struct {
		Webhooks []webhook.Status `json:"webhooks"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		in.t.Fatalf("webhooks --json: %v\n%s", err, out)
	}
	return r.Webhooks
}

func (in *instance) waitWebhook(what string, cond func(webhook.Status) bool) webhook.Status {
	in.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := in.webhooksJSON()
		if len(s) == 1 && cond(s[0]) {
			return s[0]
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("webhook never %s: %+v", what, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// eventRecipients decodes the recipient of each delivery.
func eventRecipients(t *testing.T, ds []webhooktest.Delivery) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, d := range ds {
		var data struct {
			Recipient string `json:"recipient"`
		}
		if err := json.Unmarshal(d.Data, &data); err != nil {
			t.Fatal(err)
		}
		out[d.Type] = append(out[d.Type], data.Recipient)
	}
	return out
}

// TestWebhooksEndToEnd: every event arrives, exactly once per webhook-id
// (nothing was in flight at the kill), through 500s, an outage, a kill -9
// and a test ping; a 410 disables the endpoint; a reload with a new url
// enables it again.
func TestWebhooksEndToEnd(t *testing.T) {
	rcv := webhooktest.Start(t, e2eSecret)
	rcv.SetAnswer(500)
	in := newWebhookInstance(t, rcv.URL())
	in.start()

	rcpts := []string{"alice@example.org", "bob@example.org", "carol@example.net"}
	for i := range 2 {
		if _, err := sendMail(t, in.smtpAddr, "me@example.com", rcpts, htmlMessage("me@example.com", rcpts, fmt.Sprintf("hook %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	copies := in.waitOutbox(6, 10*time.Second)
	opened := map[string]bool{}
	for _, c := range copies[:3] {
		rcpt := strings.TrimSpace(strings.SplitN(strings.SplitN(c, "Delivered-To:", 2)[1], "\n", 2)[0])
		fetchPixel(t, pixelURLs(c)[0], uaThunderbird)
		opened[rcpt] = true
	}
	fetchPixel(t, pixelURLs(copies[3])[0], uaCurl) // a machine: human_only keeps it out

	// 500s: the first event is retried under one webhook-id.
	rcv.WaitFor(t, 20*time.Second, func(all []webhooktest.Delivery) bool { return len(all) >= 2 }, "two attempts answered 500")
	first := rcv.All()[0].ID
	if second := rcv.All()[1].ID; second != first {
		t.Fatalf("the first event was retried as %s, first tried as %s", second, first)
	}

	// Down: connections are reset; kill -9 with every event waiting; after
	// the restart they still are.
	rcv.Down()
	s := in.waitWebhook("refused with 9 events waiting", func(s webhook.Status) bool {
		return s.Backlog == 9 && webhooktest.IsDownError(s.LastError) && s.State == webhook.StateRetrying
	})
	if s.LastSuccess != nil || s.Failures < 3 {
		t.Fatalf("while down: %+v", s)
	}
	in.cmd.Process.Kill()
	<-in.done
	in.start()
	if s := in.webhooksJSON()[0]; s.Backlog != 9 || s.Failures < 3 {
		t.Fatalf("after kill -9: %+v", s)
	}

	// Back: a test ping that gets a 2xx resumes the deliveries at once.
	rcv.SetAnswer(200)
	rcv.Up(t)
	out, errOut, code := in.cli("webhooks", "test", "crm")
	if code != 0 || !strings.Contains(out, "crm: 200 OK") || !strings.Contains(out, "deliveries resume now") {
		t.Fatalf("webhooks test crm: %d %q %q", code, out, errOut)
	}
	got := rcv.WaitAccepted(t, 10, 20*time.Second) // 9 events and the ping
	seen := map[string]int{}
	var events []webhooktest.Delivery
	for _, d := range got {
		seen[d.ID]++
		if d.Type != webhook.Ping {
			events = append(events, d)
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("webhook-id %s accepted %d times", id, n)
		}
	}
	if events[0].ID != first {
		t.Errorf("the first event was retried as %s, first tried as %s", events[0].ID, first)
	}
	byType := eventRecipients(t, events)
	if len(byType[webhook.Sent]) != 6 || len(byType[webhook.Opened]) != 3 || len(events) != 9 {
		t.Fatalf("events by type: %v", byType)
	}
	for _, r := range byType[webhook.Opened] {
		if !opened[r] {
			t.Errorf("message.opened for %s, which was not opened by a person", r)
		}
	}
	// Per copy, message.sent comes before message.opened.
	for i, d := range events {
		if d.Type == webhook.Opened && !slices.ContainsFunc(events[:i], func(e webhooktest.Delivery) bool {
			return e.Type == webhook.Sent && strings.Contains(string(e.Data), eventRecipients(t, []webhooktest.Delivery{d})[webhook.Opened][0])
		}) {
			t.Errorf("message.opened before message.sent: %s", d.Data)
		}
	}
	in.waitWebhook("delivered all", func(s webhook.Status) bool { return s.Backlog == 0 && s.State == webhook.StateOK && s.Delivered == 9 })
	fams, _ := scrape(t, in)
	if n := sample(fams, "pixelrelay_webhook_events_total", "webhook", "crm", "result", "delivered"); n != 9 {
		t.Errorf("/metrics: %v events delivered, want 9", n)
	}

	// 410 Gone: disabled, shown in webhooks and status.
	rcv.SetAnswer(410)
	if _, err := sendMail(t, in.smtpAddr, "me@example.com", rcpts[:1], htmlMessage("me@example.com", rcpts[:1], "gone")); err != nil {
		t.Fatal(err)
	}
	in.waitWebhook("disabled", func(s webhook.Status) bool { return s.State == webhook.StateDisabled })
	out, _, _ = in.cli("webhooks")
	if !strings.Contains(out, "disabled: 410 Gone") {
		t.Errorf("webhooks:\n%s", out)
	}
	out, _, _ = in.cli("status")
	if !strings.Contains(out, "webhook crm") || !strings.Contains(out, "disabled: 410 Gone") {
		t.Errorf("status:\n%s", out)
	}
	fams, _ = scrape(t, in)
	if n := sample(fams, "pixelrelay_webhook_disabled", "webhook", "crm"); n != 1 {
		t.Errorf("/metrics: pixelrelay_webhook_disabled = %v, want 1", n)
	}
	if !strings.Contains(in.logs.String(), "410 Gone") {
		t.Errorf("the 410 was not logged")
	}

	// A reload with a new url enables the endpoint for that url.
	rcv2 := webhooktest.Start(t, e2eSecret)
	cfg, _ := os.ReadFile(in.cfgPath)
	newCfg := strings.Replace(string(cfg), rcv.URL(), rcv2.URL(), 1)
	if err := os.WriteFile(in.cfgPath+".tmp", []byte(newCfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(in.cfgPath+".tmp", in.cfgPath); err != nil {
		t.Fatal(err)
	}
	in.waitWebhook("moved to the new url", func(s webhook.Status) bool { return s.URL == rcv2.URL() && s.State == webhook.StateOK })
	if _, err := sendMail(t, in.smtpAddr, "me@example.com", rcpts[1:2], htmlMessage("me@example.com", rcpts[1:2], "back")); err != nil {
		t.Fatal(err)
	}
	got = rcv2.WaitAccepted(t, 1, 20*time.Second)
	if got[0].Type != webhook.Sent || !strings.Contains(string(got[0].Data), rcpts[1]) {
		t.Errorf("after the reload: %s %s", got[0].Type, got[0].Data)
	}
	if n := rcv.BadSignatures() + rcv2.BadSignatures(); n != 0 {
		t.Errorf("%d requests with a bad signature", n)
	}
	if err := in.stop(os.Interrupt); err != nil {
		t.Errorf("serve exit: %v", err)
	}
}

// TestWebhooksKillWhileDelivering: serve is killed with kill -9 while mail
// is still being accepted and delivered and a slow endpoint drains its
// backlog. Every acknowledged message's message.sent arrives at least once;
// a repeat carries the same webhook-id (so a receiver can drop it), and the
// slow endpoint never slowed SMTP.
func TestWebhooksKillWhileDelivering(t *testing.T) {
	rcv := webhooktest.Start(t, e2eSecret)
	rcv.SetDelay(40 * time.Millisecond)
	in := newWebhookInstance(t, rcv.URL())
	in.start()
	const n = 60
	acked := make(chan string, n)
	go func() {
		defer close(acked)
		for i := range n {
			rcpt := []string{fmt.Sprintf("r%02d@example.org", i)}
			start := time.Now()
			if _, err := sendMail(t, in.smtpAddr, "me@example.com", rcpt, htmlMessage("me@example.com", rcpt, "drain")); err != nil {
				return // killed
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("an SMTP transaction took %s while the endpoint was slow", d)
			}
			acked <- rcpt[0]
		}
	}()
	rcv.WaitFor(t, 20*time.Second, func(all []webhooktest.Delivery) bool { return len(all) >= 8 }, "a few deliveries")
	in.cmd.Process.Kill()
	<-in.done
	var want []string
	for r := range acked {
		want = append(want, r)
	}
	before := len(rcv.Accepted())
	in.start()
	got := rcv.WaitFor(t, 30*time.Second, func(all []webhooktest.Delivery) bool {
		have := map[string]bool{}
		for _, d := range all {
			if d.Answer == 200 {
				have[recipientOf(t, d)] = true
			}
		}
		for _, r := range want {
			if !have[r] {
				return false
			}
		}
		return true
	}, "message.sent of all %d acknowledged messages", len(want))
	count := map[string]int{}
	rcptOf := map[string]string{}
	for _, d := range got {
		count[d.ID]++
		r := recipientOf(t, d)
		if prev, ok := rcptOf[d.ID]; ok && prev != r {
			t.Errorf("webhook-id %s carried %s and %s", d.ID, prev, r)
		}
		rcptOf[d.ID] = r
	}
	perRcpt := map[string]int{}
	for _, r := range rcptOf {
		perRcpt[r]++
	}
	for r, k := range perRcpt {
		if k != 1 {
			t.Errorf("%s has %d distinct message.sent events", r, k)
		}
	}
	t.Logf("%d of %d messages acknowledged before the kill; %d events accepted before it; %d repeats after it",
		len(want), n, before, len(got)-len(count))
	if repeats := len(got) - len(count); repeats > 50 { // at most the batch being delivered
		t.Errorf("%d repeats", repeats)
	}
}

func recipientOf(t *testing.T, d webhooktest.Delivery) string {
	t.Helper()
	var data struct {
		Recipient string `json:"recipient"`
	}
	if err := json.Unmarshal(d.Data, &data); err != nil {
		t.Fatal(err)
	}
	return data.Recipient
}

// readmeBlock returns the fenced code block that follows the line
// "<!-- NAME: …" in README.md.
func readmeBlock(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "<!-- "+name+":")
	if !ok {
		t.Fatalf("README.md has no block marked %s", name)
	}
	_, rest, _ = strings.Cut(rest, "```")
	_, rest, _ = strings.Cut(rest, "\n") // the fence's language
	block, _, ok := strings.Cut(rest, "\n```")
	if !ok {
		t.Fatalf("README.md: the %s block does not end", name)
	}
	return block + "\n"
}

// lineWriter collects a process's output lines.
type lineWriter struct{ syncBuffer }

func (l *lineWriter) has(s string) bool { return strings.Contains(l.String(), s) }

// startReceiver runs a README receiver on a free port with the secret.
func startReceiver(t *testing.T, name string, secret string, argv ...string) (url string, out *lineWriter) {
	t.Helper()
	addr := freePort(t)
	_, port, _ := strings.Cut(addr, ":")
	cmd := exec.Command(argv[0], append(argv[1:], port)...)
	cmd.Env = append(os.Environ(), "PIXELRELAY_WEBHOOK_SECRET="+secret)
	out = &lineWriter{}
	cmd.Stdout, cmd.Stderr = out, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitFor(t, func() bool { return dialable(addr) })
	return "http://" + addr + "/hooks", out
}

// TestWebhookReceiversInREADME runs the README's Python and Go receivers
// as they are printed there: they accept what serve sends (one with the
// secret serve made, one with a secret from the config) and refuse a
// forged request.
func TestWebhookReceiversInREADME(t *testing.T) {
	dir := t.TempDir()
	py := filepath.Join(dir, "receiver.py")
	gosrc := filepath.Join(dir, "receiver.go")
	gobin := filepath.Join(dir, "receiver")
	os.WriteFile(py, []byte(readmeBlock(t, "receiver.py")), 0o600)
	os.WriteFile(gosrc, []byte(readmeBlock(t, "receiver.go")), 0o600)
	build := exec.Command("go", "build", "-o", gobin, gosrc)
	build.Dir = dir // outside the module: the receiver needs only the standard library
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("the README's Go receiver does not build: %v\n%s", err, out)
	}

	// serve makes the "py" endpoint's secret; the Python receiver is
	// started with it once it exists.
	goURL, goOut := startReceiver(t, "receiver.go", e2eSecret, gobin)
	in := newInstanceTracking(t, `prefetch_window = "0s"`, fmt.Sprintf(`
[[webhooks]]
name = "go"
url = %q
secret = %q

[[webhooks]]
name = "py"
url = "http://127.0.0.1:1/not-yet"
`, goURL, e2eSecret))
	in.start()
	made, err := os.ReadFile(filepath.Join(in.dir, "webhooks", "py.secret"))
	if err != nil {
		t.Fatalf("serve made no secret for py: %v", err)
	}
	assertMode(t, filepath.Join(in.dir, "webhooks", "py.secret"), 0o600)
	pyURL, pyOut := startReceiver(t, "receiver.py", strings.TrimSpace(string(made)), needTool(t, "python3"), py)
	cfg, _ := os.ReadFile(in.cfgPath)
	os.WriteFile(in.cfgPath+".tmp", []byte(strings.Replace(string(cfg), "http://127.0.0.1:1/not-yet", pyURL, 1)), 0o600)
	os.Rename(in.cfgPath+".tmp", in.cfgPath)
	waitFor(t, func() bool { s := in.webhooksJSON(); return len(s) == 2 && s[1].URL == pyURL })

	rcpts := []string{"alice@example.org", "bob@example.org"}
	if _, err := sendMail(t, in.smtpAddr, "me@example.com", rcpts, htmlMessage("me@example.com", rcpts, "readme")); err != nil {
		t.Fatal(err)
	}
	copies := in.waitOutbox(2, 10*time.Second)
	fetchPixel(t, pixelURLs(copies[0])[0], uaThunderbird)
	for name, out := range map[string]*lineWriter{"python": pyOut, "go": goOut} {
		deadline := time.Now().Add(20 * time.Second)
		for !(out.has(" message.sent alice@example.org") && out.has(" message.sent bob@example.org") && out.has(" message.opened ")) {
			if time.Now().After(deadline) {
				t.Fatalf("the README's %s receiver printed:\n%s\nwebhooks: %+v", name, out.String(), in.webhooksJSON())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	out, errOut, code := in.cli("webhooks", "test")
	if code != 0 || !strings.Contains(out, "go: 204 No Content") || !strings.Contains(out, "py: 204 No Content") {
		t.Fatalf("webhooks test: %d %q %q", code, out, errOut)
	}

	// A forged request (wrong key) and a replayed one (an hour-old
	// timestamp) are refused.
	goKey, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(e2eSecret, "whsec_"))
	wrongKey := []byte("another secret of 24 bytes")
	now := time.Now().Unix()
	for _, tc := range []struct {
		name, url string
		key       []byte
		ts        int64
	}{
		{"go, wrong key", goURL, wrongKey, now},
		{"go, old timestamp", goURL, goKey, now - 3600},
		{"python, wrong key", pyURL, goKey, now},
	} {
		if code := postSigned(t, tc.url, tc.key, tc.ts); code != 401 {
			t.Errorf("%s: %d, want 401", tc.name, code)
		}
	}
	if goOut.has("msg_forged") || pyOut.has("msg_forged") {
		t.Error("a receiver accepted a forged request")
	}
}

// postSigned posts a message.sent signed with key at ts and returns the
// answer's status.
func postSigned(t *testing.T, url string, key []byte, ts int64) int {
	t.Helper()
	body := `{"type":"message.sent","timestamp":"2026-01-01T00:00:00Z","data":{}}`
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "msg_forged.%d.%s", ts, body)
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("webhook-id", "msg_forged")
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
