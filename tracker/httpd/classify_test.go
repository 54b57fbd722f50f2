package httpd

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"pixelrelay/config"
	"pixelrelay/tracker/classify"
	"pixelrelay/tracker/record"
	"pixelrelay/tracker/senders"
	"pixelrelay/tracker/store"
)

const (
	uaAppleMail = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
	uaChrome    = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)

func (f *fixture) last() store.Hit {
	f.t.Helper()
	hits := f.st.hitList()
	if len(hits) == 0 {
		f.t.Fatal("no hit recorded")
	}
	return hits[len(hits)-1]
}

// TestNetworksFileFromConfig: tracking.networks_file adds networks, with
// their source in the reason, and a reload applies a changed file.
func TestNetworksFileFromConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "nets.txt")
	write := func(text string) {
		if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("# test\n127.0.0.0/8 scanner Acme Gateway <https://acme.example/ips> 2026-12-04\n")
	f := newFixture(t, func(c *config.Config) { c.Tracking.NetworksFile = file })
	_, tok := f.mint()
	f.get("GET", "/o/"+tok+".gif", "User-Agent", uaChrome)
	if h := f.last(); h.BotType != classify.Scanner || h.Reason != "network: Acme Gateway 127.0.0.0/8" {
		t.Errorf("from a listed network: %+v", h)
	}
	// The file changes: read again within a second, without a config reload.
	write("127.0.0.0/8 human Our office, for a while\n")
	f.get("GET", "/o/"+tok+".gif", "User-Agent", uaChrome+" 2")
	if h := f.last(); h.BotType != classify.Scanner {
		t.Errorf("within the second: %+v", h)
	}
	now := t0.Add(2 * time.Second)
	f.clock.Store(&now)
	f.get("GET", "/o/"+tok+".gif", "User-Agent", uaChrome+" 3")
	if h := f.last(); h.Bot || h.Reason != classify.ReasonHuman {
		t.Errorf("after the file changed: %+v", h)
	}
	// A reload (a new config value) reads it too.
	write("127.0.0.0/8 prefetch Acme Prefetcher\n")
	next := *f.cfg.Load()
	f.cfg.Store(&next)
	f.get("GET", "/o/"+tok+".gif", "User-Agent", uaChrome+" 4")
	if h := f.last(); h.BotType != classify.Prefetch || h.Reason != "network: Acme Prefetcher 127.0.0.0/8" {
		t.Errorf("after the reload: %+v", h)
	}
}

// TestHeadThenGet: a HEAD records nothing, and a GET from the same client
// after it is a scanner's; another client's GET is not.
func TestHeadThenGet(t *testing.T) {
	f := newFixture(t, nil)
	_, tok := f.mint()
	f.get("HEAD", "/o/"+tok+".gif", "User-Agent", uaChrome)
	if n := len(f.st.hitList()); n != 0 {
		t.Fatalf("HEAD recorded %d hits", n)
	}
	f.get("GET", "/o/"+tok+".gif") // Thunderbird from the same address
	if h := f.last(); h.Bot {
		t.Errorf("another client after the HEAD: %+v", h)
	}
	f.get("GET", "/o/"+tok+".gif", "User-Agent", uaChrome)
	if h := f.last(); h.BotType != classify.Scanner || h.Reason != classify.ReasonHeadFirst {
		t.Errorf("GET after HEAD: %+v", h)
	}
}

// TestBurstOfNetworks: three networks fetching a copy within two minutes
// of its delivery: the third is a scanner; the first two stay people.
func TestBurstOfNetworks(t *testing.T) {
	f := newFixture(t, func(c *config.Config) { c.HTTP.TrustedProxies = []string{"127.0.0.1"} })
	id, tok, err := f.keys.Mint()
	if err != nil {
		t.Fatal(err)
	}
	f.st.add(record.Copy{TrackingID: id, SentAt: t0.Add(-30 * time.Second), Status: record.StatusSent})
	for i, ip := range []string{"198.51.100.7", "198.51.100.8", "203.0.113.9", "192.0.2.10"} {
		f.get("GET", "/o/"+tok+".gif", "User-Agent", uaChrome, "X-Forwarded-For", ip)
		h := f.last()
		switch {
		case i < 3 && h.Bot:
			t.Errorf("fetch %d from %s (network %d): %+v", i, ip, min(i+1, 2), h)
		case i == 3 && (h.BotType != classify.Scanner || h.Reason != "fetched from 3 networks within 2m0s of delivery"):
			t.Errorf("fetch %d from %s: %+v", i, ip, h)
		}
	}
}

// TestSelfFetches: off loopback, a fetch from an address that submitted
// mail within tracking.self_window is the sender's own view.
func TestSelfFetches(t *testing.T) {
	set := &senders.Set{}
	set.Note(netip.MustParseAddr("127.0.0.1"), t0.Add(-time.Hour))
	for _, tc := range []struct {
		name   string
		listen string
		window time.Duration
		self   bool
	}{
		{"relay off loopback", "0.0.0.0:587", 24 * time.Hour, true},
		{"window over", "0.0.0.0:587", 30 * time.Minute, false},
		{"turned off", "0.0.0.0:587", 0, false},
		{"relay on loopback", "127.0.0.1:2525", 24 * time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(c *config.Config) {
				c.SMTP.Listen = tc.listen
				c.Tracking.SelfWindow = config.Duration(tc.window)
			})
			f.srv.opt.Senders = set
			_, tok := f.mint()
			f.get("GET", "/o/"+tok+".gif")
			h := f.last()
			if (h.BotType == classify.Self) != tc.self || (tc.self && h.Reason != classify.ReasonSelf) {
				t.Errorf("%+v", h)
			}
		})
	}
}

// TestReclassifyAPI: POST /api/reclassify on a real store classifies the
// stored opens again; the fake store cannot (501); bad since is a 400.
func TestReclassifyAPI(t *testing.T) {
	f := newRealFixture(t, nil)
	id, tok := f.sent("bob@example.com")
	f.do("GET", "/o/"+tok+".gif", uaTB)
	f.settle()
	// Tomorrow's table says 127.0.0.0/8 is a gateway.
	file := filepath.Join(t.TempDir(), "nets.txt")
	if err := os.WriteFile(file, []byte("127.0.0.0/8 scanner Acme Gateway\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	next := *f.cfg.Load()
	next.Tracking.NetworksFile = file
	f.cfg.Store(&next)
	auth := []string{"Authorization", "Bearer " + f.keys.AdminKey()}
	resp, body := f.do("POST", "/api/reclassify?since=bogus", "cli", auth...)
	if resp.StatusCode != 400 || !strings.Contains(string(body), "since") {
		t.Errorf("bad since: %d %s", resp.StatusCode, body)
	}
	resp, body = f.do("GET", "/api/reclassify", "cli", auth...)
	if resp.StatusCode != 405 {
		t.Errorf("GET: %d", resp.StatusCode)
	}
	resp, body = f.do("POST", "/api/reclassify?since=7d", "cli", auth...)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var r ReclassifyResponse
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	if r.Examined != 1 || r.Changed != 1 || r.Before["human"] != 1 || r.After["bot:scanner"] != 1 {
		t.Errorf("%s", body)
	}
	opens := f.opens("id=" + id)
	if len(opens) != 1 || !opens[0].Bot || opens[0].Reason != "network: Acme Gateway 127.0.0.0/8" || opens[0].First {
		t.Errorf("%+v", opens)
	}

	ff := newFixture(t, nil)
	resp2, body2 := ff.get("POST", "/api/reclassify", "Authorization", "Bearer "+ff.keys.AdminKey())
	if resp2.StatusCode != 501 {
		t.Errorf("fake store: %d %s", resp2.StatusCode, body2)
	}
}

// TestRecentSetIsBounded: HEADs and bursts of many copies never hold more
// than maxRecent entries; the newest are still answered.
func TestRecentSetIsBounded(t *testing.T) {
	var r recentSet
	ip := netip.MustParseAddr("198.51.100.1")
	for i := range maxRecent + 5000 {
		id := strconv.Itoa(i)
		r.noteHead(id, ip, "ua", t0)
		r.burst(id, classify.Result{Reason: classify.ReasonHuman}, t0, t0.Add(time.Second*20), ip)
	}
	r.mu.Lock()
	n := len(r.m)
	r.mu.Unlock()
	if n > maxRecent {
		t.Errorf("%d entries, cap %d", n, maxRecent)
	}
	if !r.headFirst(strconv.Itoa(maxRecent+4999), ip, "ua", t0.Add(time.Minute)) {
		t.Error("the newest HEAD was forgotten")
	}
}
