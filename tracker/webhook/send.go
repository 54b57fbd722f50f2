package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Endpoint is where events go and the key they are signed with.
type Endpoint struct {
	Name string
	URL  string
	Key  []byte // the bytes of the whsec_ secret
}

// Result is the outcome of one attempt.
type Result struct {
	Status     int           // the HTTP status; 0 when no answer came
	Err        string        // why it failed; "" for a 2xx
	RetryAfter time.Duration // the answer's Retry-After, if any
	Took       time.Duration
}

// OK reports a 2xx answer: the event is delivered.
func (r Result) OK() bool { return r.Status >= 200 && r.Status < 300 }

// Gone reports 410 Gone: the endpoint wants no more events.
func (r Result) Gone() bool { return r.Status == http.StatusGone }

// DefaultTimeout bounds one attempt, answer included (Standard Webhooks
// recommends 15 to 30 s).
const DefaultTimeout = 15 * time.Second

// maxAnswer is how much of an answer is read (and kept for the error).
const maxAnswer = 64 << 10

// NewClient returns the HTTP client attempts use: a bounded timeout, no
// redirects followed (a 3xx is a failure, as the specification asks), the
// environment's proxy settings.
func NewClient(timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 2
	return &http.Client{
		Timeout:   timeout,
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Post makes one attempt: body to ep.URL as JSON, signed for time now
// with the event's id.
func Post(ctx context.Context, c *http.Client, ep *Endpoint, id string, body []byte, now time.Time) Result {
	start := time.Now()
	res := post(ctx, c, ep, id, body, now)
	res.Took = time.Since(start)
	return res
}

func post(ctx context.Context, c *http.Client, ep *Endpoint, id string, body []byte, now time.Time) Result {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return Result{Err: err.Error()}
	}
	ts := now.Unix()
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "pixelrelay-webhooks/1")
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(HeaderSignature, Sign(ep.Key, id, ts, body))
	resp, err := c.Do(req)
	if err != nil {
		return Result{Err: transportError(err, c.Timeout)}
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	res := Result{Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), now)}
	if !res.OK() {
		res.Err = statusError(resp, answer)
	}
	return res
}

// transportError says why no answer came, without repeating the URL.
func transportError(err error, timeout time.Duration) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Sprintf("no answer within %s", timeout)
		}
		err = ue.Err
	}
	if errors.Is(err, context.Canceled) {
		return "cancelled (pixelrelay stopping or the endpoint changed)"
	}
	return err.Error()
}

// statusError is "500 Internal Server Error: first line of the answer".
func statusError(resp *http.Response, answer []byte) string {
	msg := resp.Status
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		if loc := resp.Header.Get("Location"); loc != "" {
			msg += " (redirects are not followed; set the url to " + oneLine(loc, 200) + ")"
		}
	}
	if text := oneLine(string(answer), 200); text != "" {
		msg += ": " + text
	}
	return msg
}

// oneLine squeezes s to one printable line of at most n bytes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }), " ")
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
}

// retryAfter parses Retry-After: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 {
		return time.Duration(min(n, 7*86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
