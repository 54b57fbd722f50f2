package httpd

// Hostile HTTP input (issue 7): slowloris, huge headers, path traversal,
// out-of-range query parameters. Servers run through Serve, so the
// http.Server limits are the ones production uses (shortened for speed
// where a test waits for a timeout).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"pixelrelay/config"
	"pixelrelay/tracker/store"
)

// hostileServe runs s.Serve on a loopback port and returns its address.
func hostileServe(t *testing.T, s *Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return l.Addr().String()
}

// hostileRaw sends raw request bytes on a new connection (no client-side
// path cleaning or header checks) and reads one response. A connection the
// server closed without an answer gives status 0.
func hostileRaw(t *testing.T, addr, req string) (int, http.Header, []byte) {
	t.Helper()
	return hostileRawBytes(t, addr, []byte(req))
}

// hostileRawBytes is hostileRaw without converting the request.
func hostileRawBytes(t *testing.T, addr string, req []byte) (int, http.Header, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	go c.Write(req) // may fail half-way when the server gives up early
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, nil, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body
}

// hostileStoredOpens counts the open rows in the real bbolt file.
func hostileStoredOpens(t *testing.T, f *realFixture) int {
	t.Helper()
	f.settle()
	st, err := f.st.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st.Opens
}

// TestServerLimitsAreSane: the production limits bound what a slow or
// greedy client can hold.
func TestServerLimitsAreSane(t *testing.T) {
	if ReadHeaderTimeout <= 0 || ReadHeaderTimeout > 10*time.Second || ReadTimeout <= 0 || ReadTimeout > time.Minute ||
		WriteTimeout <= 0 || IdleTimeout <= 0 || IdleTimeout > 5*time.Minute || MaxHeaderBytes <= 0 || MaxHeaderBytes > 64<<10 {
		t.Errorf("limits: header %v read %v write %v idle %v max header %d", ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout, MaxHeaderBytes)
	}
}

// TestSlowloris: many connections that trickle a request byte by byte, send
// nothing, trickle a body, or sit idle are all cut off by the server's
// timeouts, while other clients are served promptly meanwhile and nothing
// the slow ones sent is stored.
func TestSlowloris(t *testing.T) {
	f := newRealFixture(t, nil)
	_, tok := f.sent("bob@example.com")
	const hdrTimeout, readTimeout, idleTimeout = 300 * time.Millisecond, 600 * time.Millisecond, 400 * time.Millisecond
	f.srv.timeouts.ReadHeaderTimeout = hdrTimeout
	f.srv.timeouts.ReadTimeout = readTimeout
	f.srv.timeouts.IdleTimeout = idleTimeout
	addr := hostileServe(t, f.srv)

	perKind := 16
	if os.Getenv("PIXELRELAY_SOAK") == "1" {
		perKind = 250
	}
	kinds := []struct {
		name  string
		first string // sent at once
		drip  string // then one byte every 20ms
		limit time.Duration
	}{
		{"headers byte by byte", "", "GET /o/" + tok + ".gif HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 4000), hdrTimeout},
		{"header lines one by one", "GET /o/" + tok + ".gif HTTP/1.1\r\n", strings.Repeat("X-A: b\r\n", 500), hdrTimeout},
		{"nothing at all", "", "", hdrTimeout},
		{"body byte by byte", "POST /api/opens HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n", strings.Repeat("z", 4000), readTimeout},
		{"idle after a request", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "", idleTimeout},
	}
	type result struct {
		kind   string
		closed time.Duration // how long until the server closed it
	}
	results := make(chan result, perKind*len(kinds))
	start := time.Now()
	for _, k := range kinds {
		for i := 0; i < perKind; i++ {
			go func() {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					results <- result{k.name, -1}
					return
				}
				defer c.Close()
				began := time.Now()
				c.SetReadDeadline(began.Add(10 * time.Second))
				go func() {
					if _, err := io.WriteString(c, k.first); err != nil {
						return
					}
					for j := 0; j < len(k.drip); j++ {
						if _, err := c.Write([]byte{k.drip[j]}); err != nil {
							return
						}
						time.Sleep(20 * time.Millisecond)
					}
				}()
				_, err = io.Copy(io.Discard, c) // until the server closes it
				if errors.Is(err, os.ErrDeadlineExceeded) {
					results <- result{k.name, 10 * time.Second}
					return
				}
				results <- result{k.name, time.Since(began)}
			}()
		}
	}

	// Meanwhile other clients are served at once.
	time.Sleep(100 * time.Millisecond)
	client := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	var slowest time.Duration
	served := 0
	for time.Since(start) < hdrTimeout {
		for _, p := range []string{"/o/" + tok + ".gif", "/healthz"} {
			t0 := time.Now()
			resp, err := client.Get("http://" + addr + p)
			if err != nil {
				t.Fatalf("a normal client during the attack: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || (p != "/healthz" && len(body) != 43) {
				t.Fatalf("%s during the attack: %d, %d bytes", p, resp.StatusCode, len(body))
			}
			slowest = max(slowest, time.Since(t0))
			served++
		}
	}
	if slowest > time.Second {
		t.Errorf("slowest normal request during the attack: %v", slowest)
	}

	worst := map[string]time.Duration{}
	for i := 0; i < perKind*len(kinds); i++ {
		r := <-results
		if r.closed < 0 {
			t.Fatalf("%s: dial failed", r.kind)
		}
		worst[r.kind] = max(worst[r.kind], r.closed)
	}
	for _, k := range kinds {
		if w := worst[k.name]; w > k.limit+2*time.Second {
			t.Errorf("%s: a connection was still open %v after it began (timeout %v)", k.name, w, k.limit)
		}
	}
	if n := hostileStoredOpens(t, f); n != 1 {
		t.Errorf("%d opens stored, want 1 (the normal client's; the trickled requests never completed)", n)
	}
	t.Logf("%d slow connections cut off (worst per kind %v); %d normal requests served meanwhile, slowest %v",
		perKind*len(kinds), worst, served, slowest)
}

// TestHugeHeaders: headers far over MaxHeaderBytes (one huge line, many
// small ones, a huge request line, a huge cookie) are answered 431 or the
// connection is closed, the server keeps serving, and what it allocates
// per such request stays near MaxHeaderBytes, not the size sent.
func TestHugeHeaders(t *testing.T) {
	f := newRealFixture(t, nil)
	_, tok := f.sent("bob@example.com")
	addr := hostileServe(t, f.srv)
	const size = 4 << 20
	pix := "/o/" + tok + ".gif"
	reqs := map[string][]byte{}
	for name, req := range map[string]string{
		"one 4 MB header":     "GET " + pix + " HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", size) + "\r\n\r\n",
		"200,000 headers":     "GET " + pix + " HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-A: bcdefghijklmnop\r\n", 200_000) + "\r\n",
		"4 MB request line":   "GET " + pix + "?" + strings.Repeat("q", size) + " HTTP/1.1\r\nHost: x\r\n\r\n",
		"4 MB cookie":         "GET /healthz HTTP/1.1\r\nHost: x\r\nCookie: " + strings.Repeat("c=d; ", size/5) + "\r\n\r\n",
		"4 MB API auth":       "GET /api/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + strings.Repeat("k", size) + "\r\n\r\n",
		"4 MB user agent/xff": "GET " + pix + " HTTP/1.1\r\nHost: x\r\nUser-Agent: " + strings.Repeat("u", size/2) + "\r\nX-Forwarded-For: " + strings.Repeat("1.2.3.4,", size/16) + "\r\n\r\n",
	} {
		reqs[name] = []byte(req)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for name, req := range reqs {
		code, _, _ := hostileRawBytes(t, addr, req)
		if code != 0 && code != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("%s: status %d, want 431 or a closed connection", name, code)
		}
	}
	runtime.ReadMemStats(&after)
	// The request strings above were built before; what is allocated now
	// is the server reading (and the client's small reads).
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(len(reqs))*(512<<10) {
		t.Errorf("%d MB allocated for %d oversized requests of about 4 MB each: headers are not bounded",
			alloc>>20, len(reqs))
	} else {
		t.Logf("%d oversized requests (about 4 MB each): %d KB allocated in all", len(reqs), alloc>>10)
	}
	// Still serving, and nothing was stored.
	code, h, body := hostileRaw(t, addr, "GET "+pix+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if code != 200 || h.Get("Content-Type") != "image/gif" || len(body) != 43 {
		t.Fatalf("after the huge headers: %d %q, %d bytes", code, h.Get("Content-Type"), len(body))
	}
	f.sentPixels++
	if n := hostileStoredOpens(t, f); n != 1 {
		t.Errorf("%d opens stored, want 1", n)
	}
}

// TestPathTraversal: dot-dot paths, encoded or not, in and around the
// token path only ever reach the pixel, a 404 or the API's 401; no file is
// read (the secrets and the database never show in an answer) and no open
// is stored for them.
func TestPathTraversal(t *testing.T) {
	f := newRealFixture(t, nil)
	_, tok := f.sent("bob@example.com")
	addr := f.ts.Listener.Addr().String()
	secret := f.keys.AdminKey()
	const (
		pixel = "pixel"
		nf    = "404"
		auth  = "401"
		bad   = "400"
	)
	rows := []struct{ target, want string }{
		{"/o/../api/status", pixel},
		{"/o/..%2fapi%2fstatus", pixel},
		{"/o/%2e%2e/%2e%2e/secrets.json.gif", pixel},
		{"/o/..%2f..%2fsecrets.json.gif", pixel},
		{"/o/%2e%2e%2f%2e%2e%2fsecrets.json.gif", pixel},
		{"/o/..%5c..%5csecrets.json.gif", pixel},
		{"/o/....//....//etc/passwd", pixel},
		{"/o/../../../../etc/passwd", pixel},
		{"/o/%252e%252e%252fsecrets.json.gif", pixel},
		{"/o/" + tok + ".gif/../../api/status", pixel},
		{"/o/../o/" + tok + ".gif", pixel},
		{"/o/" + tok[:20] + "%2f" + tok[20:] + ".gif", pixel},
		{"/o/" + tok + "%00.gif", pixel},
		{"/o/%00.gif", pixel},
		{"/o/pixelrelay.db.gif", pixel},
		{"/%2e%2e/api/status", nf},
		{"/%2e%2e/%2e%2e/secrets.json", nf},
		{"/../secrets.json", nf},
		{"/secrets.json", nf},
		{"/pixelrelay.db", nf},
		{"/O/" + tok + ".gif", nf},
		{"//o/" + tok + ".gif", nf},
		{"/api/../healthz", auth},
		{"/api/%2e%2e/status", auth},
		{"/api/..%2f..%2fsecrets.json", auth},
		{"../../etc/passwd", bad},
		{"*", nf},
	}
	for _, row := range rows {
		t.Run(row.target, func(t *testing.T) {
			code, h, body := hostileRaw(t, addr, "GET "+row.target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			if strings.Contains(string(body), secret) || strings.Contains(string(body), "tracking_keys") || bytes.Contains(body, []byte("root:")) {
				t.Fatalf("a file leaked: %q", body)
			}
			var ok bool
			switch row.want {
			case pixel:
				ok = code == 200 && h.Get("Content-Type") == "image/gif" && bytes.Equal(body, gif)
				f.sentPixels++
			case nf:
				ok = code == 404
			case auth:
				ok = code == 401 && h.Get("Content-Type") == "application/json"
			case bad:
				ok = code == 400
			}
			if !ok {
				t.Errorf("%d %q %q, want %s", code, h.Get("Content-Type"), body, row.want)
			}
		})
	}
	// With the admin key, a traversal under /api/ is a JSON 404, not a route.
	for _, p := range []string{"/api/%2e%2e/status", "/api/opens/../status", "/api/../api/status"} {
		code, h, body := hostileRaw(t, addr, "GET "+p+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+secret+"\r\nConnection: close\r\n\r\n")
		if code != 404 || h.Get("Content-Type") != "application/json" || strings.Contains(string(body), secret) {
			t.Errorf("%s with the key: %d %q %s", p, code, h.Get("Content-Type"), body)
		}
	}
	if n := hostileStoredOpens(t, f); n != 0 {
		t.Errorf("%d opens stored by traversal paths, want 0", n)
	}
}

// TestAPIQueryOutOfRange: parameters out of range or malformed get a 400
// JSON error naming the parameter, or are clamped as CONTRACT.md says
// (limit capped at 500; a since too far out matches nothing or
// everything); never a 500.
func TestAPIQueryOutOfRange(t *testing.T) {
	f := newRealFixture(t, nil)
	id, tok := f.sent("bob@example.com")
	f.do("GET", "/o/"+tok+".gif", uaTB)
	f.settle()
	const all, none = 1, 0 // opens expected in the answer
	rows := []struct {
		query string
		code  int
		param string // named in the 400 error
		opens int    // for 200
	}{
		{"limit=-1", 400, "limit", 0},
		{"limit=0", 400, "limit", 0},
		{"limit=-9223372036854775809", 400, "limit", 0},
		{"limit=ten", 400, "limit", 0},
		{"limit=1e3", 400, "limit", 0},
		{"limit=0x10", 400, "limit", 0},
		{"limit=%D9%A3", 400, "limit", 0}, // an Arabic-Indic digit
		{"limit=", 200, "", all},
		{"limit=1000000000000", 200, "", all},
		{"limit=99999999999999999999999999", 200, "", all},
		{"limit=1&limit=-1", 200, "", all},
		{"since=2099-01-01", 200, "", none},
		{"since=9999-12-31", 200, "", none},
		{"since=9999-12-31T23:59:59Z", 200, "", none},
		{"since=0001-01-01", 200, "", all},
		{"since=1800-01-01T00:00:00Z", 200, "", all},
		{"since=106751d", 200, "", all},
		{"since=106752d", 400, "since", 0},
		{"since=99999999999999999999d", 400, "since", 0},
		{"since=-7d", 400, "since", 0},
		{"since=" + strings.Repeat("9", 5000), 400, "since", 0},
		{"since=%00", 400, "since", 0},
		{"since=tomorrow", 400, "since", 0},
		{"id=" + id, 200, "", all},
		{"id=" + strings.ToUpper(id), 200, "", all},
		{"id=" + id + id, 400, "id", 0},
		{"id=" + strings.Repeat("a", 10_000), 400, "id", 0},
		{"id=" + id[:15] + "%00", 400, "id", 0},
		{"id=" + id[:15] + "1", 400, "id", 0},
		{"id=" + tok, 400, "id", 0},
		{"to=" + strings.Repeat("x", 10_000) + "@example.com", 200, "", none},
		{"to=%00", 200, "", none},
	}
	hdr := []string{"Authorization", "Bearer " + f.keys.AdminKey()}
	for _, row := range rows {
		for _, route := range []string{"/api/opens", "/api/messages"} {
			resp, body := f.do("GET", route+"?"+row.query, "cli", hdr...)
			if resp.StatusCode != row.code || resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("%s?%.60s: %d %q %s", route, row.query, resp.StatusCode, resp.Header.Get("Content-Type"), body)
				continue
			}
			if row.code == 400 {
				var e ErrorResponse
				if err := json.Unmarshal(body, &e); err != nil || !strings.HasPrefix(e.Error, row.param+":") {
					t.Errorf("%s?%.60s: error %s, want one naming %q", route, row.query, body, row.param)
				}
				continue
			}
			var got struct {
				Opens    []store.Open    `json:"opens"`
				Messages []store.Message `json:"messages"`
			}
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			// A copy that was opened: /api/messages lists it when opens are listed.
			if n := len(got.Opens) + len(got.Messages); n != row.opens {
				t.Errorf("%s?%.60s: %d rows, want %d", route, row.query, n, row.opens)
			}
		}
	}
	for _, q := range []string{"unopened=2", "unopened=yes%00"} {
		if resp, body := f.do("GET", "/api/messages?"+q, "cli", hdr...); resp.StatusCode != 400 || !strings.Contains(string(body), "unopened:") {
			t.Errorf("messages?%s: %d %s", q, resp.StatusCode, body)
		}
	}
	for _, q := range []string{"older_than=0", "older_than=-1d", "older_than=junk", "older_than=106752d", "older_than=" + strings.Repeat("9", 3000) + "d"} {
		if resp, body := f.do("POST", "/api/purge?"+q, "cli", hdr...); resp.StatusCode != 400 || !strings.Contains(string(body), "older_than:") {
			t.Errorf("purge?%.40s: %d %s", q, resp.StatusCode, body)
		}
	}
	if n := hostileStoredOpens(t, f); n != 1 {
		t.Errorf("the open was lost by a bad purge: %d opens", n)
	}
}

// hostileConcurrently runs fn(i) for i in [0, n) on workers goroutines.
func hostileConcurrently(n, workers int, fn func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}

// FuzzAPIQuery: any query string and Authorization header on the query
// routes gets 200, 400, 401 or 404 (an id no copy has) with a JSON body,
// never a 500 or a panic;
// only the right bearer key without a key-like parameter is let in.
func FuzzAPIQuery(f *testing.F) {
	const key = "fuzz-admin-key"
	for _, s := range []struct{ q, auth string }{
		{"limit=-1", "Bearer " + key}, {"since=9999-12-31&limit=1e3", "Bearer " + key},
		{"id=" + strings.Repeat("a", 16), "Bearer " + key}, {"key=" + key, ""}, {"to=%00&unopened=x", "Basic Zm9vOmJhcg=="},
		{"since=106752d", "Bearer " + key}, {"limit=1&limit=x", "bearer  " + key + " "},
	} {
		f.Add(s.q, s.auth)
	}
	s := New(Options{Config: config.Default, Store: newFakeStore(), Keys: &fakeKeys{admin: key}, Log: quiet})
	f.Fuzz(func(t *testing.T, query, auth string) {
		for _, route := range []string{"/api/opens", "/api/messages"} {
			req := &http.Request{Method: "GET", URL: mustURL(route), Header: http.Header{"Authorization": {auth}}, RemoteAddr: "127.0.0.1:1"}
			req.URL.RawQuery = query
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != 200 && rec.Code != 400 && rec.Code != 401 && rec.Code != 404 {
				t.Fatalf("%s?%q auth %q: %d %s", route, query, auth, rec.Code, rec.Body)
			}
			if !json.Valid(rec.Body.Bytes()) || rec.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("%s?%q: not JSON: %q", route, query, rec.Body)
			}
			scheme, got, _ := strings.Cut(auth, " ")
			right := strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(got) == key
			if _, inURL := keyInQuery(req); rec.Code != 401 && (!right || inURL) {
				t.Fatalf("%s?%q auth %q let in: %d", route, query, auth, rec.Code)
			}
		}
	})
}
