package httpd

import (
	"bytes"
	"net"
	"strings"
)

// net/http answers a request whose head it will not parse with its own
// "400 Bad Request" (text/plain) before any handler runs: a control
// character in a header value (a User-Agent with an escape sequence, a
// NUL, a bare CR), a header name with a space, a line without a colon, a
// missing or doubled Host, a space or control character in the path, an
// unknown HTTP version. For the pixel route that would be a broken image
// in someone's mail, so pixelListener's connections mend the head of every
// pixel request (GET or HEAD /o/…) before net/http reads it: the request
// then reaches the handler and gets the GIF. The heads of other requests,
// and everything after them, pass through untouched.

// maxPixelHead bounds the bytes held while looking for the end of a pixel
// request's head; a longer head passes as it is (net/http answers 431).
const maxPixelHead = MaxHeaderBytes + 4096

// pixelListener wraps the HTTP listener's connections in pixelConn.
type pixelListener struct{ net.Listener }

func (l pixelListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &pixelConn{Conn: c}, nil
}

// What pixelConn is reading.
const (
	atRequest   = iota // the start of a request: is it a pixel request?
	inPixelHead        // the head of a pixel request, held until it ends
	passing            // anything else: passed through to the connection's end
)

// pixelConn mends the heads of pixel requests (see above). It is read by
// one goroutine at a time, as net/http does.
type pixelConn struct {
	net.Conn
	state   int
	pending []byte // read, not yet decided on (a request start or a pixel head)
	out     []byte // ready for net/http
	err     error  // a read error to return once out is drained
	buf     []byte // for reads while not passing
}

// Read hands net/http the connection's bytes, pixel heads mended. A read
// error is handed on once, after the bytes before it: a timeout (net/http
// sets a past deadline to stop its background read) leaves the connection
// usable.
func (c *pixelConn) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if err := c.err; err != nil {
			c.err = nil
			return 0, err
		}
		if c.state == passing && len(c.pending) == 0 {
			return c.Conn.Read(p)
		}
		if c.buf == nil {
			c.buf = make([]byte, 4096)
		}
		n, err := c.Conn.Read(c.buf)
		c.feed(c.buf[:n])
		if err != nil {
			c.out = append(c.out, c.pending...) // unfinished: as it is
			c.pending, c.err = nil, err
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

// CloseWrite lets net/http half-close the connection as it does a TCP one.
func (c *pixelConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// feed takes newly read bytes through the state machine.
func (c *pixelConn) feed(b []byte) {
	c.pending = append(c.pending, b...)
	for len(c.pending) > 0 {
		switch c.state {
		case passing:
			c.out, c.pending = append(c.out, c.pending...), nil
		case atRequest:
			switch isPixelRequest(c.pending) {
			case unknown:
				return // wait for more
			case yes:
				c.state = inPixelHead
			default:
				c.state = passing
			}
		case inPixelHead:
			end := headEnd(c.pending)
			if end < 0 {
				if len(c.pending) > maxPixelHead {
					c.state = passing
					continue
				}
				return // wait for more
			}
			c.out = append(c.out, mendHead(c.pending[:end])...)
			c.pending = c.pending[end:]
			c.state = atRequest
		}
	}
}

type answer int

const (
	unknown answer = iota
	yes
	no
)

// isPixelRequest says whether b, the start of a request, is a GET or HEAD
// of /o/…, or unknown while b is too short to tell.
func isPixelRequest(b []byte) answer {
	for _, start := range []string{"GET /o/", "HEAD /o/"} {
		n := min(len(b), len(start))
		if string(b[:n]) == start[:n] {
			if n == len(start) {
				return yes
			}
			return unknown
		}
	}
	return no
}

// headEnd is the length of the head at the start of b (through the empty
// line that ends it, "\n\n" or "\n\r\n"), or -1 when b holds no end yet.
func headEnd(b []byte) int {
	for i := bytes.IndexByte(b, '\n'); i >= 0; {
		rest := b[i+1:]
		switch {
		case bytes.HasPrefix(rest, []byte("\n")):
			return i + 2
		case bytes.HasPrefix(rest, []byte("\r\n")):
			return i + 3
		}
		j := bytes.IndexByte(rest, '\n')
		if j < 0 {
			return -1
		}
		i += 1 + j
	}
	return -1
}

// mendHead rewrites a pixel request's head into one net/http accepts:
// a request line of method, a target without spaces or control characters
// (percent-encoded) and HTTP/1.0 or HTTP/1.1; header lines with a valid
// name (trailing blanks before the colon dropped) and control characters in
// values turned into spaces (RFC 9110 5.5 allows this for CR, LF and NUL);
// lines that cannot be mended, a Host after the first good one, and
// Content-Length, Transfer-Encoding and Expect (the pixel reads no body)
// left out; a Host added to an HTTP/1.1 request that has none. Line ends
// become CRLF.
func mendHead(head []byte) []byte {
	out := make([]byte, 0, len(head)+64)
	line, rest := nextLine(head)
	out = appendRequestLine(out, line)
	http11 := bytes.HasSuffix(out, []byte("HTTP/1.1\r\n"))
	hasHost, kept := false, false // kept: the last field line was written
	for len(rest) > 0 {
		line, rest = nextLine(rest)
		if len(line) == 0 {
			break // the empty line that ends the head
		}
		if line[0] == ' ' || line[0] == '\t' { // obs-fold
			if kept {
				out = append(out, ' ')
				out = append(appendBlanked(out, bytes.TrimLeft(line, " \t")), "\r\n"...)
			}
			continue
		}
		kept = false
		name, value, ok := bytes.Cut(line, []byte(":"))
		name = bytes.TrimRight(name, " \t")
		if !ok || !isToken(name) {
			continue
		}
		switch {
		case equalFold(name, "content-length"), equalFold(name, "transfer-encoding"), equalFold(name, "expect"):
			continue
		case equalFold(name, "host"):
			if hasHost || !isHost(bytes.TrimSpace(value)) {
				continue
			}
			hasHost = true
		}
		out = append(append(out, name...), ':')
		out = append(appendBlanked(out, value), "\r\n"...)
		kept = true
	}
	if !hasHost && http11 {
		out = append(out, "Host: pixel.invalid\r\n"...)
	}
	return append(out, "\r\n"...)
}

// nextLine splits b at its first LF: the line without its CRLF or LF, and
// the rest.
func nextLine(b []byte) (line, rest []byte) {
	line, rest, _ = bytes.Cut(b, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r")), rest
}

func equalFold(b []byte, s string) bool { return len(b) == len(s) && strings.EqualFold(string(b), s) }

// appendRequestLine appends the mended request line: the method, the
// target (everything up to the last space when an HTTP version follows it)
// percent-encoded where net/http would refuse it (spaces, control
// characters, a "%" that starts no escape), and the version, HTTP/1.1
// unless it says HTTP/1.0.
func appendRequestLine(out, line []byte) []byte {
	method, target, _ := bytes.Cut(line, []byte(" "))
	proto := "HTTP/1.1"
	if i := bytes.LastIndexByte(target, ' '); i >= 0 && bytes.HasPrefix(target[i+1:], []byte("HTTP/")) {
		if string(target[i+1:]) == "HTTP/1.0" {
			proto = "HTTP/1.0"
		}
		target = target[:i]
	}
	out = append(append(out, method...), ' ')
	for i, c := range target {
		if c == ' ' || isControl(c) || c == '%' && !(i+2 < len(target) && isHex(target[i+1]) && isHex(target[i+2])) {
			out = append(out, '%', hexDigits[c>>4], hexDigits[c&15])
			continue
		}
		out = append(out, c)
	}
	return append(out, " "+proto+"\r\n"...)
}

const hexDigits = "0123456789ABCDEF"

// appendBlanked appends a field value with the control characters
// net/http refuses (all but HTAB, and DEL) turned into spaces; every other
// byte stays.
func appendBlanked(out, value []byte) []byte {
	for _, c := range value {
		if isControl(c) && c != '\t' {
			c = ' '
		}
		out = append(out, c)
	}
	return out
}

func isControl(c byte) bool { return c < ' ' || c == 0x7f }

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// isToken reports whether s is a non-empty RFC 9110 token (a field name).
func isToken(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// isHost reports whether s is a Host value net/http takes for sure: a
// name, IPv4 or bracketed IPv6 address with an optional port. (Others it
// may take as well are replaced: the pixel does not use Host.)
func isHost(s []byte) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._:[]", c) >= 0) {
			return false
		}
	}
	return true
}
