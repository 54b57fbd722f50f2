package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"pixelrelay/tracker/webhook"
)

// Webhook is one [[webhooks]] endpoint: it receives the events it lists,
// signed with its secret (Standard Webhooks).
type Webhook struct {
	// Name identifies the endpoint in `pixelrelay webhooks` and in the
	// database: letters, digits, '-' and '_', at most 64.
	Name string `toml:"name"`
	// URL is an http:// or https:// URL the events are POSTed to.
	URL string `toml:"url"`
	// Secret is "whsec_" + base64 of 24 to 64 bytes. It is read from
	// SecretFile when that is set; when both are empty, serve makes one
	// and keeps it in WebhookSecretPath.
	Secret     string `toml:"secret"`
	SecretFile string `toml:"secret_file"`
	// Events lists the event types sent; empty means all of them.
	Events []string `toml:"events"`
	// HumanOnly (default true) keeps machine opens and clicks out.
	HumanOnly bool `toml:"human_only"`
}

// setDefaults gives a [[webhooks]] block its defaults before its keys are
// decoded (decodeSlice calls it).
func (w *Webhook) setDefaults() { w.HumanOnly = true }

// maxWebhookName bounds a webhook's name.
const maxWebhookName = 64

// WebhookSecretPath is the 0600 file serve keeps a made secret of the
// endpoint named name in: data_dir/webhooks/NAME.secret.
func (c *Config) WebhookSecretPath(name string) string {
	return filepath.Join(c.DataDir, "webhooks", name+".secret")
}

// checkWebhooks validates every [[webhooks]] block.
func (c *Config) checkWebhooks(v *validator) {
	seen := map[string]int{}
	for i, w := range c.Webhooks {
		key := fmt.Sprintf("webhooks[%d]", i)
		if checkWebhookName(v, key+".name", w.Name) {
			if j, dup := seen[w.Name]; dup {
				v.add(key+".name", "%q is already used by webhooks[%d]", w.Name, j)
			} else {
				seen[w.Name] = i
			}
		}
		checkWebhookURL(v, key+".url", w.URL)
		switch {
		case w.Secret == "" && w.SecretFile != "":
			// The file could not be read: reported while loading.
		case w.Secret != "":
			if _, err := webhook.ParseSecret(w.Secret); err != nil {
				if w.SecretFile != "" {
					v.add(key+".secret_file", "%s: the secret %v", w.SecretFile, err)
				} else {
					v.add(key+".secret", "%v", err)
				}
			}
		}
		done := map[string]bool{}
		for j, e := range w.Events {
			ek := fmt.Sprintf("%s.events[%d]", key, j)
			switch {
			case !webhook.IsType(e):
				v.add(ek, "%q is not an event type; want one of %s", e, strings.Join(webhook.Types, ", "))
			case done[e]:
				v.add(ek, "%q is listed twice", e)
			}
			done[e] = true
		}
	}
}

func checkWebhookName(v *validator, key, name string) bool {
	switch {
	case name == "":
		v.add(key, "must be set (it names the endpoint in `pixelrelay webhooks`)")
	case len(name) > maxWebhookName:
		v.add(key, "is longer than %d characters", maxWebhookName)
	case strings.ContainsFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}):
		v.add(key, "%q may only hold letters, digits, '-' and '_'", name)
	default:
		return true
	}
	return false
}

func checkWebhookURL(v *validator, key, raw string) {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		v.add(key, "must be set: the http:// or https:// URL events are POSTed to")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https"):
		v.add(key, "%q must be an absolute http:// or https:// URL", raw)
	case u.Hostname() == "":
		v.add(key, "%q has no host", raw)
	case u.Fragment != "" || strings.HasSuffix(raw, "#"):
		v.add(key, "%q must not have a fragment", raw)
	}
}

// warnWebhooks adds the warnings about [[webhooks]] blocks.
func (c *Config) warnWebhooks(v *validator) {
	for i, w := range c.Webhooks {
		key := fmt.Sprintf("webhooks[%d]", i)
		if u, err := url.Parse(w.URL); err == nil && u.Scheme == "http" && !IsLoopback(u.Host) {
			v.add(key+".url", "%s is plain http to another machine: events (addresses, IPs, subjects) travel unencrypted; use https://", w.URL)
		}
		warnShared(v, key+".secret_file", w.SecretFile)
		if w.Secret != "" && w.SecretFile == "" && c.Path != "" {
			warnShared(v, key+".secret", c.Path)
		}
	}
}

// RedactURL returns a URL with any user:password@ (or token@) in it
// replaced by xxxxx@, safe to log and show.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = url.User("xxxxx")
	return u.String()
}
