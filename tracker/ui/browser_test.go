package ui

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"pixelrelay/internal/browsertest"
	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
)

// A week of someone's mail, for looking at: TestDashboardLooks renders the
// pages over it in a real browser, checks them, and keeps screenshots.
// PIXELRELAY_UPDATE_DOCS=1 also writes docs/dashboard.png, the README's.

type demoMail struct {
	ago     time.Duration // how long ago it was sent
	subject string
	to      []string
}

var demo = []demoMail{
	{9 * 24 * time.Hour, "Your March newsletter", []string{"ana.costa@northwind.example", "li.wei@contoso.example", "mark@fabrikam.example", "priya@adatum.example", "tom.h@litware.example", "sofia@tailspin.example"}},
	{6*24*time.Hour + 3*time.Hour, "Proposal: website redesign", []string{"j.martin@contoso.example", "dana@fabrikam.example"}},
	{4*24*time.Hour + 5*time.Hour, "Team offsite: dates and venue", []string{"li.wei@contoso.example", "priya@adatum.example", "omar@woodgrove.example"}},
	{2*24*time.Hour + 7*time.Hour, "Re: contract renewal", []string{"legal@fabrikam.example"}},
	{26 * time.Hour, "Invoice #2041", []string{"accounts@tailspin.example", "billing@old-domain.example"}},
	{5 * time.Hour, "Quick question about the API", []string{"dev@northwind.example"}},
	{40 * time.Minute, "Slides from today's call", []string{"j.martin@contoso.example", "ana.costa@northwind.example"}},
}

// demoStore fills a store with demo: opens by people (some through Gmail's
// proxy) hours after delivery, Apple's privacy fetches at delivery, a
// bounce, a copy waiting for a retry.
func demoStore(t *testing.T, st *store.Store, now time.Time) (ids map[string]string) {
	t.Helper()
	ids = map[string]string{}
	n := 0
	for mi, m := range demo {
		sent := now.Add(-m.ago)
		for ri, rcpt := range m.to {
			n++
			id := strings.NewReplacer("0", "a", "1", "b", "8", "c", "9", "d").Replace(fmt.Sprintf("demo%012d", n))
			ids[m.subject+"|"+rcpt] = id
			c := record.Copy{TrackingID: id, QueueID: fmt.Sprint("q", mi), Recipient: rcpt, From: "maria@example.com",
				Subject: m.subject, MessageID: fmt.Sprintf("<demo-%d@example.com>", mi), QueuedAt: sent.Add(-2 * time.Second),
				Links: demoLinks[m.subject]}
			if strings.HasPrefix(m.subject, "Proposal") || strings.HasPrefix(m.subject, "Re: contract") {
				c.Account = "work"
			}
			if err := st.Add([]record.Copy{c}); err != nil {
				t.Fatal(err)
			}
			switch rcpt {
			case "billing@old-domain.example":
				st.Update(id, record.StatusDeferred, "451 4.4.1 connection timed out", sent)
				st.Update(id, record.StatusFailed, "550 5.1.1 mailbox unavailable", sent.Add(time.Minute))
				continue
			case "dev@northwind.example":
				st.Update(id, record.StatusDeferred, "421 4.7.0 try again later", sent)
				continue
			}
			st.Update(id, record.StatusSent, "", sent)
			hits := demoOpens(id, sent, now, mi*10+ri)
			for _, h := range hits {
				if _, err := st.Record(h); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range demoClicks(id, len(c.Links), sent, now, mi*10+ri) {
				if _, err := st.RecordClick(c); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return ids
}

// demoLinks are the links of the demo's messages that have some.
var demoLinks = map[string][]string{
	"Your March newsletter":      {"https://northwind.example/blog/spring-roadmap", "https://northwind.example/events/march-meetup?utm_source=mail", "https://northwind.example/pricing"},
	"Proposal: website redesign": {"https://drive.example/proposal-v3.pdf"},
	"Slides from today's call":   {"https://slides.example/d/quarterly-review"},
}

// demoClicks decides, by k, who followed a copy's links: a reader some
// time after opening it, or a security gateway following every link (and
// the hidden one) at delivery.
func demoClicks(id string, links int, sent, now time.Time, k int) []store.ClickHit {
	if links == 0 {
		return nil
	}
	const safari = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"
	at := func(d time.Duration) time.Time {
		if t := sent.Add(d); t.Before(now) {
			return t
		}
		return now.Add(-time.Minute)
	}
	switch k % 5 {
	case 0, 2:
		return []store.ClickHit{{TrackingID: id, Link: 1 + k%links, At: at(time.Duration(50+k*7) * time.Minute), IP: fmt.Sprintf("198.51.100.%d", 10+k),
			UserAgent: safari, Reason: "no machine signature"}}
	case 3:
		var cs []store.ClickHit
		for n := 0; n <= links; n++ {
			cs = append(cs, store.ClickHit{TrackingID: id, Link: n, At: at(5*time.Second + time.Duration(n)*200*time.Millisecond), IP: "40.107.212.9",
				UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/109.0", Bot: true, BotType: "scanner",
				Reason: "network: Microsoft Exchange Online Protection 40.107.0.0/16"})
		}
		return cs
	}
	return nil
}

// demoOpens decides, by k, how a copy delivered at sent was read.
func demoOpens(id string, sent, now time.Time, k int) []store.Hit {
	const bird = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Thunderbird/128.6.0"
	const gmail = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
	var hits []store.Hit
	at := func(d time.Duration) time.Time {
		if t := sent.Add(d); t.Before(now) {
			return t
		}
		return now.Add(-time.Minute)
	}
	if k%3 == 0 { // an Apple Mail reader: the privacy proxy fetches at delivery
		hits = append(hits, store.Hit{TrackingID: id, At: at(8 * time.Second), IP: "17.58.101.12", UserAgent: "Mozilla/5.0", Bot: true, BotType: "apple_mpp", Reason: "network: Apple Mail Privacy Protection 17.0.0.0/8"})
	}
	switch k % 5 {
	case 0, 1:
		hits = append(hits, store.Hit{TrackingID: id, At: at(time.Duration(35+k*7) * time.Minute), IP: fmt.Sprintf("203.0.113.%d", 10+k), UserAgent: bird, Reason: "no machine sign"})
		if k%2 == 0 {
			hits = append(hits, store.Hit{TrackingID: id, At: at(time.Duration(20+k) * time.Hour), IP: fmt.Sprintf("203.0.113.%d", 10+k), UserAgent: bird, Reason: "no machine sign"})
		}
	case 2:
		hits = append(hits, store.Hit{TrackingID: id, At: at(time.Duration(2+k%4) * time.Hour), IP: "66.249.84.7", UserAgent: gmail, Proxy: "gmail", Reason: "user agent: GoogleImageProxy"})
	case 3:
		hits = append(hits, store.Hit{TrackingID: id, At: at(3 * time.Minute), IP: "40.107.212.5", UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/109.0", Bot: true, BotType: "scanner", Reason: "network: Microsoft Exchange Online Protection 40.107.0.0/16"})
	}
	return hits
}

func TestDashboardLooks(t *testing.T) {
	chrome := browsertest.Chromium(t)
	f := newFixture(t)
	now := time.Now().UTC()
	ids := demoStore(t, f.st, now)
	f.clk.add(now.Sub(f.clk.now()))
	dir := browsertest.ArtifactDir(t)
	for _, width := range []int64{1280, 375} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			b := browsertest.New(t, chrome, width, dir)
			b.Name = fmt.Sprintf("demo-%d", width)
			tok, _ := f.h.MintLogin()
			b.Do(chromedp.Navigate(f.ts.URL+"/ui/login?token="+url.QueryEscape(tok)), chromedp.WaitVisible(chromedp.CSS("table.copies")))
			if n := browsertest.Eval[int](b, `document.querySelectorAll("tr[data-id]").length`); n != 17 {
				t.Errorf("%d rows, want the 17 copies", n)
			}
			text := browsertest.Eval[string](b, `document.body.innerText`)
			for _, want := range []string{"Bounced", "Retrying", "Machine only", "Opened", "Clicked", "machine clicks", "work", "Slides from today's call", "days ago"} {
				if !strings.Contains(text, want) {
					t.Errorf("the list does not show %q", want)
				}
			}
			list := b.Shot("list")
			if width == 1280 && os.Getenv("PIXELRELAY_UPDATE_DOCS") == "1" {
				png, err := os.ReadFile(list)
				if err == nil {
					err = os.WriteFile(filepath.Join("..", "..", "docs", "dashboard.png"), png, 0o644)
				}
				if err != nil {
					t.Fatal(err)
				}
				t.Log("wrote docs/dashboard.png")
			}
			b.Do(chromedp.Navigate(f.ts.URL+"/ui/activity?range=7d"), chromedp.WaitVisible(chromedp.CSS("svg rect.human")))
			if bars := browsertest.Eval[int](b, `document.querySelectorAll("svg g.col").length`); bars != 7 {
				t.Errorf("7 days drawn as %d bars", bars)
			}
			b.Shot("activity")
			b.Do(chromedp.Navigate(f.ts.URL+"/ui/m/"+ids["Invoice #2041|billing@old-domain.example"]), chromedp.WaitVisible(chromedp.CSS("ol.timeline")))
			if s := browsertest.Eval[string](b, `document.querySelector("ol.timeline").innerText`); !strings.Contains(s, "550 5.1.1 mailbox unavailable") {
				t.Errorf("the bounce's timeline: %q", s)
			}
			b.Shot("bounce")
			b.Do(chromedp.Navigate(f.ts.URL+"/ui/m/"+ids["Your March newsletter|ana.costa@northwind.example"]), chromedp.WaitVisible(chromedp.CSS("ol.timeline")))
			if s := browsertest.Eval[string](b, `document.querySelector("ol.timeline").innerText`); !strings.Contains(s, "Clicked by a person") ||
				!strings.Contains(s, "https://northwind.example/") {
				t.Errorf("the newsletter's timeline lacks its reader's click: %q", s)
			}
			b.Shot("timeline")
			b.Do(chromedp.Navigate(f.ts.URL+"/ui/m/"+ids["Your March newsletter|priya@adatum.example"]), chromedp.WaitVisible(chromedp.CSS("ol.timeline")))
			if s := browsertest.Eval[string](b, `document.querySelector("ol.timeline").innerText`); !strings.Contains(s, "Machine fetched the hidden trap link") ||
				!strings.Contains(s, "Machine click: security scanner") {
				t.Errorf("the scanned copy's timeline: %q", s)
			}
			b.Shot("scanned")
			b.Clean()
		})
	}
}
