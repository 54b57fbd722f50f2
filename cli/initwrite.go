package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"pixelrelay/config"

	"pixelrelay/internal/atomicfile"
)

// setupFiles are the files init writes; "" = none.
type setupFiles struct {
	config       string
	password     string // upstream.password_file
	clientSecret string // upstream.oauth_client_secret_file
}

// secretPath is the secret file called kind beside the config file
// ("config.toml" → "config.password").
func secretPath(configPath, kind string) string {
	stem := strings.TrimSuffix(configPath, filepath.Ext(configPath))
	return stem + "." + kind
}

// writeSetup writes the secrets (0600) and then the config file, which
// must pass the checks of `config check` first.
func writeSetup(path string, a *answers) (setupFiles, error) {
	f := setupFiles{config: path}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return f, err
	}
	var err error
	if f.password, err = writeSecret(path, "password", a.password); err != nil {
		return f, err
	}
	if f.clientSecret, err = writeSecret(path, "oauth-secret", a.clientSecret); err != nil {
		return f, err
	}
	text := renderConfig(a, f, time.Now())
	if _, err := config.ParseValid([]byte(text), path); err != nil {
		var ps config.Problems
		if errors.As(err, &ps) && len(ps) > 0 {
			return f, fmt.Errorf("the config init made has a problem: %s (%d in all); nothing was written to %s", ps[0], len(ps), displayPath(path))
		}
		return f, err
	}
	if err := atomicfile.Write(path, []byte(text), 0o644); err != nil {
		return f, fmt.Errorf("writing %s: %w", displayPath(path), err)
	}
	return f, removeUnused(path, f)
}

// writeSecret writes secret to the file called kind beside the config,
// readable by its owner only, and returns its path ("" for no secret).
func writeSecret(configPath, kind, secret string) (string, error) {
	if secret == "" {
		return "", nil
	}
	p := secretPath(configPath, kind)
	if err := atomicfile.Write(p, []byte(secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing %s: %w", displayPath(p), err)
	}
	return p, nil
}

// removeUnused removes the secret files of an earlier setup that this one
// does not use.
func removeUnused(configPath string, f setupFiles) error {
	for kind, used := range map[string]bool{"password": f.password != "", "oauth-secret": f.clientSecret != ""} {
		if used {
			continue
		}
		if err := os.Remove(secretPath(configPath, kind)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// renderConfig is the commented config file for a.
func renderConfig(a *answers, f setupFiles, now time.Time) string {
	p, _ := presetOf(a.provider)
	var b strings.Builder
	fmt.Fprintf(&b, "# pixelrelay configuration, written by `pixelrelay init` on %s for %s.\n", now.UTC().Format("2006-01-02"), p.title)
	b.WriteString("# `pixelrelay config check` checks it; every key is described in the README's Configuration\n")
	b.WriteString("# section. While `pixelrelay serve` runs, saving this file applies it.\n\n")
	b.WriteString("[upstream]\n")
	writeUpstream(&b, a, f, p)
	b.WriteString("\n[tracking]\n")
	b.WriteString("# Where recipients' mail clients load the pixel and follow links: a public https:// URL\n")
	b.WriteString("# reaching this machine's port 8025 (README: Expose the tracker over HTTPS).\n")
	kv(&b, "base_url", a.baseURL)
	return b.String()
}

func writeUpstream(b *strings.Builder, a *answers, f setupFiles, p preset) {
	if p.name == "outbox" {
		b.WriteString("# Each copy is written as an .eml file under data_dir/outbox/new: nothing is sent.\n")
		kv(b, "url", "outbox")
		return
	}
	who := p.title + "'s submission server"
	if p.name == "smtp" {
		who = "Your provider's submission server"
	}
	fmt.Fprintf(b, "# %s (smtp:// is STARTTLS; the certificate is verified).\n", who)
	kv(b, "url", a.upstream)
	if a.address != "" {
		kv(b, "username", a.address)
	}
	writeAuth(b, a, f, p)
	if a.caFile != "" {
		b.WriteString("# More CA certificates to trust for the SMTP and IMAP servers.\n")
		kv(b, "ca_file", a.caFile)
	}
	writeSentFolder(b, a, p)
}

func writeAuth(b *strings.Builder, a *answers, f setupFiles, p preset) {
	switch {
	case a.oauth:
		b.WriteString("# Sign in with OAuth (XOAUTH2): run `pixelrelay auth login` once; it keeps the refresh\n")
		b.WriteString("# token in data_dir/oauth, readable by you only.\n")
		kv(b, "auth", "oauth")
		if p.oauth != "" {
			kv(b, "oauth_provider", p.oauth)
		} else {
			kv(b, "oauth_auth_url", a.authURL)
			kv(b, "oauth_token_url", a.tokenURL)
		}
		kv(b, "oauth_client_id", a.clientID)
		if f.clientSecret != "" {
			b.WriteString("# The client secret, in a file only you can read (0600).\n")
			kv(b, "oauth_client_secret_file", f.clientSecret)
		}
	case f.password != "":
		fmt.Fprintf(b, "# The %s, in a file only you can read (0600); PIXELRELAY_UPSTREAM_PASSWORD overrides it.\n", p.secret)
		kv(b, "password_file", f.password)
	}
}

func writeSentFolder(b *strings.Builder, a *answers, p preset) {
	switch {
	case p.imap != "":
		fmt.Fprintf(b, "# %s files every copy it sends, pixel included, in your Sent folder: pixelrelay\n", p.title)
		b.WriteString("# replaces them with one copy without pixels, over IMAP with the same login.\n")
		kv(b, "sent_folder", "auto")
		kv(b, "imap_url", a.imapURL)
	case a.imapURL != "":
		b.WriteString("# After sending, pixelrelay replaces the copies with pixels that the server filed in\n")
		b.WriteString("# your Sent folder with one copy without pixels, over IMAP with the same login.\n")
		kv(b, "sent_folder", "on")
		kv(b, "imap_url", a.imapURL)
	default:
		if u := (config.Upstream{URL: a.upstream}); u.Provider() != "" {
			fmt.Fprintf(b, "# A server pixelrelay knows: it replaces the copies with pixels filed in your Sent folder\n# by one copy without pixels, over IMAP at %s with the same login.\n", u.IMAP())
		} else {
			b.WriteString("# Set imap_url and sent_folder = \"on\" if this server files sent mail in your Sent folder.\n")
		}
		kv(b, "sent_folder", "auto")
	}
}

// kv writes key = "value" as TOML.
func kv(b *strings.Builder, key, value string) {
	fmt.Fprintf(b, "%s = %s\n", key, tomlString(value))
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
