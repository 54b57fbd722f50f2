package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// cmdAPIQ sends -warmup and then -n sequential GETs of -url with the admin key and prints the
// latency percentiles and the number of items in the first JSON array of
// the last answer (e.g. the length of "opens").
func cmdAPIQ(args []string) error {
	fs := newFlags("apiq")
	url := fs.String("url", "", "full URL, with the query")
	key := fs.String("key", "", "admin key (Authorization: Bearer)")
	n := fs.Int("n", 200, "requests")
	prefix := fs.String("prefix", "q_", "prefix of the printed keys")
	warmup := fs.Int("warmup", 5, "requests sent first and not counted (cold page cache)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	client := &http.Client{Timeout: 30 * time.Second}
	lat := make([]time.Duration, 0, *n)
	items := -1
	for i := -*warmup; i < *n; i++ {
		req, err := http.NewRequest("GET", *url, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+*key)
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
			return fmt.Errorf("%s: %s: %.200s", *url, resp.Status, body)
		}
		if i >= 0 {
			lat = append(lat, d)
		}
		if i == *n-1 {
			items = countItems(body)
		}
	}
	fmt.Printf("%sitems %d\n", *prefix, items)
	printLatencies(*prefix, lat)
	return nil
}

// countItems returns the length of the first array in a JSON object.
func countItems(body []byte) int {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return -1
	}
	for _, v := range m {
		var arr []json.RawMessage
		if json.Unmarshal(v, &arr) == nil {
			return len(arr)
		}
	}
	return -1
}
