package sentfolder

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"pixelrelay/internal/dovecottest"
)

// fakeTokens is a TokenSource: the token it hands out, and whether the
// refused one was given back.
type fakeTokens struct {
	mu          sync.Mutex
	token       string
	err         error
	invalidated int
}

func (f *fakeTokens) Token(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.token, f.err
}

func (f *fakeTokens) Invalidate() { f.mu.Lock(); f.invalidated++; f.mu.Unlock() }

// TestReplaceXOAUTH2: with an OAuth token source the job signs in with
// XOAUTH2 (Dovecot checks the token at a token-info endpoint), and a
// refused token is a setup failure that drops the token; a token source
// that fails (a revoked sign-in) says so.
func TestReplaceXOAUTH2(t *testing.T) {
	info := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.RawQuery, "=live-token") {
			http.Error(w, `{"error":"invalid_token"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"email":"` + testUser + `"}`))
	}))
	defer info.Close()
	s := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{testUser: testPass},
		TokenInfoURL: info.URL + "/tokeninfo?access_token="})
	tests := []struct {
		name        string
		tokens      *fakeTokens
		want        string // "" for success
		invalidated int
	}{
		{"live token", &fakeTokens{token: "live-token"}, "", 0},
		{"refused token", &fakeTokens{token: "stale-token"}, "IMAP login as " + testUser + " refused", 1},
		{"sign-in revoked", &fakeTokens{err: errors.New("run pixelrelay auth login")}, "OAuth token: run pixelrelay auth login", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := Account{URL: "imap://" + s.IMAPAddr, TLS: "none", Username: testUser, Token: tt.tokens}
			_, err := Replace(context.Background(), a, testMessage())
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Replace: %v\n%s", err, s.Log())
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err %v, want %q", err, tt.want)
			}
			var se *SetupError
			if tt.want != "" && !errors.As(err, &se) {
				t.Errorf("%v is not a setup error", err)
			}
			if tt.tokens.invalidated != tt.invalidated {
				t.Errorf("token invalidated %d times, want %d", tt.tokens.invalidated, tt.invalidated)
			}
		})
	}
	if n := len(s.Messages(t, testUser, testPass, "Sent")); n != 1 {
		t.Errorf("Sent holds %d copies after the XOAUTH2 run, want 1", n)
	}
}
