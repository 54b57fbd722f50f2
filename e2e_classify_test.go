package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReclassifyThroughBinary: opens stored by the real binary in its
// bbolt file are classified again after the networks file changes:
// `pixelrelay reclassify` prints the counts before and after, `opens ID`
// shows the new reasons, the unopened list follows, and it all survives a
// restart.
func TestReclassifyThroughBinary(t *testing.T) {
	nets := filepath.Join(t.TempDir(), "networks.txt")
	if err := os.WriteFile(nets, []byte("# none yet\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := newInstanceTracking(t, "prefetch_window = \"0s\"\nnetworks_file = \""+nets+"\"", "")
	in.start()
	to := []string{"alice@example.org", "bob@example.org"}
	if _, err := sendMail(t, in.smtpAddr, "me@example.com", to, htmlMessage("me@example.com", to, "quarterly report")); err != nil {
		t.Fatal(err)
	}
	pixel := map[string]string{}
	for _, c := range in.waitOutbox(2, 10*time.Second) {
		for _, rcpt := range to {
			if strings.Contains(c, "Delivered-To: "+rcpt) {
				pixel[rcpt] = pixelURLs(c)[0]
			}
		}
	}
	fetchPixel(t, pixel["alice@example.org"], uaThunderbird)
	fetchPixel(t, pixel["alice@example.org"], uaCurl)
	fetchPixel(t, pixel["bob@example.org"], uaThunderbird)

	type open struct {
		TrackingID string `json:"tracking_id"`
		Bot        bool   `json:"bot"`
		BotType    string `json:"bot_type"`
		Reason     string `json:"reason"`
		First      bool   `json:"first"`
	}
	var opens struct{ Opens []open }
	waitFor(t, func() bool {
		out, _, code := in.cli("opens", "--to", "alice@example.org", "--json")
		return code == 0 && json.Unmarshal([]byte(out), &opens) == nil && len(opens.Opens) == 2
	})
	id := opens.Opens[0].TrackingID
	out, errOut, code := in.cli("opens", id)
	if code != 0 {
		t.Fatalf("opens ID: exit %d %s", code, errOut)
	}
	for _, want := range []string{"REASON", "no machine signature", "user agent: curl/", "1 human"} {
		if !strings.Contains(out, want) {
			t.Errorf("opens ID lacks %q:\n%s", want, out)
		}
	}
	if out, _, _ := in.cli("messages", "--unopened"); strings.Contains(out, "example.org") {
		t.Fatalf("both opened, yet unopened lists:\n%s", out)
	}

	// Tomorrow's networks: loopback is a gateway. The file is re-read
	// within a second; reclassify fixes the past.
	line := "127.0.0.0/8 scanner Test Gateway <https://example.invalid/ranges> 2026-12-04\n"
	if err := os.WriteFile(nets, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	out, errOut, code = in.cli("reclassify")
	if code != 0 {
		t.Fatalf("reclassify: exit %d %s", code, errOut)
	}
	for _, want := range []string{"reclassified 3 opens of 2 copies: 2 changed class", "CLASS", "BEFORE", "AFTER"} {
		if !strings.Contains(out, want) {
			t.Errorf("reclassify output lacks %q:\n%s", want, out)
		}
	}
	rows := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 3 {
			rows[f[0]] = f[1] + " " + f[2]
		}
	}
	if rows["human"] != "2 0" || rows["bot:scanner"] != "1 3" {
		t.Errorf("counts %v:\n%s", rows, out)
	}
	out, _, _ = in.cli("opens", id)
	for _, want := range []string{"network: Test Gateway 127.0.0.0/8", "0 human", "no human open yet"} {
		if !strings.Contains(out, want) {
			t.Errorf("opens ID after reclassify lacks %q:\n%s", want, out)
		}
	}
	out, _, _ = in.cli("messages", "--unopened")
	if !strings.Contains(out, "alice@example.org") || !strings.Contains(out, "bob@example.org") {
		t.Errorf("unopened after reclassify:\n%s", out)
	}
	// JSON, and nothing left to change.
	out, _, code = in.cli("reclassify", "--since", "1d", "--json")
	var res struct {
		Examined int            `json:"examined"`
		Changed  int            `json:"changed"`
		After    map[string]int `json:"after"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Examined != 3 || res.Changed != 0 || res.After["bot:scanner"] != 3 {
		t.Errorf("reclassify --json: exit %d %s", code, out)
	}
	if _, errOut, code := in.cli("reclassify", "extra"); code != 2 || errOut == "" {
		t.Errorf("reclassify with an argument: exit %d %q", code, errOut)
	}

	// The bbolt file keeps it across a restart.
	if err := in.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("stop: %v", err)
	}
	in.start()
	out, _, _ = in.cli("opens", id, "--json")
	if err := json.Unmarshal([]byte(out), &opens); err != nil || len(opens.Opens) != 2 {
		t.Fatalf("after restart: %v\n%s", err, out)
	}
	for _, o := range opens.Opens {
		if !o.Bot || o.First || !strings.HasPrefix(o.Reason, "network: Test Gateway") {
			t.Errorf("after restart: %+v", o)
		}
	}
}
