package httpd

import (
	"encoding/json"
	"reflect"
	"testing"

	"pixelrelay/config"
)

// TestStatusAccounts: GET /api/status lists [upstream] and each account
// with what it takes, and the dashboard's status page names them.
func TestStatusAccounts(t *testing.T) {
	f := newFixture(t, func(c *config.Config) {
		c.Upstream.URL = "smtp://smtp.gmail.com:587"
		c.Named = []config.Account{{Name: "work", Senders: []string{"@work.example"}, Upstream: config.Upstream{
			URL: "smtp://smtp.office365.com:587", Auth: "oauth", SentFolder: "off"}}}
	})
	resp, body := f.api("GET", "/api/status")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var st StatusResponse
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	zero := map[string]int{"queued": 0, "deferred": 0}
	want := []AccountStatus{
		{Name: "default", Upstream: "smtp://smtp.gmail.com:587", Senders: []string{}, SMTPUsers: []string{},
			Auth: "password", SentFolder: "on", Queue: zero},
		{Name: "work", Upstream: "smtp://smtp.office365.com:587", Senders: []string{"@work.example"}, SMTPUsers: []string{},
			Auth: "oauth", SentFolder: "off", Queue: zero},
	}
	if !reflect.DeepEqual(st.Accounts, want) {
		t.Errorf("accounts =\n%+v\nwant\n%+v", st.Accounts, want)
	}
	u, err := f.srv.uiStatus()
	if err != nil {
		t.Fatal(err)
	}
	if w := []string{"default (smtp://smtp.gmail.com:587)", "work (smtp://smtp.office365.com:587)"}; !reflect.DeepEqual(u.Accounts, w) {
		t.Errorf("status page accounts %v, want %v", u.Accounts, w)
	}
}
