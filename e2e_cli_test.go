package main

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// fetchPixel fetches a pixel URL as a mail client with user agent ua.
func fetchPixel(t *testing.T, url, ua string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("User-Agent", ua)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("pixel answered %d", resp.StatusCode)
	}
}

const (
	uaThunderbird = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.4.0"
	uaGmailProxy  = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
	uaCurl        = "curl/8.5.0"
)

// TestCLIAgainstServe answers the user's two questions with one command
// each, in text and JSON: "did she open it, when, was it really her?" and
// "who has not opened it?".
func TestCLIAgainstServe(t *testing.T) {
	in := newInstanceTracking(t, `prefetch_window = "0s"`, "")
	in.start()

	to := []string{"Alice@Example.org", "bob@example.org"}
	if _, err := sendMail(t, in.smtpAddr, "me@example.com", to, htmlMessage("me@example.com", to, "lunch on friday")); err != nil {
		t.Fatal(err)
	}
	copies := in.waitOutbox(2, 10*time.Second)
	var alicePixel string
	for _, c := range copies {
		if strings.Contains(c, "Delivered-To: Alice@Example.org") {
			alicePixel = pixelURLs(c)[0]
		}
	}
	if alicePixel == "" {
		t.Fatalf("no copy for Alice in the outbox")
	}
	fetchPixel(t, alicePixel, uaCurl)        // a scanner
	fetchPixel(t, alicePixel, uaThunderbird) // Alice herself
	fetchPixel(t, alicePixel, uaThunderbird) // a duplicate: not counted
	fetchPixel(t, alicePixel, uaGmailProxy)  // through Gmail's proxy

	// JSON: exactly the API's shape.
	var opens struct {
		Opens []map[string]any `json:"opens"`
	}
	waitFor(t, func() bool {
		out, _, code := in.cli("opens", "--to", "alice@example.org", "--json")
		return code == 0 && json.Unmarshal([]byte(out), &opens) == nil && len(opens.Opens) == 3
	})
	kinds := map[string]bool{}
	for _, o := range opens.Opens {
		for _, key := range []string{"tracking_id", "recipient", "subject", "message_id", "sent_at", "opened_at", "ip", "user_agent", "bot", "bot_type", "proxy", "first", "reason"} {
			if _, ok := o[key]; !ok {
				t.Errorf("open lacks %q: %v", key, o)
			}
		}
		kinds[o["bot_type"].(string)+"/"+o["proxy"].(string)] = true
	}
	for _, want := range []string{"scanner/", "/", "/gmail"} {
		if !kinds[want] {
			t.Errorf("no open classified %q among %v", want, kinds)
		}
	}
	id := opens.Opens[0]["tracking_id"].(string)

	// Text: one command answers "did she open it, was it really her?".
	out, errOut, code := in.cli("opens", id)
	if code != 0 {
		t.Fatalf("opens ID: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"Alice@Example.org", "lunch on friday", "OPENED", "scanner", "gmail", "3 opens", "2 human"} {
		if !strings.Contains(out, want) {
			t.Errorf("`opens ID` output lacks %q:\n%s", want, out)
		}
	}

	// A mistyped id: one line, exit 1, not "no opens yet".
	for _, args := range [][]string{{"opens", "zzzzzzzzzzzzzzzz"}, {"opens", "zzzzzzzzzzzzzzzz", "--json"}} {
		out, errOut, code := in.cli(args...)
		if code != 1 || out != "" || errOut != "pixelrelay: no tracked copy has the id zzzzzzzzzzzzzzzz (pixelrelay messages lists them)\n" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}

	// "Who has not opened it?": bob.
	out, _, code = in.cli("messages", "--unopened", "--since", "3d")
	if code != 0 || !strings.Contains(out, "bob@example.org") || strings.Contains(out, "Alice@Example.org") {
		t.Fatalf("messages --unopened: exit %d\n%s", code, out)
	}
	var msgs struct {
		Messages []struct {
			Recipient  string `json:"recipient"`
			Status     string `json:"status"`
			OpensHuman int    `json:"opens_human"`
			OpensTotal int    `json:"opens_total"`
		} `json:"messages"`
	}
	out, _, _ = in.cli("messages", "--json")
	if err := json.Unmarshal([]byte(out), &msgs); err != nil || len(msgs.Messages) != 2 {
		t.Fatalf("messages --json: %v\n%s", err, out)
	}
	for _, m := range msgs.Messages {
		if m.Status != "sent" {
			t.Errorf("%s: status %q", m.Recipient, m.Status)
		}
		if strings.EqualFold(m.Recipient, "alice@example.org") && (m.OpensHuman != 2 || m.OpensTotal != 3) {
			t.Errorf("alice: %d human of %d opens, want 2 of 3", m.OpensHuman, m.OpensTotal)
		}
	}

	for _, args := range [][]string{{"status"}, {"status", "--json"}, {"queue"}, {"queue", "--json"}, {"keys", "rotate"}, {"purge", "--older-than", "90d"}, {"version"}, {"config", "check"}} {
		if out, errOut, code := in.cli(args...); code != 0 {
			t.Errorf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	// An old token keeps working after the rotation.
	fetchPixel(t, alicePixel, "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)")
	waitFor(t, func() bool {
		out, _, _ := in.cli("opens", id, "--json")
		return strings.Count(out, `"opened_at"`) == 4
	})

	// Wrong key and bad usage.
	in.env = append(in.env, "PIXELRELAY_ADMIN_KEY=not-the-key")
	_, errOut, code = in.cli("opens")
	if code != 1 || !strings.Contains(errOut, "admin key") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("wrong key: exit %d, stderr %q", code, errOut)
	}
	if _, _, code := in.cli("opens", "--limit", "many"); code != 2 {
		t.Errorf("bad --limit: exit %d, want 2", code)
	}
	if _, errOut, code := in.cli("opens", "--since", "last tuesday"); code != 2 || !strings.Contains(errOut, "7d") {
		t.Errorf("bad --since: exit %d, stderr %q", code, errOut)
	}
}

// TestCLINotRunning: a one-line hint and exit 1 when serve is not running.
func TestCLINotRunning(t *testing.T) {
	in := newInstance(t, "")
	_, errOut, code := in.cli("opens")
	if code != 1 || !strings.Contains(errOut, "not running") || !strings.Contains(errOut, "pixelrelay serve") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if n := strings.Count(strings.TrimSpace(errOut), "\n"); n != 0 {
		t.Fatalf("want one line, got %d: %q", n+1, errOut)
	}
}

// TestReloadKeepsConnections: a config change takes effect within a second
// while an SMTP session stays open across it.
func TestReloadKeepsConnections(t *testing.T) {
	in := newInstance(t, "")
	in.start()
	c, err := smtp.Dial(in.smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("e2e.test"); err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(in.cfgPath)
	changed := strings.Replace(string(cfg), "[tracking]\n", "[tracking]\nexclude = [\"@example.org\"]\n", 1)
	tmp := in.cfgPath + ".tmp"
	os.WriteFile(tmp, []byte(changed), 0o600)
	os.Rename(tmp, in.cfgPath)
	time.Sleep(time.Second)

	to := "alice@example.org"
	if err := c.Mail("me@example.com", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(to, nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(htmlMessage("me@example.com", []string{to}, "after reload")))
	if err := w.Close(); err != nil {
		t.Fatalf("the session opened before the reload failed after it: %v", err)
	}
	copies := in.waitOutbox(1, 10*time.Second)
	if len(pixelURLs(copies[0])) != 0 {
		t.Fatalf("excluded recipient still tracked after reload:\n%s", copies[0])
	}
	if !logged(in.logs, "tracking.exclude") {
		t.Errorf("reload log does not name the changed key:\n%s", in.logs.String())
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
