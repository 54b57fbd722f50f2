package cli

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"pixelrelay/config"
	"pixelrelay/metrics"
	"pixelrelay/tracker/httpd"
	"pixelrelay/tracker/store"
	"pixelrelay/tracker/webhook"
)

func webhooksCommand() *command {
	return &command{
		name:    "webhooks",
		summary: "webhook endpoints: backlog, last success, last error; test sends a ping",
		help: `Usage: pixelrelay webhooks [--json] [--config FILE]
       pixelrelay webhooks test [NAME] [--json] [--config FILE]

Lists the [[webhooks]] endpoints of the running server: whether each one is
ok, retrying (its last attempt failed; the next attempt is shown) or
disabled (it answered 410 Gone), how many events wait for it, its last
success and its last error.

"webhooks test" sends a signed "ping" event to the endpoint NAME (all of
them without NAME) and prints each answer; it exits 1 if one did not answer
with a 2xx. A 2xx from a disabled or retrying endpoint resumes its
deliveries at once.

Flags:
  --json          print the admin API's JSON instead of a table
  --config FILE   the config file naming the server's address and data_dir

Example:
  pixelrelay webhooks test crm
`,
		run: runWebhooks,
	}
}

// testTimeout bounds `webhooks test`: the server waits up to
// webhook.DefaultTimeout for each endpoint's answer.
var testTimeout = webhook.DefaultTimeout + 15*time.Second

func runWebhooks(e *env, args []string) error {
	fs, cfgPath := newFlags("webhooks")
	asJSON := fs.Bool("json", false, "")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 && pos[0] == "test" {
		if len(pos) > 2 {
			return usagef("unexpected argument %q", pos[2])
		}
		name := ""
		if len(pos) == 2 {
			name = pos[1]
		}
		return e.webhooksTest(*cfgPath, name, *asJSON)
	}
	if len(pos) > 0 {
		return usagef("unknown webhooks subcommand %q (there is: test)", pos[0])
	}
	c, err := e.connect(*cfgPath)
	if err != nil {
		return err
	}
	var resp httpd.WebhooksResponse
	body, err := c.getJSON("/api/webhooks", nil, &resp)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e.stdout, body)
	}
	if len(resp.Webhooks) == 0 {
		_, err := fmt.Fprintln(e.stdout, "no webhooks configured (add a [[webhooks]] block to the config file; see the README)")
		return err
	}
	_, err = fmt.Fprint(e.stdout, webhooksTable(resp.Webhooks, e.now()).render(e.width))
	return err
}

func webhooksTable(hooks []webhook.Status, now time.Time) *table {
	t := &table{
		header: []string{"NAME", "URL", "STATE", "BACKLOG", "LAST SUCCESS", "LAST ERROR"},
		flex:   map[int]int{1: 16, 5: 16},
	}
	for _, h := range hooks {
		t.add(h.Name, h.URL, stateText(h, now), backlogText(h, now), stampPtr(h.LastSuccess, now, "never"), lastErrorText(h, now))
	}
	return t
}

// stateText is "ok", "retrying (next in 5m)" or "disabled: 410 Gone …".
func stateText(h webhook.Status, now time.Time) string {
	switch h.State {
	case webhook.StateRetrying:
		if h.NextAttempt != nil && h.NextAttempt.After(now) {
			return "retrying " + relative(*h.NextAttempt, now)
		}
		return "retrying now"
	case webhook.StateDisabled:
		return "disabled: " + h.DisabledReason
	}
	return h.State
}

// backlogText is "0" or "12 (oldest 3h ago)".
func backlogText(h webhook.Status, now time.Time) string {
	s := strconv.Itoa(h.Backlog)
	if h.Backlog > 0 && h.OldestWaiting != nil {
		s += " (oldest " + relative(*h.OldestWaiting, now) + ")"
	}
	return s
}

func lastErrorText(h webhook.Status, now time.Time) string {
	if h.LastError == "" {
		return "-"
	}
	if h.LastErrorAt != nil {
		return relative(*h.LastErrorAt, now) + ": " + h.LastError
	}
	return h.LastError
}

// webhooksTest runs `webhooks test [NAME]`.
func (e *env) webhooksTest(cfgPath, name string, asJSON bool) error {
	c, err := e.connect(cfgPath)
	if err != nil {
		return err
	}
	q := url.Values{}
	setQuery(q, "name", strings.TrimSpace(name))
	body, err := c.do(http.MethodPost, "/api/webhooks/test", q, testTimeout)
	if err != nil {
		return err
	}
	var r httpd.WebhookTestResponse
	if err := c.decode(body, &r); err != nil {
		return err
	}
	if asJSON {
		err = writeJSON(e.stdout, body)
	} else if len(r.Results) == 0 {
		_, err = fmt.Fprintln(e.stdout, "no webhooks configured (add a [[webhooks]] block to the config file; see the README)")
	} else {
		for _, res := range r.Results {
			fmt.Fprintln(e.stdout, clean(testLine(res)))
		}
	}
	if err != nil {
		return err
	}
	var failed []string
	for _, res := range r.Results {
		if !res.OK {
			failed = append(failed, res.Name)
		}
	}
	if len(failed) > 0 {
		return &exitCode{code: exitFailure, msg: "the ping got no 2xx from " + strings.Join(failed, ", ")}
	}
	return nil
}

// testLine is "crm: 204 No Content in 35ms (webhook-id msg_…)".
func testLine(r webhook.TestResult) string {
	took := (time.Duration(r.TookMS) * time.Millisecond).String()
	if r.OK {
		s := fmt.Sprintf("%s: %d %s in %s (webhook-id %s)", r.Name, r.Status, http.StatusText(r.Status), took, r.WebhookID)
		if r.Resumed {
			s += "; deliveries resume now"
		}
		return s
	}
	return fmt.Sprintf("%s: failed after %s: %s", r.Name, took, r.Error)
}

// webhookConfigs turns the config's [[webhooks]] into what the manager
// runs. An endpoint without a secret gets one made and kept in data_dir
// (logged with its file, which the receiver needs); an endpoint whose
// secret cannot be kept is logged and left out.
func webhookConfigs(cfg *config.Config, log *slog.Logger) []webhook.Config {
	var out []webhook.Config
	for i, h := range cfg.Webhooks {
		secret, file := h.Secret, h.SecretFile
		if secret == "" {
			file = cfg.WebhookSecretPath(h.Name)
			s, made, err := webhook.LoadOrMakeSecret(file)
			if err != nil {
				log.Error("webhook left out: its secret cannot be kept", "key", fmt.Sprintf("webhooks[%d].secret", i), "webhook", h.Name, "err", err)
				continue
			}
			if made {
				log.Info("webhook: made a signing secret; give it to the receiver to verify events", "webhook", h.Name, "secret_file", file)
			}
			secret = s
		}
		key, err := webhook.ParseSecret(secret)
		if err != nil { // validated already; a made secret is parsed on load
			log.Error("webhook left out", "key", fmt.Sprintf("webhooks[%d].secret", i), "webhook", h.Name, "err", err)
			continue
		}
		out = append(out, webhook.Config{Endpoint: webhook.Endpoint{Name: h.Name, URL: h.URL, Key: key},
			Events: h.Events, HumanOnly: h.HumanOnly, SecretFile: file})
	}
	return out
}

// envWebhookTimescale, when set to a factor between 0 and 1, shortens the
// webhook retry waits and the 3-day limit by that factor. TESTS ONLY: the
// end-to-end tests walk the whole retry schedule in seconds.
const envWebhookTimescale = "PIXELRELAY_WEBHOOK_TIMESCALE"

func webhookOptions(st store.DB, log *slog.Logger) webhook.Options {
	opt := webhook.Options{Outbox: st, Log: log}
	v := os.Getenv(envWebhookTimescale)
	if v == "" {
		return opt
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 || f >= 1 {
		log.Warn(envWebhookTimescale+" ignored: want a factor between 0 and 1", "value", v)
		return opt
	}
	for _, d := range webhook.DefaultSchedule {
		opt.Schedule = append(opt.Schedule, time.Duration(float64(d)*f))
	}
	opt.MaxAge = time.Duration(float64(webhook.DefaultMaxAge) * f)
	log.Warn(envWebhookTimescale+" is set: webhook retry waits and their 3-day limit are scaled down (tests only)",
		"factor", f, "max_age", opt.MaxAge)
	return opt
}

// webhookLine is an endpoint's line in `pixelrelay status`:
// "ok, 0 waiting, 12 delivered" or "disabled: 410 Gone…, 3 dropped".
func webhookLine(h webhook.Status) string {
	now := time.Now()
	s := stateText(h, now) + ", " + backlogText(h, now) + " waiting, " + strconv.FormatUint(h.Delivered, 10) + " delivered"
	if h.Expired > 0 {
		s += ", " + strconv.FormatUint(h.Expired, 10) + " expired"
	}
	if h.Dropped > 0 {
		s += ", " + strconv.FormatUint(h.Dropped, 10) + " dropped"
	}
	if h.State != webhook.StateOK && h.LastError != "" {
		s += "; last error: " + h.LastError
	}
	return s
}

// watchWebhookMetrics exposes each endpoint's state on /metrics.
func watchWebhookMetrics(m *metrics.Metrics, hooks *webhook.Manager) {
	m.WatchWebhooks(func() ([]metrics.WebhookStats, error) {
		all, err := hooks.Status(config.RedactURL)
		out := make([]metrics.WebhookStats, len(all))
		for i, h := range all {
			out[i] = metrics.WebhookStats{Name: h.Name, Backlog: h.Backlog, Failures: h.Failures,
				Disabled: h.State == webhook.StateDisabled, Delivered: h.Delivered, Expired: h.Expired, Dropped: h.Dropped}
		}
		return out, err
	})
}
