package httpd

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"
)

// serveReal runs f's server through Serve on a real listener (the path
// net/http's own parsing takes) and returns its address.
func serveReal(t *testing.T, f *realFixture) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go f.srv.Serve(l)
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

// rawExchange sends raw request bytes and reads the responses to the
// requests, whose methods are given.
func rawExchange(t *testing.T, addr, raw string, methods ...string) []*http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	var out []*http.Response
	for _, m := range methods {
		resp, err := http.ReadResponse(r, &http.Request{Method: m})
		if err != nil {
			t.Fatalf("response %d of %d to %q: %v", len(out)+1, len(methods), raw, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		out = append(out, resp)
	}
	return out
}

func bodyOf(resp *http.Response) []byte {
	b, _ := io.ReadAll(resp.Body)
	return b
}

// Heads net/http refuses with its own 400 (or 417, 505) before any handler
// still get the pixel on the pixel route, and a genuine token's open is
// recorded, control characters turned into spaces (issue 11).
func TestPixelForHeadsNetHTTPRefuses(t *testing.T) {
	f := newRealFixture(t, nil)
	addr := serveReal(t, f)
	for _, tt := range []struct {
		name   string
		head   string // after the request line; TOK and ID are replaced
		target string // default /o/TOK.gif
		proto  string // default HTTP/1.1
		ua     string // the user agent recorded; "-" = no open expected
	}{
		{"control character in User-Agent", "Host: t\r\nUser-Agent: Mozilla/5.0 \x01bot\r\n", "", "", "Mozilla/5.0  bot"},
		{"escape sequence", "Host: t\r\nUser-Agent: ua \x1b[31mred\x1b[0m\r\n", "", "", "ua  [31mred [0m"},
		{"NUL", "Host: t\r\nUser-Agent: a\x00b\r\n", "", "", "a b"},
		{"DEL", "Host: t\r\nUser-Agent: a\x7fb\r\n", "", "", "a b"},
		{"bare CR", "Host: t\r\nUser-Agent: a\rb\r\n", "", "", "a b"},
		{"8-bit bytes", "Host: t\r\nUser-Agent: caf\xe9 \x01\r\n", "", "", "caf\ufffd"}, // the store cleans it
		{"LF line ends", "Host: t\nUser-Agent: lf\x02only\n", "", "", "lf only"},
		{"space in a header name", "Host: t\r\nUser Agent: x\r\nUser-Agent: kept\r\n", "", "", "kept"},
		{"space before the colon", "Host: t\r\nUser-Agent : spaced\r\n", "", "", "spaced"},
		{"line without a colon", "Host: t\r\ngarbage line\r\nUser-Agent: ok\r\n", "", "", "ok"},
		{"empty header name", "Host: t\r\n: nothing\r\nUser-Agent: ok\r\n", "", "", "ok"},
		{"8-bit header name", "Host: t\r\n\xdcser: x\r\nUser-Agent: ok\r\n", "", "", "ok"},
		{"leading space on the first line", " Host: t\r\nUser-Agent: ok\r\n", "", "", "ok"},
		{"no Host", "User-Agent: nohost\r\n", "", "", "nohost"},
		{"two Hosts", "Host: a\r\nHost: b\r\nUser-Agent: two\r\n", "", "", "two"},
		{"malformed Host", "Host: a b/c\r\nUser-Agent: bad host\r\n", "", "", "bad host"},
		{"bad Content-Length", "Host: t\r\nContent-Length: x\r\nUser-Agent: cl\r\n", "", "", "cl"},
		{"unknown Expect", "Host: t\r\nExpect: magic\r\nUser-Agent: expect\r\n", "", "", "expect"},
		{"unknown version", "Host: t\r\nUser-Agent: v9\r\n", "", "HTTP/9.9", "v9"},
		{"HTTP/1.0 without Host", "User-Agent: old\r\n", "", "HTTP/1.0", "old"},
		{"control character in the path", "Host: t\r\nUser-Agent: x\r\n", "/o/TOK\x01.gif", "", "-"},
		{"space in the path", "Host: t\r\nUser-Agent: x\r\n", "/o/TO K.gif", "", "-"},
		{"folded value", "Host: t\r\nUser-Agent: folded\r\n \x01more\r\n", "", "", "folded more"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id, tok := f.sent(strings.ReplaceAll(tt.name, " ", "-") + "@example.com")
			target := "/o/" + tok + ".gif"
			if tt.target != "" {
				target = strings.ReplaceAll(tt.target, "TOK", tok)
			}
			proto := "HTTP/1.1"
			if tt.proto != "" {
				proto = tt.proto
			}
			f.sentPixels++
			resp := rawExchange(t, addr, "GET "+target+" "+proto+"\r\n"+tt.head+"\r\n", "GET")[0]
			checkPixel(t, resp, bodyOf(resp), false)
			if tt.ua == "-" {
				return
			}
			f.settle()
			opens := f.opens("id=" + id)
			if len(opens) != 1 || opens[0].UserAgent != tt.ua {
				var got []string
				for _, o := range opens {
					got = append(got, o.UserAgent)
				}
				t.Errorf("opens recorded with user agents %q, want one with %q", got, tt.ua)
			}
		})
	}
	// HEAD too.
	resp := rawExchange(t, addr, "HEAD /o/x.gif HTTP/1.1\r\nHost: t\r\nUser-Agent: \x01\r\n\r\n", "HEAD")[0]
	checkPixel(t, resp, bodyOf(resp), true)
}

// Only pixel requests are mended: other routes get net/http's own answer,
// and their bytes (bodies too) pass untouched; a keep-alive connection
// mixing both works.
func TestPixelConnLeavesOtherRequests(t *testing.T) {
	f := newRealFixture(t, nil)
	addr := serveReal(t, f)
	resp := rawExchange(t, addr, "GET /healthz HTTP/1.1\r\nHost: t\r\nUser-Agent: a\x01b\r\n\r\n", "GET")[0]
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("healthz with a control character: %d, want net/http's 400", resp.StatusCode)
	}
	// Pipelined on one connection: two pixels (one with a bad head), then
	// a healthz, then a pixel again.
	raw := "GET /o/a.gif HTTP/1.1\r\nHost: t\r\nUser-Agent: \x01\r\n\r\n" +
		"HEAD /o/b.gif HTTP/1.1\r\nHost: t\r\n\r\n" +
		"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n" +
		"GET /o/c.gif HTTP/1.1\r\nHost: t\r\n\r\n"
	rs := rawExchange(t, addr, raw, "GET", "HEAD", "GET", "GET")
	checkPixel(t, rs[0], bodyOf(rs[0]), false)
	checkPixel(t, rs[1], bodyOf(rs[1]), true)
	if b := string(bodyOf(rs[2])); rs[2].StatusCode != 200 || !strings.Contains(b, `"ok"`) {
		t.Errorf("healthz after pixels: %d %s", rs[2].StatusCode, b)
	}
	checkPixel(t, rs[3], bodyOf(rs[3]), false)
}

// A head too large for net/http is not held without bound: it passes and
// gets net/http's 431.
func TestPixelConnHugeHead(t *testing.T) {
	f := newRealFixture(t, nil)
	addr := serveReal(t, f)
	raw := "GET /o/a.gif HTTP/1.1\r\nHost: t\r\nX-Big: " + strings.Repeat("a", 2*MaxHeaderBytes) + "\r\n\r\n"
	resp := rawExchange(t, addr, raw, "GET")[0]
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("huge head: %d, want 431", resp.StatusCode)
	}
}

// FuzzMendHead: whatever follows "GET /o/", the mended head is one
// net/http reads, for the pixel route.
func FuzzMendHead(f *testing.F) {
	for _, s := range []string{
		"t.gif HTTP/1.1\r\nHost: a\r\nUser-Agent: \x01\r\n\r\n",
		"t.gif HTTP/1.1\nUser Agent: x\n\n",
		"t .gif\x00 HTTP/9.9\r\n : \r\n \x7f\r\nHost: a b\r\nHost: c\r\n\r\n",
		"t.gif HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
		"\r\n\r\n",
		"x HTTP/1.1\r\nA:\r\n\tfold\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		head := []byte("GET /o/" + s)
		end := headEnd(head)
		if end < 0 {
			head = append(head, "\r\n\r\n"...)
			end = headEnd(head)
		}
		mended := mendHead(head[:end])
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(mended)))
		if err != nil {
			t.Fatalf("net/http refuses the mended head %q (from %q): %v", mended, head[:end], err)
		}
		if !strings.HasPrefix(req.URL.Path, "/o/") || req.ContentLength > 0 || req.TransferEncoding != nil {
			t.Fatalf("mended head %q: path %q, body %d %v", mended, req.URL.Path, req.ContentLength, req.TransferEncoding)
		}
	})
}

// FuzzPixelConn: bytes that are not a pixel request pass through exactly,
// however the reads are cut.
func FuzzPixelConn(f *testing.F) {
	f.Add([]byte("POST /api/purge HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nGET /o/"), uint8(3))
	f.Add([]byte("GET /healthz HTTP/1.1\r\n\r\n\x00\x01"), uint8(1))
	f.Add([]byte("GE"), uint8(7))
	f.Fuzz(func(t *testing.T, in []byte, cut uint8) {
		if isPixelRequest(in) != no {
			return
		}
		a, b := net.Pipe()
		go func() {
			for rest := in; len(rest) > 0; {
				n := min(len(rest), int(cut)+1)
				b.Write(rest[:n])
				rest = rest[n:]
			}
			b.Close()
		}()
		got, err := io.ReadAll(&pixelConn{Conn: a})
		if err != nil || !bytes.Equal(got, in) {
			t.Fatalf("got %q (%v), want %q", got, err, in)
		}
	})
}

// Keep-alive survives mending: net/http stops its background read with a
// past deadline after each request, and the timeout that gives must not
// end the connection (it did, sticking as an error, in a first version).
func TestPixelConnKeepAlive(t *testing.T) {
	f := newRealFixture(t, nil)
	addr := serveReal(t, f)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	reused := 0
	for i := range 5 {
		req, _ := http.NewRequest("GET", "http://"+addr+"/o/x.gif", nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(info httptrace.GotConnInfo) {
				if info.Reused {
					reused++
				}
			},
		}))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		checkPixel(t, resp, bodyOf(resp), false)
		resp.Body.Close()
	}
	if reused != 4 {
		t.Errorf("%d of 4 later requests reused the connection", reused)
	}
}
