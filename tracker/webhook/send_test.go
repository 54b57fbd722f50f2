package webhook_test

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"pixelrelay/tracker/webhook"
	"pixelrelay/tracker/webhook/webhooktest"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func testEndpoint(t *testing.T, url string) *webhook.Endpoint {
	t.Helper()
	key, err := webhook.ParseSecret(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return &webhook.Endpoint{Name: "test", URL: url, Key: key}
}

// TestPostAnswers: one attempt against a real receiver that checks the
// signature with its own code, for each kind of answer.
func TestPostAnswers(t *testing.T) {
	tests := []struct {
		answer   int
		ok, gone bool
		errHas   string
	}{
		{200, true, false, ""},
		{204, true, false, ""},
		{299, true, false, ""},
		{500, false, false, "500 Internal Server Error"},
		{404, false, false, "404 Not Found"},
		{410, false, true, "410 Gone"},
		{429, false, false, "429 Too Many Requests"},
	}
	rcv := webhooktest.Start(t, testSecret)
	ep := testEndpoint(t, rcv.URL())
	for _, tt := range tests {
		rcv.SetAnswer(tt.answer)
		body := []byte(`{"type":"message.sent","timestamp":"2026-03-01T12:00:00Z","data":{"n":1}}`)
		res := webhook.Post(context.Background(), webhook.NewClient(5*time.Second), ep, "msg_x", body, time.Now())
		if res.Status != tt.answer || res.OK() != tt.ok || res.Gone() != tt.gone || !strings.Contains(res.Err, tt.errHas) || (tt.ok && res.Err != "") {
			t.Errorf("answer %d: got %+v (ok %v, gone %v)", tt.answer, res, res.OK(), res.Gone())
		}
	}
	if n := rcv.BadSignatures(); n != 0 {
		t.Fatalf("%d requests had a bad signature", n)
	}
	if n := len(rcv.All()); n != len(tests) {
		t.Fatalf("receiver verified %d requests, want %d", n, len(tests))
	}
	// A wrong key is refused by the receiver (so its check can fail).
	bad := *ep
	bad.Key = []byte(strings.Repeat("k", 24))
	rcv.SetAnswer(200)
	res := webhook.Post(context.Background(), webhook.NewClient(5*time.Second), &bad, "msg_x", []byte(`{}`), time.Now())
	if res.Status != 401 || rcv.BadSignatures() != 1 {
		t.Fatalf("wrong key: %+v, bad signatures %d", res, rcv.BadSignatures())
	}
}

// TestPostHeaders: exactly the Standard Webhooks headers, the body byte for
// byte, JSON content type.
func TestPostHeaders(t *testing.T) {
	var got *http.Request
	var gotBody string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := new(strings.Builder)
		buf := make([]byte, 1024)
		for {
			n, err := r.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		got, gotBody = r, b.String()
	}))
	defer srv.Close()
	body := `{"test": 2432232314}`
	res := webhook.Post(context.Background(), srv.Client(), testEndpoint(t, srv.URL), "msg_p5jXN8AQM9LWM0D4loKWxJek", []byte(body), time.Unix(1614265330, 0))
	if !res.OK() {
		t.Fatalf("Post: %+v", res)
	}
	want := map[string]string{
		"Webhook-Id":        "msg_p5jXN8AQM9LWM0D4loKWxJek",
		"Webhook-Timestamp": "1614265330",
		"Webhook-Signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", // the specification's vector
		"Content-Type":      "application/json",
	}
	for k, v := range want {
		if g := got.Header.Get(k); g != v {
			t.Errorf("%s = %q, want %q", k, g, v)
		}
	}
	if got.Method != http.MethodPost || gotBody != body {
		t.Errorf("%s with body %q", got.Method, gotBody)
	}
}

// TestPostBounded: a receiver that never answers costs one timeout; a
// redirect is a failure and is not followed; a dead port fails at once.
func TestPostBounded(t *testing.T) {
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // then the server notices the client leaving
		<-r.Context().Done()
	}))
	defer hang.Close()
	start := time.Now()
	res := webhook.Post(context.Background(), webhook.NewClient(300*time.Millisecond), testEndpoint(t, hang.URL), "msg_x", []byte(`{}`), time.Now())
	if took := time.Since(start); took > 3*time.Second || res.OK() || res.Err != "no answer within 300ms" {
		t.Errorf("hanging receiver: %+v after %s", res, took)
	}

	followed := false
	redir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/new" {
			followed = true
			return
		}
		http.Redirect(w, r, "/new", http.StatusMovedPermanently)
	}))
	defer redir.Close()
	res = webhook.Post(context.Background(), webhook.NewClient(time.Second), testEndpoint(t, redir.URL+"/old"), "msg_x", []byte(`{}`), time.Now())
	if res.OK() || followed || res.Status != 301 || !strings.Contains(res.Err, "redirects are not followed; set the url to /new") {
		t.Errorf("redirect: %+v, followed %v", res, followed)
	}

	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	res = webhook.Post(context.Background(), webhook.NewClient(time.Second), testEndpoint(t, url), "msg_x", []byte(`{}`), time.Now())
	if res.OK() || res.Status != 0 || !strings.Contains(res.Err, "connection refused") {
		t.Errorf("dead port: %+v", res)
	}
}

func TestPostRetryAfter(t *testing.T) {
	for _, tt := range []struct {
		header string
		want   time.Duration
	}{
		{"120", 2 * time.Minute},
		{"0", 0},
		{"soon", 0},
		{time.Unix(1000+90, 0).UTC().Format(http.TimeFormat), 90 * time.Second},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", tt.header)
			w.WriteHeader(503)
		}))
		res := webhook.Post(context.Background(), srv.Client(), testEndpoint(t, srv.URL), "msg_x", []byte(`{}`), time.Unix(1000, 0))
		srv.Close()
		if res.RetryAfter != tt.want || res.OK() {
			t.Errorf("Retry-After %q: %+v, want %s", tt.header, res, tt.want)
		}
	}
}

var _ = base64.StdEncoding
