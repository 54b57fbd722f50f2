package webhook

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Status is one endpoint as `pixelrelay webhooks` and GET /api/webhooks
// show it.
type Status struct {
	Name       string   `json:"name"`
	URL        string   `json:"url"` // without credentials
	Events     []string `json:"events"`
	HumanOnly  bool     `json:"human_only"`
	SecretFile string   `json:"secret_file"` // "" when the secret is in the config file
	// State is "ok" (nothing failing), "retrying" (the last attempt
	// failed; NextAttempt says when the next one is) or "disabled" (a
	// 410 Gone: DisabledReason).
	State          string     `json:"state"`
	DisabledReason string     `json:"disabled_reason"`
	Backlog        int        `json:"backlog"` // events waiting
	OldestWaiting  *time.Time `json:"oldest_waiting"`
	NextAttempt    *time.Time `json:"next_attempt"`
	Failures       int        `json:"failures"` // failed attempts since the last success
	LastSuccess    *time.Time `json:"last_success"`
	LastError      string     `json:"last_error"`
	LastErrorAt    *time.Time `json:"last_error_at"`
	Delivered      uint64     `json:"delivered"`
	Expired        uint64     `json:"expired"` // dropped after MaxAge without a 2xx
	Dropped        uint64     `json:"dropped"` // dropped when a 410 disabled the endpoint
}

// Endpoint states in Status.State.
const (
	StateOK       = "ok"
	StateRetrying = "retrying"
	StateDisabled = "disabled"
)

// Status returns every configured endpoint's state, in config order.
// redact removes credentials from a URL.
func (m *Manager) Status(redact func(string) string) ([]Status, error) {
	out := []Status{}
	for _, c := range m.configs() {
		st, err := m.opt.Outbox.WebhookState(c.Name)
		if err != nil {
			return nil, err
		}
		n, oldest, err := m.opt.Outbox.WebhookBacklog(c.Name)
		if err != nil {
			return nil, err
		}
		if st.URL != c.URL { // not started on this URL yet
			st = State{Delivered: st.Delivered, Expired: st.Expired, Dropped: st.Dropped, LastSuccess: st.LastSuccess}
		}
		s := Status{
			Name: c.Name, URL: redact(c.URL), Events: c.Events, HumanOnly: c.HumanOnly, SecretFile: c.SecretFile,
			State: StateOK, DisabledReason: st.DisabledReason, Backlog: n, OldestWaiting: timePtr(oldest),
			Failures: st.Failures, LastSuccess: timePtr(st.LastSuccess),
			LastError: st.LastError, LastErrorAt: timePtr(st.LastErrorAt),
			Delivered: st.Delivered, Expired: st.Expired, Dropped: st.Dropped,
		}
		if s.Events == nil {
			s.Events = append([]string(nil), Types...)
		}
		switch {
		case st.Disabled:
			s.State = StateDisabled
		case st.Failures > 0:
			s.State = StateRetrying
			s.NextAttempt = timePtr(st.NextAttempt)
		}
		out = append(out, s)
	}
	return out, nil
}

// configs returns the endpoints' configs in config order.
func (m *Manager) configs() []Config {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Config
	for _, name := range m.order {
		if w := m.workers[name]; w != nil {
			out = append(out, w.config())
		}
	}
	return out
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// TestResult is the outcome of one ping (`pixelrelay webhooks test`).
type TestResult struct {
	Name      string `json:"name"`
	URL       string `json:"url"`
	WebhookID string `json:"webhook_id"`
	OK        bool   `json:"ok"`
	Status    int    `json:"status"` // 0: no answer
	Error     string `json:"error"`
	TookMS    int64  `json:"took_ms"`
	// Resumed is true when the 2xx enabled a disabled endpoint again or
	// cut a retry wait short: its waiting events go now.
	Resumed bool `json:"resumed"`
}

// ErrNoSuchWebhook is returned by Test for a name that is not configured.
var ErrNoSuchWebhook = errors.New("no such webhook")

// Test sends a signed ping to the endpoint named name, or to every endpoint
// when name is "", and waits for the answers. A ping is not stored and not
// retried. A 2xx from an endpoint that was disabled or waiting to retry
// resumes its deliveries at once.
func (m *Manager) Test(ctx context.Context, name string, redact func(string) string) ([]TestResult, error) {
	var targets []*worker
	m.mu.Lock()
	for _, n := range m.order {
		if name == "" || n == name {
			targets = append(targets, m.workers[n])
		}
	}
	m.mu.Unlock()
	if name != "" && len(targets) == 0 {
		return nil, fmt.Errorf("%w named %q", ErrNoSuchWebhook, name)
	}
	out := make([]TestResult, len(targets))
	done := make(chan struct{})
	for i, w := range targets {
		go func() {
			defer func() { done <- struct{}{} }()
			out[i] = m.ping(ctx, w, redact)
		}()
	}
	for range targets {
		<-done
	}
	return out, nil
}

// ping sends one ping through w's endpoint.
func (m *Manager) ping(ctx context.Context, w *worker, redact func(string) string) TestResult {
	c := w.config()
	now := m.opt.Now()
	id := NewID()
	body := fmt.Appendf(nil, `{"type":%q,"timestamp":%q,"data":{"webhook":%q}}`,
		Ping, now.UTC().Format(time.RFC3339Nano), c.Name)
	res := Post(ctx, m.opt.Client, &c.Endpoint, id, body, now)
	r := TestResult{Name: c.Name, URL: redact(c.URL), WebhookID: id, OK: res.OK(), Status: res.Status,
		Error: res.Err, TookMS: res.Took.Milliseconds()}
	if res.OK() {
		st, err := m.opt.Outbox.WebhookState(c.Name)
		if err == nil && st.URL == c.URL && (st.Disabled || st.Failures > 0) {
			r.Resumed = true
			select {
			case w.reset <- struct{}{}:
			default:
			}
			m.wake([]string{c.Name})
			m.log.Info("webhook: a test ping got a 2xx; deliveries resume", "webhook", c.Name)
		}
	}
	return r
}
