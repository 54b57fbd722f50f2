package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// cmdUIQ signs in to the dashboard the way `pixelrelay dashboard` does (a
// one-time link from the admin API) and then, for each -path, sends
// -warmup and -n sequential GETs with the session cookie and prints the
// latency percentiles (keys PREFIX_p50_ms ...; the prefix is the path's
// name from -names) and the number of list rows or timeline steps of the
// last answer (PREFIX_items).
func cmdUIQ(args []string) error {
	fs := newFlags("uiq")
	base := fs.String("base", "", "http://HOST:PORT of serve")
	key := fs.String("key", "", "admin key")
	paths := fs.String("paths", "", "comma-separated dashboard paths")
	names := fs.String("names", "", "comma-separated key prefixes, one per path")
	n := fs.Int("n", 200, "requests per path")
	warmup := fs.Int("warmup", 5, "requests sent first and not counted")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ps, ns := strings.Split(*paths, ","), strings.Split(*names, ",")
	if len(ps) != len(ns) || *base == "" {
		return fmt.Errorf("-base, and as many -names as -paths, are required")
	}
	client := &http.Client{Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	cookie, err := uiSignIn(client, *base, *key)
	if err != nil {
		return err
	}
	for i, p := range ps {
		lat := make([]time.Duration, 0, *n)
		items := 0
		for j := -*warmup; j < *n; j++ {
			req, _ := http.NewRequest("GET", *base+p, nil)
			req.Header.Set("Cookie", cookie)
			start := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			d := time.Since(start)
			if err != nil {
				return err
			}
			if resp.StatusCode != 200 {
				return fmt.Errorf("%s: %s: %.200s", p, resp.Status, body)
			}
			if j >= 0 {
				lat = append(lat, d)
			}
			items = strings.Count(string(body), "<tr data-id=") + strings.Count(string(body), `<li class="step `)
		}
		fmt.Printf("%s_items %d\n", ns[i], items)
		printLatencies(ns[i]+"_", lat)
	}
	return nil
}

// uiSignIn gets a one-time link from the admin API and follows it; it
// returns the session cookie ("name=value").
func uiSignIn(client *http.Client, base, key string) (string, error) {
	req, _ := http.NewRequest("POST", base+"/api/dashboard/login", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	var link struct {
		Path string `json:"path"`
	}
	err = json.NewDecoder(resp.Body).Decode(&link)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		return "", fmt.Errorf("/api/dashboard/login: %s %v", resp.Status, err)
	}
	resp, err = client.Get(base + link.Path)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "pixelrelay_session" {
			return c.Name + "=" + c.Value, nil
		}
	}
	return "", fmt.Errorf("signing in with %s gave no session (%s)", link.Path, resp.Status)
}
