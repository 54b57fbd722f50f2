package httpd

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"pixelrelay/config"
	"pixelrelay/tracker/webhook"
)

// Webhooks is the webhook manager as the admin API uses it;
// *webhook.Manager implements it.
type Webhooks interface {
	Status(redact func(string) string) ([]webhook.Status, error)
	Test(ctx context.Context, name string, redact func(string) string) ([]webhook.TestResult, error)
}

// WebhooksResponse is GET /api/webhooks.
type WebhooksResponse struct {
	Webhooks []webhook.Status `json:"webhooks"`
}

// WebhookTestResponse is POST /api/webhooks/test.
type WebhookTestResponse struct {
	Results []webhook.TestResult `json:"results"`
}

// webhookStatus lists the endpoints; none when no manager is wired.
func (s *Server) webhookStatus() ([]webhook.Status, error) {
	if s.opt.Webhooks == nil {
		return []webhook.Status{}, nil
	}
	return s.opt.Webhooks.Status(config.RedactURL)
}

func (s *Server) apiWebhooks(w http.ResponseWriter, r *http.Request) {
	st, err := s.webhookStatus()
	if err != nil {
		s.internal(w, "webhooks", err)
		return
	}
	writeJSON(w, http.StatusOK, WebhooksResponse{Webhooks: st})
}

// apiWebhookTest sends a ping to the endpoint named by ?name=, or to all.
// It answers 200 with every result (a failed ping is a result, not an API
// error), 404 for an unknown name.
func (s *Server) apiWebhookTest(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSpace(r.URL.Query().Get("name"))
	if s.opt.Webhooks == nil {
		writeJSON(w, http.StatusOK, WebhookTestResponse{Results: []webhook.TestResult{}})
		return
	}
	res, err := s.opt.Webhooks.Test(r.Context(), name, config.RedactURL)
	if errors.Is(err, webhook.ErrNoSuchWebhook) {
		writeError(w, http.StatusNotFound, err.Error()+"; "+s.webhookNames())
		return
	}
	if err != nil {
		s.internal(w, "webhooks test", err)
		return
	}
	if res == nil {
		res = []webhook.TestResult{}
	}
	writeJSON(w, http.StatusOK, WebhookTestResponse{Results: res})
}

// webhookNames says which endpoints there are, for an error message.
func (s *Server) webhookNames() string {
	var names []string
	for _, h := range s.current().cfg.Webhooks {
		names = append(names, h.Name)
	}
	if len(names) == 0 {
		return "no [[webhooks]] are configured"
	}
	return "configured: " + strings.Join(names, ", ")
}
