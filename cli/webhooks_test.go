package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pixelrelay/config"
	"pixelrelay/tracker/httpd"
	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
	"pixelrelay/tracker/token"
	"pixelrelay/tracker/webhook"
	"pixelrelay/tracker/webhook/webhooktest"
)

const hookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// TestWebhooksCommand runs `webhooks` and `webhooks test` against the real
// admin API, store and webhook manager, posting to real receivers: one
// that works, one that is down.
func TestWebhooksCommand(t *testing.T) {
	dir := t.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	keys, err := token.OpenKeyring(filepath.Join(dir, "secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenStore(filepath.Join(dir, "pixelrelay.db"), store.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	good := webhooktest.Start(t, hookSecret)
	bad := webhooktest.Start(t, hookSecret)
	bad.Down()
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Webhooks = []config.Webhook{
		{Name: "crm", URL: good.URL(), HumanOnly: true},
		{Name: "sheet", URL: bad.URL(), Secret: hookSecret, Events: []string{webhook.Bounced}, HumanOnly: true},
	}
	hooks := webhook.New(webhook.Options{Outbox: st, Log: quiet, Schedule: []time.Duration{time.Hour}})
	defer hooks.Close()
	hooks.Apply(webhookConfigs(cfg, quiet))
	srv := httpd.New(httpd.Options{Config: func() *config.Config { return cfg }, Store: st, Keys: keys,
		Webhooks: hooks, Version: "7.7.7", Log: quiet})
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	t.Setenv("PIXELRELAY_ADMIN_KEY", "")
	cfgPath := writeConfig(t, ts.Listener.Addr().String())
	// The config the commands read names the same data_dir (admin key).
	writeTo(t, cfgPath, "data_dir = \""+dir+"\"\n[http]\nlisten = \""+ts.Listener.Addr().String()+"\"\n")

	// crm's secret was made in data_dir and is what the receiver checks.
	made, _, err := webhook.LoadOrMakeSecret(filepath.Join(dir, "webhooks", "crm.secret"))
	if err != nil {
		t.Fatal(err)
	}
	good2 := webhooktest.Start(t, made)
	cfg.Webhooks[0].URL = good2.URL()
	hooks.Apply(webhookConfigs(cfg, quiet))

	if err := st.Add([]record.Copy{{TrackingID: "aaaaaaaaaaaaaaaa", Recipient: "bob@example.com"}}); err != nil {
		t.Fatal(err)
	}
	if err := st.Update("aaaaaaaaaaaaaaaa", record.StatusFailed, "550 no such user", time.Now()); err != nil {
		t.Fatal(err)
	}
	waitDelivered(t, hooks, 0, 1)
	waitStatus(t, hooks, func(s []webhook.Status) bool { return s[1].Failures > 0 })

	code, out, errOut := runNow("webhooks", "--config", cfgPath)
	if code != 0 {
		t.Fatalf("webhooks: exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") ||
		!strings.Contains(lines[1], "crm") || !strings.Contains(lines[1], " ok ") || !strings.Contains(lines[1], "just now") ||
		!strings.Contains(lines[2], "sheet") || !strings.Contains(lines[2], "retrying in") || !strings.Contains(lines[2], "1 (oldest") ||
		!strings.Contains(lines[2], "never") || !webhooktest.IsDownError(lines[2]) {
		t.Fatalf("webhooks table:\n%s", out)
	}

	code, out, _ = runNow("webhooks", "--json", "--config", cfgPath)
	var wr httpd.WebhooksResponse
	if err := json.Unmarshal([]byte(out), &wr); err != nil || code != 0 || len(wr.Webhooks) != 2 || wr.Webhooks[1].Backlog != 1 ||
		wr.Webhooks[0].SecretFile != filepath.Join(dir, "webhooks", "crm.secret") || wr.Webhooks[1].SecretFile != "" {
		t.Fatalf("webhooks --json: %d %v\n%s", code, err, out)
	}

	code, out, errOut = runNow("webhooks", "test", "crm", "--config", cfgPath)
	if code != 0 || !strings.HasPrefix(out, "crm: 200 OK in ") || !strings.Contains(out, "(webhook-id msg_") || errOut != "" {
		t.Fatalf("webhooks test crm: %d %q %q", code, out, errOut)
	}
	if last := good2.All()[len(good2.All())-1]; last.Type != webhook.Ping {
		t.Errorf("the receiver got %s", last.Type)
	}
	code, out, errOut = runNow("webhooks", "test", "--config", cfgPath)
	if code != 1 || !strings.Contains(out, "crm: 200 OK") || !strings.Contains(out, "sheet: failed after") ||
		errOut != "pixelrelay: the ping got no 2xx from sheet\n" {
		t.Fatalf("webhooks test (all): %d %q %q", code, out, errOut)
	}
	// The down endpoint comes back: a test resumes it, and its event goes.
	bad.Up(t)
	code, out, _ = runNow("webhooks", "test", "sheet", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "deliveries resume now") {
		t.Fatalf("webhooks test sheet: %d %q", code, out)
	}
	if got := bad.WaitAccepted(t, 2, 10*time.Second); got[1].Type != webhook.Bounced && got[0].Type != webhook.Bounced {
		t.Errorf("sheet got %s, %s", got[0].Type, got[1].Type)
	}
	waitDelivered(t, hooks, 1, 1)

	code, _, errOut = runNow("webhooks", "test", "nope", "--config", cfgPath)
	if code != 1 || !strings.Contains(errOut, `no such webhook named "nope"; configured: crm, sheet`) {
		t.Errorf("unknown name: %d %q", code, errOut)
	}
	code, _, errOut = runNow("webhooks", "retry", "--config", cfgPath)
	if code != 2 || !strings.Contains(errOut, `unknown webhooks subcommand "retry"`) {
		t.Errorf("bad subcommand: %d %q", code, errOut)
	}
	code, _, errOut = runNow("webhooks", "test", "a", "b", "--config", cfgPath)
	if code != 2 || !strings.Contains(errOut, `unexpected argument "b"`) {
		t.Errorf("two names: %d %q", code, errOut)
	}

	code, out, _ = runNow("status", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "webhook crm  ") || !strings.Contains(out, "webhook crm     ok, 0 waiting, 1 delivered") || !strings.Contains(out, "webhook sheet   ok, 0 waiting, 1 delivered") {
		t.Errorf("status:\n%s", out)
	}
}

func writeTo(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// runNow is run with the real clock (the server's times are real here).
func runNow(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, now: time.Now}
	code = e.main(args)
	return code, out.String(), errb.String()
}

// waitStatus waits until cond holds for the manager's status.
func waitStatus(t *testing.T, m *webhook.Manager, cond func([]webhook.Status) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := m.Status(config.RedactURL)
		if err != nil {
			t.Fatal(err)
		}
		if cond(s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook status: %+v", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitDelivered waits until endpoint i has delivered n events.
func waitDelivered(t *testing.T, m *webhook.Manager, i int, n uint64) {
	t.Helper()
	waitStatus(t, m, func(s []webhook.Status) bool { return s[i].Delivered == n })
}
