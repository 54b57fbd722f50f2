package main

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/emersion/go-smtp"

	"pixelrelay/internal/browsertest"
	"pixelrelay/relay/smtptest"
)

// The dashboard through the real binary and a real browser: sign in with
// the one-time link from `pixelrelay dashboard`, see the sent copies, watch
// an open arrive without a reload, filter, search, open a timeline, visit
// every page, at 1280 and 375 pixels wide; watch a click arrive in a
// timeline; no console error, no request to anything but 127.0.0.1;
// screenshots kept.

// dashRig is a running serve with a fake upstream and a handful of copies
// in every state.
type dashRig struct {
	t     *testing.T
	in    *instance
	up    *smtptest.Server
	pixel map[string]string // recipient -> pixel URL
	click map[string]string // recipient -> the click URL of its first link
	ids   map[string]string // recipient -> tracking id
}

// linkMessage is htmlMessage with a link to follow.
func linkMessage(from string, to []string, subject string) string {
	return strings.Replace(htmlMessage(from, to, subject), "</p>", ` <a href="https://example.com/start?from=welcome">Get started</a></p>`, 1)
}

const (
	uaAppleMPP = "Mozilla/5.0" // exactly this: Apple Mail Privacy Protection
)

func newDashRig(t *testing.T) *dashRig {
	t.Helper()
	r := &dashRig{t: t, pixel: map[string]string{}, click: map[string]string{}, ids: map[string]string{}}
	replies := func(greylist bool) smtptest.Script {
		m := map[string]*smtp.SMTPError{
			"erin@example.org":  smtptest.Reply(550, 5, 1, 1, "no such user here"),
			"frank@example.com": smtptest.Reply(451, 4, 7, 1, "mailbox temporarily over quota"),
		}
		if greylist {
			m["dave@example.net"] = smtptest.Reply(451, 4, 3, 0, "greylisted, try again later")
		}
		return smtptest.Script{RcptReplies: m}
	}
	r.up = smtptest.Start(t, replies(true))
	r.in = newInstanceTracking(t, `prefetch_window = "0s"`, upstreamConfig(r.up, "", ""))
	r.in.start()
	mail := []struct {
		subject string
		to      []string
	}{
		{"Quarterly report: Q3 numbers", []string{"alice@example.org", "bob@example.com", "carol@example.net"}},
		{"Lunch on Friday?", []string{"dave@example.net"}},
		{"Invoice #2041", []string{"erin@example.org", "frank@example.com"}},
		{"Welcome aboard!", []string{"grace@example.com", "henry@example.org"}},
	}
	for _, m := range mail {
		msg := htmlMessage
		if strings.HasPrefix(m.subject, "Welcome") {
			msg = linkMessage
		}
		if _, err := sendMail(t, r.in.smtpAddr, "me@example.com", m.to, msg("Me <me@example.com>", m.to, m.subject)); err != nil {
			t.Fatal(err)
		}
	}
	plain := "From: me@example.com\r\nTo: ivan@example.org\r\nSubject: Plain note\r\n\r\nNo HTML here.\r\n"
	if _, err := sendMail(t, r.in.smtpAddr, "me@example.com", []string{"ivan@example.org"}, plain); err != nil {
		t.Fatal(err)
	}
	r.waitStatus("dave@example.net", "deferred")
	r.up.SetScript(replies(false)) // the greylisting ends
	for _, rc := range []string{"alice@example.org", "bob@example.com", "carol@example.net", "dave@example.net", "grace@example.com", "henry@example.org"} {
		r.waitStatus(rc, "sent")
	}
	r.waitStatus("erin@example.org", "failed")
	r.waitStatus("ivan@example.org", "sent")
	r.waitStatus("frank@example.com", "deferred")
	for _, m := range r.up.Messages() {
		for _, u := range pixelURLs(string(m.Data)) {
			r.pixel[m.To[0]] = u
		}
		if c := clickURLRE.FindStringSubmatch(string(m.Data)); c != nil {
			r.click[m.To[0]] = c[1]
		}
	}
	r.fetch("alice@example.org", uaThunderbird)
	r.fetch("bob@example.com", uaAppleMPP)
	r.fetch("carol@example.net", uaGmailProxy)
	r.fetch("dave@example.net", uaCurl)
	r.fetch("dave@example.net", uaThunderbird)
	r.waitOpens("dave@example.net", 2)
	return r
}

// messages reads /api/messages.
func (r *dashRig) messages() []struct {
	TrackingID string `json:"tracking_id"`
	Recipient  string `json:"recipient"`
	Status     string `json:"status"`
	OpensTotal int    `json:"opens_total"`
	OpensHuman int    `json:"opens_human"`
} {
	var resp struct {
		Messages []struct {
			TrackingID string `json:"tracking_id"`
			Recipient  string `json:"recipient"`
			Status     string `json:"status"`
			OpensTotal int    `json:"opens_total"`
			OpensHuman int    `json:"opens_human"`
		} `json:"messages"`
	}
	r.in.api("/api/messages?limit=500", &resp)
	for _, m := range resp.Messages {
		r.ids[m.Recipient] = m.TrackingID
	}
	return resp.Messages
}

func (r *dashRig) waitStatus(rcpt, status string) {
	r.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range r.messages() {
			if m.Recipient == rcpt && m.Status == status {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.t.Fatalf("%s did not reach status %s within 20s", rcpt, status)
}

func (r *dashRig) waitOpens(rcpt string, n int) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range r.messages() {
			if m.Recipient == rcpt && m.OpensTotal >= n {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.t.Fatalf("%s has fewer than %d opens after 10s", rcpt, n)
}

func (r *dashRig) fetch(rcpt, ua string) {
	r.t.Helper()
	u, ok := r.pixel[rcpt]
	if !ok {
		r.t.Fatalf("no pixel for %s", rcpt)
	}
	fetchPixel(r.t, u, ua)
}

// signInLink runs `pixelrelay dashboard --no-browser` and returns its link.
func (r *dashRig) signInLink() string {
	r.t.Helper()
	out, errOut, code := r.in.cli("dashboard", "--no-browser")
	if code != 0 {
		r.t.Fatalf("pixelrelay dashboard: exit %d: %s", code, errOut)
	}
	link := regexp.MustCompile(`http://\S+/ui/login\?token=\S+`).FindString(out)
	if link == "" {
		r.t.Fatalf("no sign-in link in:\n%s", out)
	}
	return link
}

func TestDashboardInBrowser(t *testing.T) {
	chrome := browsertest.Chromium(t)
	r := newDashRig(t)
	dir := browsertest.ArtifactDir(t)
	base := "http://" + r.in.httpAddr
	for _, w := range []struct {
		width int64
		live  string // the recipient whose open arrives while the page is open
	}{{1280, "grace@example.com"}, {375, "henry@example.org"}} {
		t.Run(fmt.Sprint(w.width), func(t *testing.T) {
			b := browsertest.New(t, chrome, w.width, dir)
			b.T = t
			link := r.signInLink()

			// Sign in with the one-time link: the list of sent copies.
			b.Do(chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("table.copies")))
			if u := browsertest.Eval[string](b, "location.href"); u != base+"/ui/" {
				t.Errorf("after sign-in the address is %s, want %s (no token left in it)", u, base+"/ui/")
			}
			rows := browsertest.Eval[[]string](b, `[...document.querySelectorAll("tr[data-id] td.to")].map(e => e.textContent.trim())`)
			if len(rows) != 9 || !strings.Contains(strings.Join(rows, " "), "carol@example.net") {
				t.Errorf("rows = %q, want the 9 copies", rows)
			}
			badges := browsertest.Eval[string](b, `document.querySelector('tr[data-id="`+r.ids["erin@example.org"]+`"] .badges').textContent`)
			if !strings.Contains(badges, "Bounced") {
				t.Errorf("erin's badges = %q, want Bounced", badges)
			}
			badges = browsertest.Eval[string](b, `document.querySelector('tr[data-id="`+r.ids["bob@example.com"]+`"] .badges').textContent`)
			if !strings.Contains(badges, "Machine only") {
				t.Errorf("bob's badges = %q, want Machine only", badges)
			}
			b.Shot("list")

			// Live: an open arrives while the page is open; the row
			// changes without a reload.
			b.Do(chromedp.Evaluate[chromedp.Void](`window.__sameDocument = 42`))
			if err := b.WaitTrue(`document.getElementById("live").classList.contains("on")`, 10*time.Second); err != nil {
				t.Fatalf("the live stream did not connect: %v", err)
			}
			start := time.Now()
			r.fetch(w.live, uaThunderbird)
			row := `document.querySelector('tr[data-id="` + r.ids[w.live] + `"]')`
			if err := b.WaitTrue(row+` && `+row+`.querySelector(".badge.opened") !== null && window.__sameDocument === 42`, 5*time.Second); err != nil {
				b.Shot("live-missed")
				t.Fatalf("the open of %s did not appear within 5s without a reload: %v", w.live, err)
			}
			t.Logf("live: the open appeared %v after the pixel was fetched", time.Since(start).Round(time.Millisecond))
			b.Shot("live")

			// Live on a timeline: the reader clicks the link; the click
			// shows, a person's, with its link, without a reload.
			b.Do(chromedp.Navigate(base+"/ui/m/"+r.ids[w.live]), chromedp.WaitVisible(chromedp.CSS("ol.timeline")),
				chromedp.Evaluate[chromedp.Void](`window.__sameDocument = 43`))
			if err := b.WaitTrue(`document.getElementById("live").classList.contains("on")`, 10*time.Second); err != nil {
				t.Fatalf("the live stream did not connect on the timeline: %v", err)
			}
			if code, loc, _ := getClick(t, r.click[w.live], uaThunderbird); code != http.StatusFound || loc != "https://example.com/start?from=welcome" {
				t.Fatalf("%s's click: %d to %q", w.live, code, loc)
			}
			start = time.Now()
			step := `document.querySelector("ol.timeline li.step.click")`
			if err := b.WaitTrue(step+` !== null && `+step+`.innerText.includes("Clicked by a person (first time)") && `+
				step+`.innerText.includes("https://example.com/start?from=welcome") && window.__sameDocument === 43`, 5*time.Second); err != nil {
				b.Shot("live-click-missed")
				t.Fatalf("the click of %s did not appear in its timeline within 5s without a reload: %v", w.live, err)
			}
			t.Logf("live: the click appeared %v after the link was followed", time.Since(start).Round(time.Millisecond))
			if badges := browsertest.Eval[string](b, `document.querySelector(".copy .badges").textContent`); !strings.Contains(badges, "Clicked") {
				t.Errorf("%s's badges after the click: %q", w.live, badges)
			}
			b.Shot("live-click")

			// Filter: clicked by a person.
			b.Do(chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.CSS("table.copies")),
				chromedp.Click(chromedp.CSS(`nav.tabs a[href*="f=clicked"]`)), chromedp.WaitVisible(chromedp.CSS(`nav.tabs a[href*="f=clicked"][aria-current]`)))
			rows = browsertest.Eval[[]string](b, `[...document.querySelectorAll("tr[data-id] td.to")].map(e => e.textContent.trim())`)
			if got := strings.Join(rows, " "); !strings.Contains(got, w.live) || strings.Contains(got, "alice@") {
				t.Errorf("clicked = %q: want %s, not alice (opened, no click)", rows, w.live)
			}

			// Filter: sent, no human open yet.
			b.Do(chromedp.Click(chromedp.CSS(`nav.tabs a[href*="f=unopened"]`)), chromedp.WaitVisible(chromedp.CSS("p.days")))
			rows = browsertest.Eval[[]string](b, `[...document.querySelectorAll("tr[data-id] td.to")].map(e => e.textContent.trim())`)
			got := strings.Join(rows, " ")
			if !strings.Contains(got, "bob@example.com") || strings.Contains(got, "alice@") || strings.Contains(got, "erin@") || strings.Contains(got, w.live) {
				t.Errorf("not opened = %q: want bob (machine only), not alice (opened), erin (bounced) or %s (opened live)", rows, w.live)
			}
			b.Shot("unopened")

			// Search by recipient.
			b.Do(chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.CSS("table.copies")),
				chromedp.SendKeys(chromedp.CSS(`input[name="q"]`), "carol\n"),
				chromedp.WaitVisible(chromedp.CSS("p.searchnote")))
			rows = browsertest.Eval[[]string](b, `[...document.querySelectorAll("tr[data-id] td.to")].map(e => e.textContent.trim())`)
			if len(rows) != 1 || rows[0] != "carol@example.net" {
				t.Errorf("search carol = %q", rows)
			}
			// ... and by subject.
			b.Do(chromedp.Navigate(base+"/ui/?q=invoice"), chromedp.WaitVisible(chromedp.CSS("p.searchnote")))
			if n := browsertest.Eval[int](b, `document.querySelectorAll("tr[data-id]").length`); n != 2 {
				t.Errorf("search invoice: %d rows, want erin and frank", n)
			}

			// A timeline: click dave's row (not its link).
			b.Do(chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.CSS("table.copies")),
				chromedp.Click(chromedp.CSS(`tr[data-id="`+r.ids["dave@example.net"]+`"] td.subj`)),
				chromedp.WaitVisible(chromedp.CSS("ol.timeline")))
			steps := browsertest.Eval[string](b, `document.querySelector("ol.timeline").innerText`)
			for _, want := range []string{"Accepted from the mail client", "Delivery attempt failed; will retry", "451 4.3.0 greylisted",
				"Delivered to the upstream", "Opened by a person", "Machine fetch: security scanner"} {
				if !strings.Contains(steps, want) {
					t.Errorf("dave's timeline lacks %q:\n%s", want, steps)
				}
			}
			b.Shot("timeline")

			// A copy sent without a pixel: its own filter, its reason, its timeline.
			b.Do(chromedp.Navigate(base+"/ui/?f=untracked"), chromedp.WaitVisible(chromedp.CSS("table.copies")))
			rows = browsertest.Eval[[]string](b, `[...document.querySelectorAll("tr[data-id] td.to")].map(e => e.textContent.trim())`)
			badges = browsertest.Eval[string](b, `document.querySelector("tr[data-id] .badge.untracked").title`)
			if len(rows) != 1 || rows[0] != "ivan@example.org" || badges != "Sent without a pixel: no HTML part" {
				t.Errorf("not tracked: %q, badge title %q", rows, badges)
			}
			b.Do(chromedp.Click(chromedp.CSS("tr[data-id] td.to a")), chromedp.WaitVisible(chromedp.CSS("ol.timeline")))
			if s := browsertest.Eval[string](b, `document.querySelector("ol.timeline").innerText`); !strings.Contains(s, "Sent without a pixel: no HTML part") || !strings.Contains(s, "Delivered to the upstream") {
				t.Errorf("ivan's timeline:\n%s", s)
			}

			for _, page := range []struct{ path, wait, want string }{
				{"/ui/activity?range=24h", "svg rect.click-human", "Latest clicks"},
				{"/ui/queue", "table.queue", "mailbox temporarily over quota"},
				{"/ui/status", "dl.facts", r.in.smtpAddr},
			} {
				b.Do(chromedp.Navigate(base+page.path), chromedp.WaitVisible(chromedp.CSS(page.wait)))
				if text := browsertest.Eval[string](b, `document.body.innerText`); !strings.Contains(text, page.want) {
					t.Errorf("%s does not show %q", page.path, page.want)
				}
				b.Shot(strings.TrimPrefix(strings.SplitN(page.path, "?", 2)[0], "/ui/"))
			}

			// The used link does not sign in a second time.
			b2 := browsertest.New(t, chrome, w.width, dir)
			b2.Name += "-signedout"
			b2.Expect("status of 401 (Unauthorized) " + link) // the page that says so
			b2.Do(chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("form")))
			if text := browsertest.Eval[string](b2, `document.body.innerText`); !strings.Contains(text, "expired or was already used") {
				t.Errorf("a used link: %q", text)
			}
			b2.Do(chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.CSS(`input[name="key"]`)))
			b2.Shot("login")
			b.Clean()
			b2.Clean()
		})
	}
}

// TestDashboardSecurityHeaders: every dashboard answer forbids inline
// script and framing; pages need a session; the session cookie is
// HttpOnly and SameSite=Strict; a cross-site POST is refused.
func TestDashboardSecurityHeaders(t *testing.T) {
	in := newInstance(t, "")
	in.start()
	base := "http://" + in.httpAddr
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(base + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login" {
		t.Errorf("/ui/ without a session: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP allows inline code: %q", csp)
	}

	out, _, code := in.cli("dashboard", "--no-browser")
	link := regexp.MustCompile(`http://\S+/ui/login\?token=\S+`).FindString(out)
	if code != 0 || link == "" {
		t.Fatalf("dashboard: %d %q", code, out)
	}
	resp, err = client.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	cookie := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"pixelrelay_session=", "HttpOnly", "SameSite=Strict", "Path=/ui/"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("Set-Cookie %q lacks %q", cookie, want)
		}
	}
	if strings.Contains(cookie, "Secure") {
		t.Errorf("Set-Cookie %q is Secure over plain HTTP: the browser would drop it", cookie)
	}
	session := strings.SplitN(cookie, ";", 2)[0]

	// A cross-site POST (sign out) is refused even with the cookie.
	req, _ := http.NewRequest("POST", base+"/ui/logout", strings.NewReader("csrf=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cookie", session)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site POST: %d, want 403", resp.StatusCode)
	}
	// A same-site one without the form's CSRF token too.
	req, _ = http.NewRequest("POST", base+"/ui/logout", strings.NewReader("csrf=wrong"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cookie", session)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST with a wrong CSRF token: %d, want 403", resp.StatusCode)
	}
	// The session still works.
	req, _ = http.NewRequest("GET", base+"/ui/status", nil)
	req.Header.Set("Cookie", session)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), in.smtpAddr) {
		t.Errorf("status page with the session: %d", resp.StatusCode)
	}
}
