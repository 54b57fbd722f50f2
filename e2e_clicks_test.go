package main

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset"

	"pixelrelay/tracker/classify"
	"pixelrelay/tracker/webhook"
	"pixelrelay/tracker/webhook/webhooktest"
)

// clickMessage is a newsletter with a plain-text part and an HTML part
// (quoted-printable) holding links of every kind.
func clickMessage(to []string) string {
	return "From: me@example.com\r\nTo: " + strings.Join(to, ", ") + "\r\nSubject: links\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n" +
		"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nReport: https://example.com/report?q=4&p=2\r\n" +
		"--alt\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"<html><body><p><a href=3D\"https://example.com/report?q=3D4&amp;p=3D2\">Report</a>=\r\n" +
		" <A HREF=3Dhttp://example.org/shop>Shop</A>=\r\n" +
		" <a href=3D'https://example.net/faq'>FAQ</a>=\r\n" +
		" <a href=3D\"mailto:me@example.com\">mail me</a> <a href=3D\"#top\">top</a>=\r\n" +
		" <a href=3D\"https://example.com/private\" data-pixelrelay-notrack>no</a></p></body></html>\r\n" +
		"--alt--\r\n"
}

var wantLinks = []string{"https://example.com/report?q=4&p=2", "http://example.org/shop", "https://example.net/faq"}

// copyParts returns the decoded text and HTML parts of a delivered copy.
func copyParts(t *testing.T, copy string) (text, html string) {
	t.Helper()
	e, err := message.Read(strings.NewReader(copy))
	if err != nil {
		t.Fatal(err)
	}
	mr := e.MultipartReader()
	if mr == nil {
		t.Fatal("copy is not multipart")
	}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return text, html
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p.Body)
		if ct, _, _ := p.Header.ContentType(); ct == "text/html" {
			html = string(b)
		} else {
			text = string(b)
		}
	}
}

var clickURLRE = regexp.MustCompile(`(?i)href=["'](http://[^"']+/c/[a-z2-7]+)["']`)

// noFollow is an HTTP client that shows redirects instead of following.
var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout: 10 * time.Second}

func getClick(t *testing.T, url, ua string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("User-Agent", ua)
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(body)
}

// TestClicksEndToEnd: through the real binary, a message's tracked copies
// carry click URLs for their http(s) links (not mailto, anchors, notrack
// links, nor the text part), each redirecting to exactly the message's
// URL and recorded; forged tokens never redirect; a gateway following
// every link and the honeypot is a scanner; a person's click makes the
// copy opened without its pixel; `clicks` and `messages` show it all;
// the webhook endpoint (human_only) gets message.clicked for the person's
// click only, once it has settled.
func TestClicksEndToEnd(t *testing.T) {
	rcv := webhooktest.Start(t, e2eSecret)
	in := newWebhookInstance(t, rcv.URL())
	in.start()
	to := []string{"alice@example.org", "bob@example.org"}
	if _, err := sendMail(t, in.smtpAddr, "me@example.com", to, clickMessage(to)); err != nil {
		t.Fatal(err)
	}
	clicks := map[string][]string{} // rcpt -> its click URLs, honeypot last
	for _, c := range in.waitOutbox(2, 15*time.Second) {
		text, html := copyParts(t, c)
		if text != "Report: https://example.com/report?q=4&p=2" { // the line break is the delimiter's
			t.Errorf("text part changed: %q", text)
		}
		for _, keep := range []string{`href="mailto:me@example.com"`, `href="#top"`, `href="https://example.com/private" data-pixelrelay-notrack`} {
			if !strings.Contains(html, keep) {
				t.Errorf("copy lost %s:\n%s", keep, html)
			}
		}
		var urls []string
		for _, m := range clickURLRE.FindAllStringSubmatch(html, -1) {
			urls = append(urls, m[1])
		}
		if len(urls) != len(wantLinks)+1 || !strings.Contains(html, `aria-hidden="true"`) {
			t.Fatalf("copy has %d click URLs, want %d and the honeypot:\n%s", len(urls), len(wantLinks), html)
		}
		for _, rcpt := range to {
			if strings.Contains(c, "Delivered-To: "+rcpt) {
				clicks[rcpt] = urls
			}
		}
	}
	alice, bob := clicks["alice@example.org"], clicks["bob@example.org"]

	// Alice clicks the report link: redirected to exactly its URL.
	code, loc, _ := getClick(t, alice[0], uaThunderbird)
	if code != http.StatusFound || loc != wantLinks[0] {
		t.Fatalf("alice's click: %d to %q, want 302 to %q", code, loc, wantLinks[0])
	}
	clickedAt := time.Now()

	// Forged and damaged tokens get the neutral page, never a redirect.
	base := alice[0][:strings.LastIndex(alice[0], "/c/")+3]
	tok := alice[0][len(base):]
	for _, bad := range []string{base + tok[:len(tok)-1] + "a", base + strings.Repeat("a", len(tok)), base + "%2F%2Fevil.example",
		base + "..%2Fevil", base + tok + "/x", "http://" + in.httpAddr + "//evil.example"} {
		if code, loc, body := getClick(t, bad, uaThunderbird); loc != "" || code == http.StatusFound || strings.Contains(body, "evil") {
			t.Errorf("%s: %d, Location %q", bad, code, loc)
		}
	}

	// Bob's gateway follows every link and the honeypot at once.
	const gateway = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
	for _, u := range bob {
		getClick(t, u, gateway)
	}

	type click struct {
		TrackingID string `json:"tracking_id"`
		URL        string `json:"url"`
		Bot        bool   `json:"bot"`
		BotType    string `json:"bot_type"`
		Reason     string `json:"reason"`
		First      bool   `json:"first"`
	}
	var got struct{ Clicks []click }
	waitFor(t, func() bool {
		out, _, code := in.cli("clicks", "--json")
		return code == 0 && json.Unmarshal([]byte(out), &got) == nil && len(got.Clicks) == 5
	})
	var aliceID, bobID string
	for _, c := range got.Clicks {
		switch {
		case c.URL == wantLinks[0] && !c.Bot && c.First:
			if aliceID == "" {
				aliceID = c.TrackingID
			}
		case c.Bot && c.BotType == classify.Scanner:
			bobID = c.TrackingID
		default:
			t.Errorf("unexpected click %+v", c)
		}
	}
	if aliceID == "" || bobID == "" || aliceID == bobID {
		t.Fatalf("clicks: %+v", got.Clicks)
	}
	out, _, code := in.cli("clicks", bobID)
	if code != 0 || strings.Count(out, "bot:scanner") != 4 || !strings.Contains(out, "honeypot") || !strings.Contains(out, "4 clicks, 0 human, 4 bot") {
		t.Errorf("clicks of bob's copy:\n%s", out)
	}

	// Once the click has settled, alice's copy is opened, its pixel never
	// fetched; bob's stays unopened.
	time.Sleep(time.Until(clickedAt.Add(classify.HoneypotWindow + time.Second)))
	type msg struct {
		TrackingID      string     `json:"tracking_id"`
		OpensHuman      int        `json:"opens_human"`
		FirstHumanOpen  *time.Time `json:"first_human_open"`
		ClicksTotal     int        `json:"clicks_total"`
		ClicksHuman     int        `json:"clicks_human"`
		FirstHumanClick *time.Time `json:"first_human_click"`
	}
	var msgs struct{ Messages []msg }
	waitFor(t, func() bool {
		out, _, code := in.cli("messages", "--unopened", "--json")
		return code == 0 && json.Unmarshal([]byte(out), &msgs) == nil && len(msgs.Messages) == 1
	})
	if msgs.Messages[0].TrackingID != bobID || msgs.Messages[0].ClicksTotal != 4 || msgs.Messages[0].ClicksHuman != 0 {
		t.Errorf("unopened: %+v", msgs.Messages)
	}
	in.api("/api/messages?id="+aliceID, &msgs)
	a := msgs.Messages[0]
	if a.OpensHuman != 1 || a.ClicksHuman != 1 || a.FirstHumanOpen == nil || a.FirstHumanClick == nil || !a.FirstHumanOpen.Equal(*a.FirstHumanClick) {
		t.Errorf("alice's copy: %+v", a)
	}
	out, _, _ = in.cli("opens", aliceID)
	if !strings.Contains(out, "human click on a link") {
		t.Errorf("opens of alice's copy do not say the click opened it:\n%s", out)
	}
	out, _, _ = in.cli("messages")
	if !strings.Contains(out, "CLICKS") {
		t.Errorf("messages has no CLICKS column:\n%s", out)
	}
	got2 := rcv.WaitFor(t, 20*time.Second, func(ds []webhooktest.Delivery) bool {
		return slices.ContainsFunc(ds, func(d webhooktest.Delivery) bool { return d.Type == webhook.Clicked })
	}, "message.clicked")
	var clicked []map[string]any
	seen := map[string]bool{} // webhook-id: a retry may repeat an event
	for _, d := range got2 {
		if d.Type != webhook.Clicked || seen[d.ID] {
			continue
		}
		seen[d.ID] = true
		var data map[string]any
		if err := json.Unmarshal(d.Data, &data); err != nil {
			t.Fatal(err)
		}
		clicked = append(clicked, data)
	}
	if len(clicked) != 1 || clicked[0]["tracking_id"] != aliceID || clicked[0]["url"] != wantLinks[0] || clicked[0]["bot"] != false {
		t.Errorf("message.clicked events: %v", clicked)
	}
	if err := in.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// TestSplitClicks: a relay whose tracker runs elsewhere sends copies whose
// click URLs point at that tracker; the tracker, which got each copy's
// link URLs with its registration (and no queue id), redirects to exactly
// them and records the click.
func TestSplitClicks(t *testing.T) {
	p := newSplitPair(t, noPrefetch, "")
	p.relay.start()
	to := []string{"alice@example.org", "bob@example.org"}
	before := len(p.relay.outbox())
	if _, err := sendMail(t, p.relay.smtpAddr, "me@example.com", to, clickMessage(to)); err != nil {
		t.Fatal(err)
	}
	urls := map[string][]string{}
	for _, c := range p.relay.waitOutbox(before+2, 15*time.Second) {
		_, html := copyParts(t, c)
		for _, m := range clickURLRE.FindAllStringSubmatch(html, -1) {
			if !strings.HasPrefix(m[1], "http://"+p.tracker.httpAddr+"/c/") {
				t.Fatalf("click URL %s is not on the tracker", m[1])
			}
			for _, r := range to {
				if strings.Contains(c, "Delivered-To: "+r) {
					urls[r] = append(urls[r], m[1])
				}
			}
		}
	}
	if len(urls[to[0]]) != len(wantLinks)+1 || len(urls[to[1]]) != len(wantLinks)+1 {
		t.Fatalf("click URLs: %v", urls)
	}
	p.registered(2)
	for i, r := range to {
		code, loc, _ := getClick(t, urls[r][i+1], uaThunderbird)
		if code != http.StatusFound || loc != wantLinks[i+1] {
			t.Fatalf("%s's click on the tracker: %d to %q, want %q", r, code, loc, wantLinks[i+1])
		}
	}
	var got struct {
		Clicks []struct {
			URL string `json:"url"`
			Bot bool   `json:"bot"`
		} `json:"clicks"`
	}
	waitFor(t, func() bool { p.tracker.api("/api/clicks", &got); return len(got.Clicks) == 2 })
	for _, c := range got.Clicks {
		if c.Bot || (c.URL != wantLinks[1] && c.URL != wantLinks[2]) {
			t.Errorf("click on the tracker: %+v", c)
		}
	}
}
