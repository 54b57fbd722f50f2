package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls a tracker's relay API with the relay's secret.
type Client struct {
	base   string // tracker.remote_url, without a trailing "/"
	secret func() string
	hc     *http.Client
	now    func() time.Time
}

// NewClient returns a client of the tracker at base (tracker.remote_url).
// secret returns the relay's secret (it may change when the relay key is
// imported again); now is the relay's clock (nil: time.Now).
func NewClient(base string, secret func() string, now func() time.Time) *Client {
	if now == nil {
		now = time.Now
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = MaxWait + 15*time.Second
	return &Client{
		base: strings.TrimRight(base, "/"), secret: secret, now: now,
		hc: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // never carry the secret elsewhere
		}},
	}
}

// Base is the tracker's URL.
func (c *Client) Base() string { return c.base }

// ErrRefused is wrapped by errors of a tracker that refused the relay's
// key (401): the relay must be paired again.
var ErrRefused = errors.New("the tracker refused this relay's key")

// Register sends copies' states.
func (c *Client) Register(ctx context.Context, copies []CopyState) (RegisterResponse, error) {
	var out RegisterResponse
	err := c.call(ctx, http.MethodPost, PathCopies, nil, RegisterRequest{Now: c.now().UTC(), Copies: copies}, &out)
	return out, err
}

// Opens takes up to limit waiting opens, waiting up to wait for the first.
func (c *Client) Opens(ctx context.Context, limit int, wait time.Duration) (OpensResponse, error) {
	var out OpensResponse
	q := url.Values{"limit": {strconv.Itoa(limit)}, "wait": {strconv.Itoa(int(wait / time.Second))}}
	err := c.call(ctx, http.MethodGet, PathOpens, q, nil, &out)
	return out, err
}

// Ack acknowledges stored opens.
func (c *Client) Ack(ctx context.Context, seqs []uint64) (int, error) {
	var out AckResponse
	err := c.call(ctx, http.MethodPost, PathAck, nil, AckRequest{Seqs: seqs}, &out)
	return out.Acked, err
}

// Keys fetches the tracker's tracking keys.
func (c *Client) Keys(ctx context.Context) (KeysResponse, error) {
	var out KeysResponse
	err := c.call(ctx, http.MethodGet, PathKeys, nil, nil, &out)
	return out, err
}

// Rotate asks the tracker for a new tracking key version.
func (c *Client) Rotate(ctx context.Context) (KeysResponse, error) {
	var out KeysResponse
	err := c.call(ctx, http.MethodPost, PathRotate, nil, nil, &out)
	return out, err
}

func (c *Client) call(ctx context.Context, method, path string, q url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.secret())
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("tracker %s: %w", c.base, unwrapURL(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("tracker %s: %w", c.base, err)
	}
	if resp.StatusCode/100 != 2 {
		return c.statusError(resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("tracker %s: the answer to %s is not the relay API's: %v", c.base, path, err)
	}
	return nil
}

func (c *Client) statusError(code int, b []byte) error {
	var er ErrorResponse
	msg := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &er) == nil && er.Error != "" {
		msg = er.Error
	}
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if code == http.StatusUnauthorized {
		return fmt.Errorf("tracker %s: %w: pair again (`pixelrelay keys export` there, `pixelrelay keys import` here)", c.base, ErrRefused)
	}
	if code == http.StatusNotFound {
		return fmt.Errorf("tracker %s answered 404: is tracker.remote_url a pixelrelay tracker (serve --tracker-only)?", c.base)
	}
	return fmt.Errorf("tracker %s answered %d: %s", c.base, code, msg)
}

// unwrapURL drops *url.Error's repetition of method and URL.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
