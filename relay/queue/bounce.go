package queue

import (
	"bufio"
	"bytes"
	"errors"

	"pixelrelay/relay/dsn"
	"pixelrelay/relay/spool"
)

// maxBounceHeader caps how much of the original header a bounce quotes.
const maxBounceHeader = 64 << 10

// bounce spools one DSN to m's envelope sender listing the failures. A
// bounce of a bounce, or of mail from the null sender, is only logged.
func (q *Queue) bounce(m *message, fails []spool.Failure) error {
	if m.env.DSN || m.env.From == "" {
		q.log.Warn("undeliverable; no bounce for the null sender", "queue_id", m.env.ID, "failed", len(fails))
		return nil
	}
	hdr, err := q.originalHeader(m)
	if err != nil {
		// Bounce without quoting it rather than never.
		q.log.Warn("bounce without the original header", "queue_id", m.env.ID, "err", err)
		hdr = nil
	}
	q.mu.Lock()
	subject := m.st.Subject
	q.mu.Unlock()
	r := dsn.Report{
		Hostname:    q.hostname(),
		To:          m.env.From,
		QueueID:     m.env.ID,
		Date:        q.opt.Now(),
		ArrivalDate: m.env.Received,
		Subject:     subject,
		Header:      hdr,
	}
	for _, f := range fails {
		r.Recipients = append(r.Recipients, dsn.Recipient{
			Address: f.Recipient, Status: f.Status, Diagnostic: f.Diagnostic, At: f.At,
		})
	}
	env := q.newEnvelope("", []string{m.env.From})
	env.DSN = true
	env.Account = m.env.Account // the sender's own account takes it back
	r.MessageID = env.MessageID
	body, err := dsn.Build(r)
	if err != nil {
		return err
	}
	bm, err := q.put(env, bytes.NewReader(body))
	if err != nil {
		return err
	}
	q.log.Info("bounce queued", "queue_id", m.env.ID, "bounce_id", bm.env.ID, "to", m.env.From, "failed", len(fails), "size", len(body))
	q.enqueuePlan(bm)
	return nil
}

// originalHeader reads the header section of m's spooled message.
func (q *Queue) originalHeader(m *message) ([]byte, error) {
	q.mu.Lock()
	damaged := m.damaged
	q.mu.Unlock()
	if damaged != "" {
		return nil, errors.New("the message is damaged")
	}
	body, err := q.sp.Open(m.env.ID, m.off)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	var hdr []byte
	for len(hdr) < maxBounceHeader {
		line, err := body.ReadSlice('\n')
		if len(bytes.TrimRight(line, "\r\n")) == 0 && (len(line) > 0 || err != nil) {
			break
		}
		hdr = append(hdr, line...)
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			break
		}
	}
	return hdr, nil
}
