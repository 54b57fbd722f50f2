package httpd

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"pixelrelay/config"
	"pixelrelay/metrics"
	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
	"pixelrelay/tracker/token"
)

// countingStore is a fast fake: it knows every id and counts hits.
type countingStore struct {
	fakeStore
	n atomic.Int64
}

func (c *countingStore) Copy(id string) (record.Copy, bool, error) {
	return record.Copy{TrackingID: id, SentAt: t0}, true, nil
}

func (c *countingStore) Record(h store.Hit) (bool, error) {
	c.n.Add(1)
	return true, nil
}

// benchHTTP runs GETs of path against h over real HTTP (keep-alive), in
// parallel, each with its own user agent so every fetch is a distinct open.
func benchHTTP(b *testing.B, h http.Handler, path string) {
	benchHTTPOn(b, httptest.NewServer(h), path)
}

// benchHTTPOn is benchHTTP against a started test server.
func benchHTTPOn(b *testing.B, ts *httptest.Server, path string) {
	benchHTTPCode(b, ts, path, http.StatusOK)
}

// benchHTTPCode is benchHTTPOn expecting code (redirects not followed).
func benchHTTPCode(b *testing.B, ts *httptest.Server, path string, code int) {
	defer ts.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var seq atomic.Int64
	b.SetParallelism(16) // many connections, like a real load, not GOMAXPROCS
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, _ := http.NewRequest("GET", ts.URL+path, nil)
		for pb.Next() {
			req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128."+strconv.FormatInt(seq.Add(1), 10))
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != code {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkBare is the yardstick: a bare Go handler answering 43 bytes.
func BenchmarkBare(b *testing.B) {
	benchHTTP(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/gif")
		w.Write(gif)
	}), "/o/x.gif")
}

func benchKeys(b *testing.B) (*token.Keyring, string) {
	kr, err := token.OpenKeyring(filepath.Join(b.TempDir(), "secrets.json"))
	if err != nil {
		b.Fatal(err)
	}
	_, tok, err := kr.Mint()
	if err != nil {
		b.Fatal(err)
	}
	return kr, tok
}

// BenchmarkPixel: genuine token, fast fake store; every request recorded.
func BenchmarkPixel(b *testing.B) {
	kr, tok := benchKeys(b)
	st := &countingStore{}
	cfg := config.Default()
	s := New(Options{Config: func() *config.Config { return cfg }, Store: st, Keys: kr, Log: quiet})
	benchHTTP(b, s, "/o/"+tok+".gif")
	if st.n.Load() < int64(b.N) {
		b.Fatalf("%d of %d recorded", st.n.Load(), b.N)
	}
}

// BenchmarkPixelMended: BenchmarkPixel with the connections that mend
// pixel heads (pixelConn), as Serve runs them: what mending costs.
func BenchmarkPixelMended(b *testing.B) {
	kr, tok := benchKeys(b)
	st := &countingStore{}
	cfg := config.Default()
	s := New(Options{Config: func() *config.Config { return cfg }, Store: st, Keys: kr, Log: quiet})
	ts := httptest.NewUnstartedServer(s)
	ts.Listener = pixelListener{ts.Listener}
	ts.Start()
	benchHTTPOn(b, ts, "/o/"+tok+".gif")
	if st.n.Load() < int64(b.N) {
		b.Fatalf("%d of %d recorded", st.n.Load(), b.N)
	}
}

// BenchmarkMendHead: mending one head as a mail client sends it.
func BenchmarkMendHead(b *testing.B) {
	head := []byte("GET /o/k7q2m4xwah3bdf5aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.gif HTTP/1.1\r\nHost: track.example.com\r\n" +
		"User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n" +
		"Accept: image/avif,image/webp,image/apng,image/*,*/*;q=0.8\r\nAccept-Encoding: gzip, deflate, br\r\n" +
		"Accept-Language: en-GB,en;q=0.9\r\nConnection: keep-alive\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		mendHead(head)
	}
}

// BenchmarkPixelRealStore: genuine token, the real bbolt store with dedup
// on and the per-IP limit off; every request is a new stored open.
func BenchmarkPixelRealStore(b *testing.B) { benchPixelRealStore(b, nil) }

// BenchmarkPixelRealStoreMetrics is BenchmarkPixelRealStore with metrics
// counting every request, as serve runs it: what counting costs the pixel.
func BenchmarkPixelRealStoreMetrics(b *testing.B) {
	m := metrics.New("bench")
	benchPixelRealStore(b, m)
	if n, _ := m.Value("pixelrelay_pixel_requests_total", "outcome", "stored"); n < float64(b.N) {
		b.Fatalf("%v stored opens counted for %d requests", n, b.N)
	}
}

func benchPixelRealStore(b *testing.B, m *metrics.Metrics) {
	kr, _ := benchKeys(b)
	id, tok, _ := kr.Mint()
	opt := store.Options{Log: quiet}
	if m != nil {
		opt.OnHit = func(o store.HitOutcome, h *store.Hit) { m.Pixel(o.String(), "human") }
	}
	st, err := store.OpenStore(filepath.Join(b.TempDir(), "db"), opt)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := st.Add([]record.Copy{{TrackingID: id, Recipient: "bob@example.com", QueuedAt: time.Now()}}); err != nil {
		b.Fatal(err)
	}
	cfg := config.Default()
	cfg.Tracking.IPHourlyLimit = 0
	s := New(Options{Config: func() *config.Config { return cfg }, Store: st, Keys: kr, Log: quiet, Metrics: m})
	benchHTTP(b, s, "/o/"+tok+".gif")
	if err := st.Flush(); err != nil {
		b.Fatal(err)
	}
	stats, _ := st.Stats()
	if stats.Opens < b.N {
		b.Fatalf("%d opens stored for %d requests", stats.Opens, b.N)
	}
}

// BenchmarkPixelBadToken: forged tokens are answered without the store.
func BenchmarkPixelBadToken(b *testing.B) {
	kr, _ := benchKeys(b)
	cfg := config.Default()
	s := New(Options{Config: func() *config.Config { return cfg }, Store: &countingStore{}, Keys: kr, Log: quiet})
	benchHTTP(b, s, "/o/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.gif")
}

// BenchmarkClickRealStore: a genuine link token of a copy with 30 links,
// the real bbolt store as BenchmarkPixelRealStore; every request is a
// redirect and a new stored click.
func BenchmarkClickRealStore(b *testing.B) {
	kr, _ := benchKeys(b)
	id, tok, _ := kr.Mint()
	st, err := store.OpenStore(filepath.Join(b.TempDir(), "db"), store.Options{Log: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	links := make([]string, 30)
	for i := range links {
		links[i] = "https://example.com/item/" + strconv.Itoa(i) + "?utm_source=newsletter&utm_medium=email"
	}
	if err := st.Add([]record.Copy{{TrackingID: id, QueueID: "q", Recipient: "bob@example.com", QueuedAt: time.Now(), Links: links}}); err != nil {
		b.Fatal(err)
	}
	lt, err := kr.LinkTokens(tok, len(links))
	if err != nil {
		b.Fatal(err)
	}
	cfg := config.Default()
	cfg.Tracking.IPHourlyLimit = 0
	s := New(Options{Config: func() *config.Config { return cfg }, Store: st, Keys: kr, Log: quiet})
	benchHTTPCode(b, httptest.NewServer(s), "/c/"+lt[7], http.StatusFound)
	if err := st.Flush(); err != nil {
		b.Fatal(err)
	}
	stats, _ := st.Stats()
	if stats.Clicks < b.N {
		b.Fatalf("%d clicks stored for %d requests", stats.Clicks, b.N)
	}
}
