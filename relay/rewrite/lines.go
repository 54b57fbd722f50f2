package rewrite

import (
	"bufio"
	"bytes"
	"io"
)

// readBufSize bounds one chunk of a line. Longer lines come in pieces; a
// boundary delimiter (at most 70 characters of boundary) always fits.
const readBufSize = 64 << 10

// lineReader hands out a message line by line, keeping every byte,
// line endings included.
type lineReader struct {
	br      *bufio.Reader
	atStart bool // the next chunk begins a line

	pending      []byte // one pushed-back chunk
	pendingStart bool
	hasPending   bool

	last          string // line ending of the chunk last returned
	before        string // line ending of the chunk before that
	pendingBefore string
}

// next returns the next chunk: a whole line with its ending, or a piece of
// a line longer than the read buffer. start reports whether the chunk
// begins a line. The slice is valid until the next call. At the end of the
// input next returns io.EOF with no data; other errors are read failures.
func (lr *lineReader) next() (chunk []byte, start bool, err error) {
	if lr.hasPending {
		lr.hasPending = false
		lr.before, lr.last = lr.pendingBefore, lineEnding(lr.pending)
		return lr.pending, lr.pendingStart, nil
	}
	start = lr.atStart
	chunk, err = lr.br.ReadSlice('\n')
	lr.before, lr.last = lr.last, lineEnding(chunk)
	switch {
	case err == bufio.ErrBufferFull:
		lr.atStart = false
		return chunk, start, nil
	case err == io.EOF && len(chunk) > 0:
		lr.atStart = true
		return chunk, start, nil
	}
	lr.atStart = true
	return chunk, start, err
}

// unread pushes chunk back; the next call to next returns it again.
func (lr *lineReader) unread(chunk []byte, start bool) {
	lr.pending = append(lr.pending[:0], chunk...)
	lr.pendingStart = start
	lr.hasPending = true
	lr.pendingBefore = lr.before
}

// lineEnding returns the line ending that chunk ends with: "\r\n", "\n"
// or "".
func lineEnding(chunk []byte) string {
	n := len(chunk)
	switch {
	case n >= 2 && chunk[n-2] == '\r' && chunk[n-1] == '\n':
		return "\r\n"
	case n >= 1 && chunk[n-1] == '\n':
		return "\n"
	}
	return ""
}

// isBlank reports whether chunk is an empty line.
func isBlank(chunk []byte) bool {
	return len(chunk) == len(lineEnding(chunk)) && len(chunk) > 0
}

// boundaries is the stack of multipart boundaries in force, outermost
// first, each stored as "--" + boundary.
type boundaries [][]byte

// match reports whether line is a delimiter line (RFC 2046 5.1.1) of one
// of the boundaries, which one (index into the stack, innermost first
// wins) and whether it is a close delimiter.
func (bs boundaries) match(line []byte) (level int, closing, ok bool) {
	if len(line) < 3 || line[0] != '-' || line[1] != '-' {
		return 0, false, false
	}
	for i := len(bs) - 1; i >= 0; i-- {
		b := bs[i]
		if !bytes.HasPrefix(line, b) {
			continue
		}
		rest := line[len(b):]
		closing = bytes.HasPrefix(rest, []byte("--"))
		if closing {
			rest = rest[2:]
		}
		for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
			rest = rest[1:]
		}
		if len(rest) == len(lineEnding(rest)) {
			return i, closing, true
		}
	}
	return 0, false, false
}
