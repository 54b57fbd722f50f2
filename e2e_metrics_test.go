package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches /metrics from the running binary with the admin key and
// parses the Prometheus text format.
func scrape(t *testing.T, in *instance) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+in.httpAddr+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer test-admin-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("/metrics is not the Prometheus text format: %v\n%s", err, body)
	}
	return fams, string(body)
}

// sample sums the series of a family whose labels include the given pairs.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	sum := 0.0
	for _, m := range fams[name].GetMetric() {
		ok := true
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
			}
			ok = ok && found
		}
		if ok {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// TestMetricsEndToEnd: the real binary counts what happened to SMTP
// sessions, deliveries, pixel and click requests and purges, serves it
// behind the admin key, and shows no address, URL or token.
func TestMetricsEndToEnd(t *testing.T) {
	in := newInstanceTracking(t, `prefetch_window = "0s"`, "")
	in.start()
	before, _ := scrape(t, in) // start's probes were SMTP connections too
	resp, err := http.Get("http://" + in.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("/metrics without the key: %d", resp.StatusCode)
	}

	to := []string{"ann@example.org", "ben@example.org"}
	if _, err := sendMail(t, in.smtpAddr, "me@example.com", to, linkMessage("me@example.com", to, "metrics")); err != nil {
		t.Fatal(err)
	}
	c, err := smtp.Dial(in.smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("me@example.com", nil); err != nil {
		t.Fatal(err)
	}
	err = c.Rcpt("ann@[999.1.1.1]", nil) // go-smtp passes it on; the relay refuses it
	if se, ok := err.(*smtp.SMTPError); !ok || se.Code != 501 {
		t.Fatalf("RCPT of a bad address literal: %v, want 501", err)
	}
	c.Quit()
	copies := in.waitOutbox(2, 10*time.Second)
	fetchPixel(t, pixelURLs(copies[0])[0], uaThunderbird)
	fetchPixel(t, pixelURLs(copies[0])[0], uaThunderbird) // duplicate
	fetchPixel(t, "http://"+in.httpAddr+"/o/"+strings.Repeat("b", 48)+".gif", uaThunderbird)
	links := clickURLRE.FindAllStringSubmatch(copies[1], -1) // the link, then the honeypot
	if len(links) != 2 {
		t.Fatalf("%d click URLs in a copy, want the link and the honeypot", len(links))
	}
	getClick(t, links[0][1], uaThunderbird)
	getClick(t, links[1][1], uaThunderbird)
	getClick(t, links[0][1]+"x", uaThunderbird) // damaged
	if _, errOut, code := in.cli("purge", "--older-than", "30d"); code != 0 {
		t.Fatalf("purge: exit %d: %s", code, errOut)
	}

	var fams map[string]*dto.MetricFamily
	var body string
	waitFor(t, func() bool {
		fams, body = scrape(t, in)
		return sample(fams, "pixelrelay_pixel_requests_total", "outcome", "duplicate") == 1 &&
			sample(fams, "pixelrelay_click_requests_total", "outcome", "stored") == 2
	})
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"pixelrelay_smtp_sessions_total", nil, 2},
		{"pixelrelay_smtp_messages_total", []string{"result", "accepted", "code", "250"}, 1},
		{"pixelrelay_smtp_commands_refused_total", []string{"command", "rcpt", "code", "501"}, 1},
		{"pixelrelay_deliveries_total", []string{"result", "sent", "account", "default"}, 2},
		{"pixelrelay_upstream_seconds", []string{"account", "default"}, 2},
		{"pixelrelay_pixel_requests_total", []string{"outcome", "stored", "class", "human"}, 1},
		{"pixelrelay_pixel_requests_total", []string{"outcome", "forged"}, 1},
		{"pixelrelay_queue_copies", nil, 0},
		{"pixelrelay_store_copies", nil, 2},
		{"pixelrelay_store_opens", []string{"class", "human"}, 1},
		{"pixelrelay_click_requests_total", []string{"outcome", "stored", "class", "human"}, 1},
		{"pixelrelay_click_requests_total", []string{"outcome", "stored", "class", "honeypot"}, 1},
		{"pixelrelay_click_requests_total", []string{"outcome", "forged"}, 1},
		{"pixelrelay_store_clicks", nil, 2},
		// The request counter keeps the verdict at the request; the store
		// has what stands: the honeypot, fetched from the same network
		// right after, turned the first click into a scanner's.
		{"pixelrelay_store_clicks", []string{"class", "machine"}, 2},
		{"pixelrelay_purge_runs_total", []string{"result", "ok"}, 1},
		{"pixelrelay_purge_deleted_clicks_total", nil, 0},
	}
	for _, c := range checks {
		got := sample(fams, c.name, c.labels...)
		if c.name == "pixelrelay_smtp_sessions_total" {
			got -= sample(before, c.name)
		}
		if got != c.want {
			t.Errorf("%s %v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if sample(fams, "pixelrelay_store_size_bytes") <= 0 {
		t.Error("pixelrelay_store_size_bytes is not set")
	}
	for _, secret := range append(to, "me@example.com", "metrics", "example.com/start", links[0][1], links[1][1]) {
		if strings.Contains(body, secret) {
			t.Errorf("/metrics shows %q", secret)
		}
	}
}
