// Package webhooktest runs a webhook receiver on 127.0.0.1 for tests: the
// user's endpoint that pixelrelay posts events to. It verifies every
// request's Standard Webhooks signature with its own code (it does not use
// package webhook's signer, so a mistake there cannot hide itself) and
// records what it accepted.
//
// Typical use:
//
//	rcv := webhooktest.Start(t, "whsec_...")
//	// point the code under test at rcv.URL()
//	rcv.SetAnswer(500)           // answer 500 to every request from now on
//	rcv.Down(); rcv.Up(t)        // connections reset, then served again
//	rcv.SetAnswer(200)
//	got := rcv.WaitAccepted(t, 10, 5*time.Second) // ids answered 2xx, in order
//
// A request with a bad or missing signature is answered 401 and counted
// (BadSignatures); it is never accepted. Requests whose webhook-timestamp
// is more than 5 minutes from now are refused the same way (SetTolerance).
package webhooktest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Delivery is one request that carried a valid signature.
type Delivery struct {
	ID        string          // webhook-id
	Timestamp int64           // webhook-timestamp
	Type      string          // the body's "type"
	Body      []byte          // exactly as received
	Data      json.RawMessage // the body's "data"
	Answer    int             // the status the receiver answered
	At        time.Time
}

// Receiver is a running webhook endpoint.
type Receiver struct {
	key  []byte
	addr string
	srv  *http.Server

	mu        sync.Mutex
	down      bool
	conns     map[net.Conn]bool // open connections, closed by Down
	answer    int
	delay     time.Duration
	all       []Delivery
	bad       int
	inflight  int // requests being answered now
	maxFlight int
	tolerance time.Duration
	changed   chan struct{} // closed and replaced on every request
}

// Start listens on a free loopback port; it stops when the test ends.
// secret is the endpoint's "whsec_..." secret.
func Start(t testing.TB, secret string) *Receiver {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatalf("webhooktest: secret %q: %v", secret, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Receiver{key: key, addr: ln.Addr().String(), answer: http.StatusOK, changed: make(chan struct{}),
		tolerance: 5 * time.Minute, conns: map[net.Conn]bool{}}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second, ConnState: r.track}
	go r.srv.Serve(gate{Listener: ln, r: r})
	t.Cleanup(func() { r.srv.Close() })
	return r
}

// URL is where to post events.
func (r *Receiver) URL() string { return "http://" + r.addr + "/hooks" }

// SetAnswer sets the status code of the answers from now on.
func (r *Receiver) SetAnswer(code int) {
	r.mu.Lock()
	r.answer = code
	r.mu.Unlock()
}

// SetTolerance sets how far webhook-timestamp may be from now (default 5
// minutes; 0: not checked).
func (r *Receiver) SetTolerance(d time.Duration) {
	r.mu.Lock()
	r.tolerance = d
	r.mu.Unlock()
}

// SetDelay makes every answer wait d (a slow endpoint).
func (r *Receiver) SetDelay(d time.Duration) {
	r.mu.Lock()
	r.delay = d
	r.mu.Unlock()
}

// Down makes the endpoint unreachable: open connections (a kept-alive
// one too) are closed and new ones are reset as soon as they are
// accepted, until Up. The port stays bound, so no other server (another
// test's) can take it meanwhile.
func (r *Receiver) Down() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = true
	for c := range r.conns {
		c.Close()
	}
}

// Up makes the endpoint reachable again.
func (r *Receiver) Up(t testing.TB) {
	r.mu.Lock()
	r.down = false
	r.mu.Unlock()
}

func (r *Receiver) isDown() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.down
}

// gate is the receiver's listener: while the receiver is down it resets
// every connection it accepts.
type gate struct {
	net.Listener
	r *Receiver
}

func (g gate) Accept() (net.Conn, error) {
	for {
		c, err := g.Listener.Accept()
		if err != nil || !g.r.isDown() {
			return c, err
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // a reset, not an orderly close
		}
		c.Close()
	}
}

// track follows the server's connections for Down.
func (r *Receiver) track(c net.Conn, st http.ConnState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch st {
	case http.StateNew:
		r.conns[c] = true
	case http.StateClosed, http.StateHijacked:
		delete(r.conns, c)
	}
}

// ServeHTTP verifies and records one request.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	d, err := r.verify(req, body)
	r.mu.Lock()
	answer, delay := r.answer, r.delay
	if err != nil {
		r.bad++
		answer = http.StatusUnauthorized
	} else {
		d.Answer, d.At = answer, time.Now()
		r.all = append(r.all, d)
	}
	close(r.changed)
	r.changed = make(chan struct{})
	r.inflight++
	r.maxFlight = max(r.maxFlight, r.inflight)
	r.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-req.Context().Done():
		}
	}
	r.mu.Lock()
	r.inflight--
	r.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), answer)
		return
	}
	w.WriteHeader(answer)
}

// verify checks the Standard Webhooks headers and signature of a request.
func (r *Receiver) verify(req *http.Request, body []byte) (Delivery, error) {
	id := req.Header.Get("webhook-id")
	tsText := req.Header.Get("webhook-timestamp")
	sigs := req.Header.Get("webhook-signature")
	if req.Method != http.MethodPost || id == "" || tsText == "" || sigs == "" {
		return Delivery{}, errors.New("not a signed POST")
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return Delivery{}, errors.New("bad webhook-timestamp")
	}
	r.mu.Lock()
	tol := r.tolerance
	r.mu.Unlock()
	if tol > 0 {
		if d := time.Since(time.Unix(ts, 0)); d > tol || d < -tol {
			return Delivery{}, errors.New("webhook-timestamp too far from now")
		}
	}
	mac := hmac.New(sha256.New, r.key)
	mac.Write([]byte(id + "." + tsText + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	ok := false
	for _, s := range strings.Fields(sigs) {
		v, b64, found := strings.Cut(s, ",")
		got, err := base64.StdEncoding.DecodeString(b64)
		if found && v == "v1" && err == nil && hmac.Equal(got, want) {
			ok = true
		}
	}
	if !ok {
		return Delivery{}, errors.New("no valid v1 signature")
	}
	var env struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return Delivery{}, errors.New("body is not JSON")
	}
	return Delivery{ID: id, Timestamp: ts, Type: env.Type, Body: body, Data: env.Data}, nil
}

// All returns every verified request, in arrival order, whatever it was
// answered.
func (r *Receiver) All() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Delivery(nil), r.all...)
}

// Accepted returns the verified requests answered with a 2xx, in arrival
// order (an id twice if it was accepted twice).
func (r *Receiver) Accepted() []Delivery { return accepted(r.All()) }

// MaxInFlight is the most requests the receiver was answering at once.
func (r *Receiver) MaxInFlight() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.maxFlight
}

// BadSignatures counts the requests refused for their signature.
func (r *Receiver) BadSignatures() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bad
}

// WaitAccepted waits until n distinct ids were accepted and returns the
// accepted deliveries; it fails the test after within.
func (r *Receiver) WaitAccepted(t testing.TB, n int, within time.Duration) []Delivery {
	t.Helper()
	return r.WaitFor(t, within, func(all []Delivery) bool {
		return Distinct(accepted(all)) >= n
	}, "%d distinct accepted events", n)
}

// WaitFor waits until cond holds for All() and returns the accepted
// deliveries; it fails the test after within, saying what it waited for.
func (r *Receiver) WaitFor(t testing.TB, within time.Duration, cond func([]Delivery) bool, what string, args ...any) []Delivery {
	t.Helper()
	deadline := time.After(within)
	for {
		r.mu.Lock()
		all := append([]Delivery(nil), r.all...)
		changed := r.changed
		r.mu.Unlock()
		if cond(all) {
			return accepted(all)
		}
		select {
		case <-changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			a := accepted(all)
			t.Fatalf("webhooktest: waited %s for "+what+"; got %d requests, %d accepted (%d distinct), %d bad signatures",
				append([]any{within}, append(args, len(all), len(a), Distinct(a), r.BadSignatures())...)...)
			return nil
		}
	}
}

func accepted(all []Delivery) []Delivery {
	var out []Delivery
	for _, d := range all {
		if d.Answer >= 200 && d.Answer < 300 {
			out = append(out, d)
		}
	}
	return out
}

// Distinct counts the distinct ids in ds.
func Distinct(ds []Delivery) int {
	seen := map[string]bool{}
	for _, d := range ds {
		seen[d.ID] = true
	}
	return len(seen)
}

// IsDownError reports whether an error message is what a client gets from
// a receiver that is Down: its connection reset (on the read, the write,
// or as an early end of the answer).
func IsDownError(msg string) bool {
	for _, s := range []string{"connection reset", "broken pipe", "EOF"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
