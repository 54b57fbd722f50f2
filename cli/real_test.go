package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pixelrelay/config"
	"pixelrelay/relay/queue"
	"pixelrelay/tracker/httpd"
	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
	"pixelrelay/tracker/token"
)

// TestAgainstRealAdminAPI runs the commands against the real admin API
// (httpd over the real bbolt store and keyring in a temp data_dir), with
// the admin key read from that data_dir's secrets file.
func TestAgainstRealAdminAPI(t *testing.T) {
	dir := t.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	keys, err := token.OpenKeyring(filepath.Join(dir, "secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenStore(filepath.Join(dir, "pixelrelay.db"), store.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfgPath := filepath.Join(dir, "pixelrelay.toml")
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Path = cfgPath
	cfg.Tracking.PrefetchWindow = 0
	srv := httpd.New(httpd.Options{Config: func() *config.Config { return cfg }, Store: st, Keys: keys,
		Version: "7.7.7", Log: quiet, WaitForRecord: true})
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	body := "data_dir = \"" + dir + "\"\n[http]\nlisten = \"" + ts.Listener.Addr().String() + "\"\n"
	if err := os.WriteFile(cfgPath, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PIXELRELAY_ADMIN_KEY", "")

	sent := func(rcpt, subject string) (id, tok string) {
		id, tok, err := keys.Mint()
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		if err := st.Add([]record.Copy{{TrackingID: id, QueueID: "q", Recipient: rcpt, From: "me@example.com",
			Subject: subject, MessageID: "<m@example.com>", QueuedAt: now.Add(-2 * time.Hour)}}); err != nil {
			t.Fatal(err)
		}
		if err := st.Update(id, record.StatusSent, "", now.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		return id, tok
	}
	bobID, bobTok := sent("bob@example.com", "Quarterly numbers")
	carolID, _ := sent("carol@example.org", "Lunch")

	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/o/"+bobTok+".gif", nil)
	req.Header.Set("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The pixel is answered before the open is stored: wait for it.
	for deadline := time.Now().Add(5 * time.Second); ; {
		o, err := st.Opens(store.OpenQuery{ID: bobID})
		if err != nil {
			t.Fatal(err)
		}
		if len(o) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the open was not recorded")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// run with the real clock: the server stamps real times.
	realRun := func(args ...string) (int, string, string) {
		var out, errb strings.Builder
		e := &env{stdout: &out, stderr: &errb, now: time.Now}
		code := e.main(append(args, "--config", cfgPath))
		return code, out.String(), errb.String()
	}

	code, out, errOut := realRun("opens", strings.ToUpper(bobID))
	if code != 0 {
		t.Fatalf("opens ID: exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"copy     " + bobID, "to       bob@example.com", "subject  Quarterly numbers",
		"(1h ago)", "human (first)", "Chrome/120.0", "1 open, 1 human, 0 bot; first human open "} {
		if !strings.Contains(out, want) {
			t.Errorf("opens ID lacks %q:\n%s", want, out)
		}
	}

	code, out, _ = realRun("opens", "--json")
	var opens httpd.OpensResponse
	if err := json.Unmarshal([]byte(out), &opens); code != 0 || err != nil || len(opens.Opens) != 1 || opens.Opens[0].TrackingID != bobID {
		t.Errorf("opens --json: exit %d, err %v, %+v", code, err, opens)
	}

	code, out, _ = realRun("messages", "--unopened", "--since", "1d")
	if code != 0 || !strings.Contains(out, carolID) || strings.Contains(out, bobID) {
		t.Errorf("messages --unopened: exit %d, want carol's copy only:\n%s", code, out)
	}

	code, out, _ = realRun("status")
	if code != 0 || !strings.Contains(out, "version         7.7.7") ||
		!strings.Contains(out, "config file     "+cfgPath+"\n") || !strings.Contains(out, "tracking key    version 1") ||
		!strings.Contains(out, "tracked copies  2") {
		t.Errorf("status: exit %d:\n%s", code, out)
	}

	if code, out, _ = realRun("keys", "rotate"); code != 0 || !strings.Contains(out, "tracking key version 2 is now current") {
		t.Errorf("keys rotate: exit %d, %q", code, out)
	}
	if code, out, _ = realRun("status"); !strings.Contains(out, "tracking key    version 2") {
		t.Errorf("status after rotate: exit %d:\n%s", code, out)
	}

	code, out, errOut = realRun("purge", "--older-than", "1d")
	if code != 0 || !strings.HasPrefix(out, "deleted 0 opens, 0 clicks and 0 delivered copy records; database ") || !strings.Contains(errOut, "purging opens, clicks and delivered copies older than 1d") {
		t.Errorf("purge: exit %d, out %q, stderr %q", code, out, errOut)
	}

	code, _, errOut = realRun("queue")
	if code != 0 {
		t.Errorf("queue: exit %d, stderr %q", code, errOut)
	}
}

// TestStatusShowsDamagedSpool: spool files the real queue cannot read are
// moved aside at start; `pixelrelay status` over the real admin API says
// how many and where, not as waiting copies, and --json carries the count
// in the queue section.
func TestStatusShowsDamagedSpool(t *testing.T) {
	dir := t.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfgPath := filepath.Join(dir, "pixelrelay.toml")
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Path = cfgPath
	current := func() *config.Config { return cfg }
	spoolDir := cfg.SpoolDir()
	if err := os.MkdirAll(spoolDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"garbled.msg", "empty.msg"} {
		data := "\x00\x01 not an envelope\nSubject: x\r\n\r\nbody"
		if name == "empty.msg" {
			data = ""
		}
		if err := os.WriteFile(filepath.Join(spoolDir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	q, err := queue.New(queue.Options{Config: current, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	damaged := q.Damaged()
	if damaged < 2 {
		t.Fatalf("the queue moved %d files aside, want the 2 damaged ones", damaged)
	}
	keys, err := token.OpenKeyring(filepath.Join(dir, "secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenStore(filepath.Join(dir, "pixelrelay.db"), store.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := httpd.New(httpd.Options{Config: current, Store: st, Keys: keys, Queue: q, Version: "7.7.7", Log: quiet})
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	body := "data_dir = \"" + dir + "\"\n[http]\nlisten = \"" + ts.Listener.Addr().String() + "\"\n"
	if err := os.WriteFile(cfgPath, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PIXELRELAY_ADMIN_KEY", "")
	realRun := func(args ...string) (int, string, string) {
		var out, errb strings.Builder
		e := &env{stdout: &out, stderr: &errb, now: time.Now}
		code := e.main(append(args, "--config", cfgPath))
		return code, out.String(), errb.String()
	}

	code, out, errOut := realRun("status")
	wantLine := fmt.Sprintf("damaged         %d (moved aside in %s; see the server log)\n",
		damaged, filepath.Join(spoolDir, "damaged"))
	if code != 0 || !strings.Contains(out, wantLine) || !strings.Contains(out, "queue           empty\n") {
		t.Errorf("status: exit %d, stderr %q, want %q and an empty queue:\n%s", code, errOut, wantLine, out)
	}

	code, out, _ = realRun("status", "--json")
	var resp httpd.StatusResponse
	if err := json.Unmarshal([]byte(out), &resp); code != 0 || err != nil || resp.Queue["damaged"] != damaged {
		t.Errorf("status --json: exit %d, err %v, queue %v, want damaged %d", code, err, resp.Queue, damaged)
	}
}
