package store

import (
	"bytes"

	"pixelrelay/tracker/record"
)

// What the list's scans read of a copy without decoding (and allocating)
// all of it: a filter looks at the state, a text search at the recipient
// and subject. Each falls back to the full decode when it does not know a
// record's layout.

// timeValueVersion starts copyTimeValue.
const timeValueVersion = 1

// copyTimeValue is the value of a copy's bCopiesByTime entry: its
// recipient and subject, so a text search reads them from the index in
// order instead of looking up each copy. Entries written before this have
// an empty value.
func copyTimeValue(c *record.Copy) []byte {
	b := make([]byte, 0, 4+len(c.Recipient)+len(c.Subject))
	b = append(b, timeValueVersion)
	b = appendStr(b, c.Recipient)
	return appendStr(b, c.Subject)
}

// peekTimeValue reads a copyTimeValue; ok is false for an empty or unknown
// value.
func peekTimeValue(v []byte) (rcpt, subject []byte, ok bool) {
	if len(v) == 0 || v[0] != timeValueVersion {
		return nil, nil, false
	}
	d := decoder{b: v[1:]}
	rcpt, subject = d.bytes(), d.bytes()
	return rcpt, subject, d.err == nil
}

// peekCopyText reads a stored copy's recipient and subject.
func peekCopyText(v []byte) (rcpt, subject []byte, ok bool) {
	d := decoder{b: v}
	if !knownCopyVersion(d.byte()) {
		return nil, nil, false
	}
	d.skip() // tracking id
	d.skip() // queue id
	rcpt = d.bytes()
	d.skip() // from
	subject = d.bytes()
	return rcpt, subject, d.err == nil
}

// copyFacts is what the list's filters look at.
type copyFacts struct {
	status      []byte
	opensHuman  uint64
	untracked   bool
	clicksHuman uint64
}

// peekCopyFacts reads a stored copy's state, human opens and clicks.
func peekCopyFacts(v []byte) (copyFacts, bool) {
	var f copyFacts
	d := decoder{b: v}
	version := d.byte()
	if !knownCopyVersion(version) {
		return f, false
	}
	for range 6 { // tracking id, queue id, recipient, from, subject, message id
		d.skip()
	}
	f.status = d.bytes()
	d.skip()      // last error
	for range 4 { // queued, sent, first human open, opens total
		d.uvarint()
	}
	f.opensHuman = d.uvarint()
	if version >= copyV2 {
		f.untracked = len(d.bytes()) > 0 // the untracked reason
		d.uvarint()                      // done
	}
	if version > copyV2 {
		d.uvarint() // clicks total
		f.clicksHuman = d.uvarint()
	}
	return f, d.err == nil
}

// bytes returns the next string's bytes without copying them.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errCorrupt
		return nil
	}
	b := d.b[:n:n]
	d.b = d.b[n:]
	return b
}

// passFacts applies a filter to peeked facts (the QueuedBefore bound is
// applied by the caller, from the index key).
func passFacts(filter string, f copyFacts) bool {
	switch filter {
	case FilterOpened:
		return f.opensHuman > 0
	case FilterClicked:
		return f.clicksHuman > 0
	case FilterUnopened:
		return f.opensHuman == 0 && !f.untracked && bytes.Equal(f.status, []byte(record.StatusSent))
	case FilterPending:
		return bytes.Equal(f.status, []byte(record.StatusQueued)) || bytes.Equal(f.status, []byte(record.StatusDeferred))
	case FilterFailed:
		return bytes.Equal(f.status, []byte(record.StatusFailed))
	case FilterUntracked:
		return f.untracked
	}
	return true
}
