package oauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"pixelrelay/internal/atomicfile"
)

// stored is the token file: what Login saved (and a refresh that rotated
// the refresh token).
type stored struct {
	Account      string    `json:"account"`
	Provider     string    `json:"provider,omitempty"`
	ClientID     string    `json:"client_id"`
	RefreshToken string    `json:"refresh_token"`
	SavedAt      time.Time `json:"saved_at"`
	// From is "login" (a sign-in) or "refresh" (a rotated refresh token).
	From string `json:"from"`
}

// Status is what is known of an account's sign-in: the token file and the
// last refresh of the server (or of Login).
type Status struct {
	Account string `json:"account"`
	// SignedIn: a refresh token is stored.
	SignedIn bool      `json:"signed_in"`
	SavedAt  time.Time `json:"signed_in_at,omitzero"`
	// Expiry is the current access token's.
	Expiry      time.Time `json:"token_expiry,omitzero"`
	LastRefresh time.Time `json:"last_refresh,omitzero"`
	// LastError is the last refresh's failure; "" after a success.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

func dir(dataDir string) string { return filepath.Join(dataDir, "oauth") }

// fileName keeps any account name one plain file name.
func fileName(kind, account string) string {
	return kind + "-" + url.PathEscape(account) + ".json"
}

// TokenPath is where account's refresh token is kept.
func TokenPath(dataDir, account string) string {
	return filepath.Join(dir(dataDir), fileName("token", account))
}

func statusPath(dataDir, account string) string {
	return filepath.Join(dir(dataDir), fileName("status", account))
}

// errNoToken: nobody signed the account in.
var errNoToken = errors.New("no refresh token stored")

func readToken(dataDir, account string) (stored, error) {
	var st stored
	b, err := os.ReadFile(TokenPath(dataDir, account))
	if errors.Is(err, fs.ErrNotExist) {
		return st, errNoToken
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s: %w", TokenPath(dataDir, account), err)
	}
	if st.RefreshToken == "" {
		return st, errNoToken
	}
	return st, nil
}

func writeToken(dataDir string, st stored) error {
	return writeJSON(TokenPath(dataDir, st.Account), st)
}

// ReadStatus reads account's token and status files in dataDir.
func ReadStatus(dataDir, account string) (Status, error) {
	var s Status
	b, err := os.ReadFile(statusPath(dataDir, account))
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &s); err != nil {
			return s, fmt.Errorf("%s: %w", statusPath(dataDir, account), err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return s, err
	}
	s.Account = account
	st, err := readToken(dataDir, account)
	if err != nil && !errors.Is(err, errNoToken) {
		return s, err
	}
	s.SignedIn = err == nil
	s.SavedAt = st.SavedAt
	return s, nil
}

func writeStatus(dataDir string, s Status) error {
	return writeJSON(statusPath(dataDir, s.Account), s)
}

// writeJSON replaces path with v as JSON, readable by its owner only:
// written to a temporary file, synced, renamed over path, and the
// directory synced.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	d := filepath.Dir(path)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o600)
}
