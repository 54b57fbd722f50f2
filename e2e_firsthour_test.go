package main

// The first hour of a new user (issue 11): a config file that appears or
// breaks while serve runs, and the commands around it.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// withoutAdminKeyEnv makes the instance (and its commands) use the admin
// key in data_dir's secrets file, so that a command must read data_dir.
func withoutAdminKeyEnv(in *instance) {
	in.env = slices.DeleteFunc(in.env, func(kv string) bool {
		return strings.HasPrefix(kv, "PIXELRELAY_ADMIN_KEY=")
	})
}

// TestQueryCommandsWithBrokenConfig: after an edit with a mistake, serve
// keeps its last good config, and the query commands still reach it,
// warning in one line.
func TestQueryCommandsWithBrokenConfig(t *testing.T) {
	in := newInstance(t, "")
	withoutAdminKeyEnv(in)
	in.start()
	good, err := os.ReadFile(in.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, edit, warn string }{
		{"typo", "[queue]\nmax_agee = \"1d\"\n", "queue.max_agee: unknown key"},
		{"syntax", "[queue]\nmax_age = \"1d\n", "TOML syntax error at line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mark := len(in.logs.String())
			edited := strings.Replace(string(good), "[queue]\n", tc.edit, 1)
			if err := os.WriteFile(in.cfgPath, []byte(edited), 0o600); err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool { return strings.Contains(in.logs.String()[mark:], "keeping the last good config") })
			for _, args := range [][]string{{"status"}, {"opens"}, {"messages"}, {"queue", "--json"}} {
				out, errOut, code := in.cli(args...)
				if code != 0 || out == "" {
					t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
				}
				if strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "pixelrelay: warning: config ") ||
					!strings.Contains(errOut, tc.warn) {
					t.Errorf("%v: stderr %q, want one warning naming %q", args, errOut, tc.warn)
				}
			}
		})
	}
}

// TestPixelWithControlCharactersEndToEnd: a user agent with control
// characters gets the GIF from the real binary (net/http alone answers 400
// text/plain) and the open is recorded.
func TestPixelWithControlCharactersEndToEnd(t *testing.T) {
	in := newInstanceTracking(t, `prefetch_window = "0s"`, "")
	in.start()
	to := []string{"carol@example.org"}
	if _, err := sendMail(t, in.smtpAddr, "me@example.com", to, htmlMessage("me@example.com", to, "escape")); err != nil {
		t.Fatal(err)
	}
	pixel := pixelURLs(in.waitOutbox(1, 10*time.Second)[0])[0]
	u, err := url.Parse(pixel)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: Thunderbird\x1b[2J\x01/128\r\n\r\n", u.Path, u.Host)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/gif" || len(body) != 43 {
		t.Fatalf("pixel with control characters: %d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	waitFor(t, func() bool {
		out, _, _ := in.cli("opens", "--to", "carol@example.org", "--json")
		return strings.Contains(out, `"user_agent": "Thunderbird [2J /128"`) // each control character a space
	})
}
