package queue

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/emersion/go-smtp"

	"pixelrelay/relay"

	"pixelrelay/relay/rewrite"
	"pixelrelay/relay/spool"
)

// maxCached is the largest message read whole into memory for delivery;
// bigger ones are streamed from the spool file for every copy.
const maxCached = 1 << 20

// maxCacheTotal bounds the messages kept in memory from their spooling
// until their delivery (a backlog is read back from the spool instead).
// Copies in flight may add up to upstream.connections × maxCached.
const maxCacheTotal = 64 << 20

// captureReader keeps what is read through it in buf, up to maxCached;
// beyond that it gives buf back and keeps nothing.
type captureReader struct {
	r   io.Reader
	buf *bytes.Buffer // nil: not capturing
	n   int64         // bytes read
}

func (c *captureReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.buf != nil && n > 0 {
		if c.buf.Len()+n > maxCached {
			putBuf(c.buf)
			c.buf = nil
		} else {
			c.buf.Write(p[:n])
		}
	}
	return n, err
}

// setData makes buf m's bytes in memory. The caller holds q.mu.
func (q *Queue) setData(m *message, buf *bytes.Buffer) {
	m.data = buf
	q.cacheUsed.Add(int64(buf.Len()))
}

// body returns m's raw message: in memory (data, shared with the other
// copies of m being delivered; give it back with release) when it is
// smaller than maxCached, else an open spool file (f) to stream and close.
// The bytes stay cached while a copy of m is in flight or not tried yet,
// so the copies of a message, dispatched one after the other, read the
// spool file once.
//
// A spool file that cannot be read back, or whose size changed, is
// damaged: it is moved aside (markDamaged) and the error is permanent.
func (q *Queue) body(m *message) (data []byte, f *spool.Body, err error) {
	q.mu.Lock()
	if m.damaged != "" {
		q.mu.Unlock()
		return nil, nil, damagedErr(m.damaged)
	}
	if m.data != nil {
		m.refs++
		data = m.data.Bytes()
		q.mu.Unlock()
		return data, nil, nil
	}
	q.mu.Unlock()
	f, size, err := q.openSpool(m)
	if err != nil {
		return nil, nil, err
	}
	if size >= maxCached {
		return nil, f, nil // stream it
	}
	buf := getBuf(int(size))
	_, err = buf.ReadFrom(f)
	f.Close()
	if err != nil {
		putBuf(buf)
		return nil, nil, q.markDamaged(m, "reading the spool file: "+err.Error())
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if m.data != nil { // another copy read it meanwhile
		putBuf(buf)
	} else {
		q.setData(m, buf)
	}
	m.refs++
	return m.data.Bytes(), nil, nil
}

// release gives back the bytes a copy got from body (result frees them).
func (q *Queue) release(m *message) {
	q.mu.Lock()
	defer q.mu.Unlock()
	m.refs--
}

// dropData frees m's cached bytes when no copy is using them and none is
// waiting for its first attempt (called after each attempt). The caller
// holds q.mu.
func (q *Queue) dropData(m *message) {
	if m.refs > 0 || m.data == nil {
		return
	}
	if m.st != nil {
		for i := range m.st.Copies {
			if c := &m.st.Copies[i]; c.Attempts == 0 && !c.Final() {
				return
			}
		}
	}
	q.cacheUsed.Add(-int64(m.data.Len()))
	putBuf(m.data)
	m.data = nil
	q.setTemplate(m, nil)
	m.tmplTried = false
}

// template returns m's template for tracked copies (see template): made
// while planning, or by the first copy that asks; nil when the message has
// a single tracked copy, no template can stand for its copies, or
// tracking.base_url changed since it was made. data is m.data, held;
// links are the copy's link tokens (nil: links stay).
func (q *Queue) template(m *message, data []byte, baseURL string, opt rewrite.Options, tok string, links []string) *template {
	if tok == "" {
		return nil
	}
	m.tmu.Lock()
	defer m.tmu.Unlock()
	q.mu.Lock()
	t, tried := m.tmpl, m.tmplTried
	parts, tracked := 0, 0
	if m.st != nil {
		parts = m.st.HTMLParts
		for _, c := range m.st.Copies {
			if c.Token != "" {
				tracked++
			}
		}
	}
	q.mu.Unlock()
	if !tried && tracked >= 2 {
		linkLen := 0
		if len(links) > 0 {
			linkLen = len(links[0])
		}
		t = newTemplate(data, baseURL, opt, tok, linkLen, parts)
		q.mu.Lock()
		q.setTemplate(m, t)
		q.mu.Unlock()
	}
	if t == nil || t.baseURL != baseURL {
		return nil
	}
	return t
}

// setTemplate makes t (nil: none possible) m's template. The caller holds
// q.mu.
func (q *Queue) setTemplate(m *message, t *template) {
	if m.tmpl != nil {
		q.cacheUsed.Add(-int64(m.tmpl.out.Len()))
		putBuf(m.tmpl.out)
	}
	m.tmpl, m.tmplTried = t, true
	if t != nil {
		q.cacheUsed.Add(int64(t.out.Len()))
	}
}

// openSpool opens m's spooled message and checks its size against the one
// it had when spooled or planned (or learns it, when unknown). A file that
// cannot be opened or whose size changed is damaged (markDamaged).
func (q *Queue) openSpool(m *message) (*spool.Body, int64, error) {
	f, err := q.sp.Open(m.env.ID, m.off)
	if err != nil {
		return nil, 0, q.markDamaged(m, "opening the spool file: "+err.Error())
	}
	size, err := f.Size()
	if err != nil {
		f.Close()
		return nil, 0, q.markDamaged(m, err.Error())
	}
	q.mu.Lock()
	want := m.size
	if want == 0 {
		m.size = size
	}
	q.mu.Unlock()
	if want > 0 && size != want || size < 0 {
		f.Close()
		return nil, 0, q.markDamaged(m, fmt.Sprintf("the message is %d bytes, was %d when spooled", size, want))
	}
	return f, size, nil
}

// markDamaged moves m's spool file aside (once) because of reason, and
// returns the error that fails every copy of m from now on: permanent, so
// that the sender gets a bounce instead of a copy retried until max_age.
func (q *Queue) markDamaged(m *message, reason string) error {
	q.mu.Lock()
	first := m.damaged == ""
	if first {
		m.damaged = reason
	}
	reason = m.damaged
	q.mu.Unlock()
	if first {
		de := q.sp.MoveAside(m.env.ID, reason)
		q.log.Error("spool: damaged message moved aside", "queue_id", m.env.ID, "reason", reason,
			"moved_to", de.Path, "move_err", de.Err)
	}
	return damagedErr(reason)
}

// damagedErr is the failure of a copy whose message cannot be read back.
func damagedErr(reason string) error {
	return &relay.DeliveryError{Class: relay.Permanent, Code: 554, Stage: "spool",
		Err: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 3, 0},
			Message: "the relay could not read the message back from its spool (" + reason +
				"); it is kept aside for the administrator"}}
}

// spoolReader notes the read errors of a spool file (not the parse errors
// of whoever reads it).
type spoolReader struct {
	r   io.Reader
	err error
}

func (s *spoolReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// logScanError logs one problem Scan reported.
func (q *Queue) logScanError(err error) {
	var de *spool.DamagedError
	if !errors.As(err, &de) {
		q.log.Error("spool: scanning", "err", err)
		return
	}
	switch {
	case de.Err != nil:
		q.log.Error("spool: damaged entry could not be moved aside", "queue_id", de.ID, "reason", de.Reason, "err", de.Err)
	case de.StateOnly:
		q.log.Error("spool: damaged state moved aside; the message is planned again", "queue_id", de.ID,
			"reason", de.Reason, "moved_to", de.Path)
	default:
		q.log.Error("spool: damaged message moved aside", "queue_id", de.ID, "reason", de.Reason, "moved_to", de.Path)
	}
}

var bufs sync.Pool

// getBuf returns an empty pooled buffer with room for n bytes.
func getBuf(n int) *bytes.Buffer {
	b, _ := bufs.Get().(*bytes.Buffer)
	if b == nil {
		b = new(bytes.Buffer)
	}
	b.Reset()
	b.Grow(n + bytes.MinRead)
	return b
}

// putBuf returns b to the pool unless it grew big.
func putBuf(b *bytes.Buffer) {
	if b.Cap() <= 2*maxCached {
		bufs.Put(b)
	}
}
