package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"pixelrelay/tracker/httpd"
)

// Client timeouts: queries are quick; a purge compacts the database file.
// Variables so tests can shorten them.
var (
	queryTimeout = 10 * time.Second
	purgeTimeout = 30 * time.Minute
)

// maxBody bounds an API answer the CLI reads.
const maxBody = 64 << 20

// client talks to the running server's admin API.
type client struct {
	config string // the config file this command read ("" for defaults)
	addr   string // host:port as dialed, for messages
	base   string // http://host:port
	key    string
	hc     *http.Client
}

// connect loads the config named by --config and makes a client for the
// server it describes.
func (e *env) connect(cfgFlag string) (*client, error) {
	cfg, err := e.loadConfig(cfgFlag)
	if err != nil {
		return nil, err
	}
	addr, err := apiAddr(cfg.HTTP.Listen)
	if err != nil {
		return nil, err
	}
	c := &client{config: cfg.Path, addr: addr, base: "http://" + addr, hc: newHTTPClient()}
	key, err := adminKey(cfg)
	if err != nil {
		// Without a key nothing works; but "not running" is the more
		// useful news when it is also true.
		if perr := c.probe(); perr != nil {
			return nil, perr
		}
		return nil, err
	}
	c.key = key
	return c, nil
}

// newHTTPClient talks to the admin API directly: never through an
// $HTTP_PROXY (the admin key would go to the proxy), never following a
// redirect.
func newHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// apiAddr is where to reach a server listening on listen: an unspecified
// host (":8025", "0.0.0.0", "::") is reached over loopback.
func apiAddr(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("http.listen %q: %v", listen, err)
	}
	if host == "" {
		host = "127.0.0.1"
	} else if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port), nil
}

// probe checks that something answers /healthz.
func (c *client) probe() error {
	_, err := c.do(http.MethodGet, "/healthz", nil, 2*time.Second)
	return err
}

// get fetches an admin API route and returns the body.
func (c *client) get(path string, q url.Values) ([]byte, error) {
	return c.do(http.MethodGet, path, q, queryTimeout)
}

// getJSON fetches a route and decodes its body into v; the raw body is
// returned too, for --json.
func (c *client) getJSON(path string, q url.Values, v any) ([]byte, error) {
	body, err := c.get(path, q)
	if err != nil {
		return nil, err
	}
	return body, c.decode(body, v)
}

func (c *client) decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("the answer from %s is not what this version of pixelrelay reads: %v", c.addr, err)
	}
	return nil
}

func (c *client) do(method, path string, q url.Values, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(err, timeout)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, c.transportError(err, timeout)
	}
	if resp.StatusCode/100 != 2 {
		return nil, c.statusError(resp.StatusCode, body)
	}
	return body, nil
}

// transportError explains a request that got no answer.
func (c *client) transportError(err error, timeout time.Duration) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return fmt.Errorf("pixelrelay is not running at %s — start it with `%s serve`", c.addr, selfCommand())
	}
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		return fmt.Errorf("no answer from %s within %s", c.addr, timeout)
	}
	return fmt.Errorf("talking to %s: %v", c.addr, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// apiError is a non-2xx answer of the admin API: its status code and
// what the server said.
type apiError struct {
	addr string
	code int
	msg  string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s answered %d: %s", e.addr, e.code, e.msg)
}

// statusError explains a non-2xx answer.
func (c *client) statusError(code int, body []byte) error {
	if code == http.StatusUnauthorized {
		return fmt.Errorf("the admin key was refused by %s — is PIXELRELAY_ADMIN_KEY or data_dir the same as the server's?", c.addr)
	}
	var er httpd.ErrorResponse
	msg := ""
	if json.Unmarshal(body, &er) == nil && er.Error != "" {
		msg = er.Error
	} else {
		msg = strings.TrimSpace(string(body))
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
	}
	if msg == "" {
		msg = http.StatusText(code)
	}
	return &apiError{addr: c.addr, code: code, msg: clean(msg)}
}

// writeJSON prints an API body for --json: the same data, indented, ending
// in one newline (the API's own trailing newline is not doubled).
func writeJSON(w io.Writer, body []byte) error {
	body = bytes.TrimSpace(body)
	var b bytes.Buffer
	if err := json.Indent(&b, body, "", "  "); err != nil {
		b.Reset()
		b.Write(body)
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

// printJSON prints v as indented JSON ending in one newline, the way
// writeJSON prints an API body: for the commands that answer without the
// API (version, config check).
func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
