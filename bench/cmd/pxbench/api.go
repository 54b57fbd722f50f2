package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"
)

// cmdAPI makes one admin API request and prints the named fields of the JSON
// answer (dotted paths, e.g. database.opens) and the request's wall time.
func cmdAPI(args []string) error {
	fs := newFlags("api")
	method := fs.String("method", "GET", "HTTP method")
	url := fs.String("url", "", "full URL")
	key := fs.String("key", "", "admin key")
	fields := fs.String("fields", "", "comma-separated dotted JSON paths to print")
	limit := fs.Duration("timeout", 10*time.Minute, "request timeout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	req, err := http.NewRequest(*method, *url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+*key)
	start := time.Now()
	resp, err := (&http.Client{Timeout: *limit}).Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %.300s", *method, *url, resp.Status, body)
	}
	fmt.Printf("wall_secs %.3f\n", time.Since(start).Seconds())
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("%s: not JSON: %.200s", *url, body)
	}
	for _, f := range strings.Split(*fields, ",") {
		if f == "" {
			continue
		}
		v := doc
		for _, k := range strings.Split(f, ".") {
			m, _ := v.(map[string]any)
			v = m[k]
		}
		if v == nil {
			return fmt.Errorf("no field %s in %.300s", f, body)
		}
		fmt.Printf("%s %v\n", strings.ReplaceAll(f, ".", "_"), jsonScalar(v))
	}
	return nil
}

func jsonScalar(v any) string {
	if f, ok := v.(float64); ok {
		return fmt.Sprintf("%.0f", f)
	}
	return fmt.Sprint(v)
}

var (
	pixelURL = regexp.MustCompile(`/o/([A-Za-z0-9_.~-]+)\.gif`)
	clickURL = regexp.MustCompile(`href="[^"]*/c/([a-z2-7]+)"`)
)

// cmdToken prints the first pixel token found in a file of delivered mail
// (quoted-printable soft line breaks and =3D are undone first); with
// -click, the first link token of a click URL instead (the honeypot comes
// last in a part, so it is a real link's).
func cmdToken(args []string) error {
	fs := newFlags("token")
	file := fs.String("file", "", "mail dump")
	click := fs.Bool("click", false, "print a link token (BASE/c/TOKEN) instead of a pixel token")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	s := strings.NewReplacer("=\r\n", "", "=\n", "", "=3D", "=", "=3d", "=").Replace(string(b))
	re, what := pixelURL, "/o/TOKEN.gif"
	if *click {
		re, what = clickURL, "/c/TOKEN"
	}
	m := re.FindStringSubmatch(s)
	if m == nil {
		return fmt.Errorf("no %s in %s", what, *file)
	}
	fmt.Printf("token %s\n", m[1])
	return nil
}
