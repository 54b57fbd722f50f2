package httpd

import (
	"encoding/json"
	"strings"
	"testing"

	"pixelrelay/config"
)

func TestDashboardLoginRoute(t *testing.T) {
	f := newRealFixture(t, func(c *config.Config) { c.HTTP.TrustedProxies = []string{"127.0.0.1/32"} })
	key := "Bearer " + f.keys.AdminKey()
	if resp, _ := f.do("POST", "/api/dashboard/login", "cli"); resp.StatusCode != 401 {
		t.Errorf("without the key: %d", resp.StatusCode)
	}
	if resp, _ := f.do("GET", "/api/dashboard/login", "cli", "Authorization", key); resp.StatusCode != 405 {
		t.Errorf("GET: %d", resp.StatusCode)
	}
	resp, body := f.do("POST", "/api/dashboard/login", "cli", "Authorization", key)
	var r DashboardLoginResponse
	if err := json.Unmarshal(body, &r); resp.StatusCode != 200 || err != nil || !strings.HasPrefix(r.Path, "/ui/login?token=") {
		t.Fatalf("mint: %d %s", resp.StatusCode, body)
	}
	// Through a trusted proxy that says HTTPS, the cookie is Secure.
	resp, _ = f.do("GET", r.Path, "browser", "X-Forwarded-Proto", "https")
	if c := resp.Header.Get("Set-Cookie"); resp.StatusCode != 200 || !strings.Contains(c, "Secure") || !strings.Contains(c, "HttpOnly") {
		t.Errorf("sign-in over HTTPS: %d, cookie %q", resp.StatusCode, c)
	}
	resp, body = f.do("POST", "/api/dashboard/login", "cli", "Authorization", key)
	json.Unmarshal(body, &r)
	resp, _ = f.do("GET", r.Path, "browser")
	if c := resp.Header.Get("Set-Cookie"); resp.StatusCode != 200 || strings.Contains(c, "Secure") {
		t.Errorf("sign-in over HTTP: %d, cookie %q", resp.StatusCode, c)
	}
}

// TestNoDashboardWithoutAStoreForIt: a store that cannot feed the
// dashboard (the fakes) leaves /ui/ and the link route out.
func TestNoDashboardWithoutAStoreForIt(t *testing.T) {
	s := New(Options{Config: func() *config.Config { return config.Default() }, Store: newFakeStore(), Keys: &fakeKeys{admin: "k"}, Log: quiet})
	if s.ui != nil {
		t.Fatal("a dashboard over the fake store")
	}
}
