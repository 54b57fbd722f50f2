package queue

import (
	"bytes"
	"io"
	"sync"

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
}

func (c *captureReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
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
func (q *Queue) body(m *message) (data []byte, f *spool.Body, err error) {
	q.mu.Lock()
	if m.data != nil {
		m.refs++
		data = m.data.Bytes()
		q.mu.Unlock()
		return data, nil, nil
	}
	q.mu.Unlock()
	f, err = q.sp.Open(m.env.ID, m.off)
	if err != nil {
		return nil, nil, err
	}
	size, err := f.Size()
	if err != nil || size >= maxCached {
		return nil, f, nil // stream it (a Stat error shows again on reading)
	}
	buf := getBuf(int(size))
	_, err = buf.ReadFrom(f)
	f.Close()
	if err != nil {
		putBuf(buf)
		return nil, nil, err
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
// tracking.base_url changed since it was made. data is m.data, held.
func (q *Queue) template(m *message, data []byte, baseURL string, opt rewrite.Options, tok string) *template {
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
		t = newTemplate(data, baseURL, opt, tok, parts)
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
