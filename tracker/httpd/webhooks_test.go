package httpd

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"pixelrelay/config"
	"pixelrelay/tracker/webhook"
	"pixelrelay/tracker/webhook/webhooktest"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// TestWebhooksAPI: a pixel fetched over HTTP reaches a real receiver as a
// signed message.opened; /api/webhooks shows the endpoint and
// /api/webhooks/test pings it.
func TestWebhooksAPI(t *testing.T) {
	rcv := webhooktest.Start(t, testSecret)
	f := newRealFixture(t, func(c *config.Config) {
		c.Webhooks = []config.Webhook{{Name: "crm", URL: rcv.URL(), Secret: testSecret, HumanOnly: true}}
	})
	key, _ := webhook.ParseSecret(testSecret)
	m := webhook.New(webhook.Options{Outbox: f.st, Log: quiet})
	t.Cleanup(m.Close)
	m.Apply([]webhook.Config{{Endpoint: webhook.Endpoint{Name: "crm", URL: rcv.URL(), Key: key}, HumanOnly: true}})
	f.srv.opt.Webhooks = m
	auth := []string{"Authorization", "Bearer " + f.keys.AdminKey()}

	id, tok := f.sent("Bob@Example.com") // one message.sent
	f.do("GET", "/o/"+tok+".gif", uaTB)
	f.do("GET", "/o/"+tok+".gif", "curl/8.0") // a machine: human_only keeps it out
	f.settle()
	got := rcv.WaitAccepted(t, 2, 10*time.Second)
	if got[0].Type != webhook.Sent || got[1].Type != webhook.Opened {
		t.Fatalf("events %s, %s", got[0].Type, got[1].Type)
	}
	var open map[string]any
	if err := json.Unmarshal(got[1].Data, &open); err != nil {
		t.Fatal(err)
	}
	if open["tracking_id"] != id || open["user_agent"] != uaTB || open["first"] != true || open["from"] != "me@example.com" || open["status"] != "sent" {
		t.Errorf("message.opened data: %v", open)
	}

	// The receiver has the events a moment before the worker saves that.
	var wr WebhooksResponse
	var body []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var resp *http.Response
		resp, body = f.do("GET", "/api/webhooks", "cli", auth...)
		if err := json.Unmarshal(body, &wr); err != nil || resp.StatusCode != 200 || len(wr.Webhooks) != 1 {
			t.Fatalf("GET /api/webhooks: %d %s", resp.StatusCode, body)
		}
		if wr.Webhooks[0].Delivered == 2 || time.Now().After(deadline) {
			break
		}
	}
	if h := wr.Webhooks[0]; h.Name != "crm" || h.State != webhook.StateOK || h.Backlog != 0 || h.Delivered != 2 || h.LastSuccess == nil {
		t.Errorf("status %+v", h)
	}
	checkFields(t, "webhook", keysOf(t, mustObject(t, body, "webhooks")), []string{"name", "url", "events", "human_only", "secret_file",
		"state", "disabled_reason", "backlog", "oldest_waiting", "next_attempt", "failures", "last_success", "last_error", "last_error_at",
		"delivered", "expired", "dropped"})

	resp, body := f.do("POST", "/api/webhooks/test?name=crm", "cli", auth...)
	var tr WebhookTestResponse
	if err := json.Unmarshal(body, &tr); err != nil || resp.StatusCode != 200 || len(tr.Results) != 1 || !tr.Results[0].OK || tr.Results[0].Status != 200 {
		t.Fatalf("POST /api/webhooks/test: %d %s", resp.StatusCode, body)
	}
	if last := rcv.All()[len(rcv.All())-1]; last.Type != webhook.Ping || last.ID != tr.Results[0].WebhookID {
		t.Errorf("ping arrived as %+v", last)
	}
	resp, body = f.do("POST", "/api/webhooks/test?name=nope", "cli", auth...)
	if resp.StatusCode != 404 || !strings.Contains(string(body), `no such webhook named \"nope\"; configured: crm`) {
		t.Errorf("unknown name: %d %s", resp.StatusCode, body)
	}
	if resp, _ := f.do("GET", "/api/webhooks/test", "cli", auth...); resp.StatusCode != 405 {
		t.Errorf("GET /api/webhooks/test: %d", resp.StatusCode)
	}
	if resp, _ := f.do("GET", "/api/webhooks", "cli"); resp.StatusCode != 401 {
		t.Errorf("no admin key: %d", resp.StatusCode)
	}
	if n := rcv.BadSignatures(); n != 0 {
		t.Errorf("%d bad signatures", n)
	}
}

// TestWebhooksAPINone: without a manager the routes answer empty lists.
func TestWebhooksAPINone(t *testing.T) {
	f := newFixture(t, nil)
	for _, c := range []struct{ method, path, want string }{
		{"GET", "/api/webhooks", `{"webhooks":[]}`},
		{"POST", "/api/webhooks/test", `{"results":[]}`},
	} {
		resp, body := f.api(c.method, c.path)
		if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != c.want {
			t.Errorf("%s %s: %d %s", c.method, c.path, resp.StatusCode, body)
		}
	}
}

// mustObject returns the first element of the array under key.
func mustObject(t *testing.T, body []byte, key string) json.RawMessage {
	t.Helper()
	var m map[string][]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || len(m[key]) == 0 {
		t.Fatalf("%s: %v", body, err)
	}
	return m[key][0]
}
