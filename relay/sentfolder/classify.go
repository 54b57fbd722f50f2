package sentfolder

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// traceMark is in the Received header pixelrelay puts in front of every
// message it relays (relay/smtpd): a copy in Sent that carries it came
// through pixelrelay, one without it was saved by the mail client (or by
// pixelrelay itself, which removes the header from what it appends).
const traceMark = "(pixelrelay) with"

// copyKind is what a message found in a mailbox is to a replacement.
type copyKind int

const (
	// clean: no pixel and not relayed by pixelrelay (the client's own
	// copy, or the one pixelrelay appended): kept.
	clean copyKind = iota
	// relayed: a copy pixelrelay sent without a pixel (the untracked
	// recipients' copy, without Bcc): removed from Sent only (on Gmail
	// it is the same message as a copy to the sender's own inbox).
	relayed
	// tracked: a copy with a pixel or rewritten links: removed from
	// Sent, All Mail and Trash.
	tracked
)

// classify tells a tracked copy (any of marks, the tracker's pixel and
// click URL prefixes, in its text) and a relayed one (pixelrelay's
// Received trace) from a clean one.
func classify(raw []byte, marks []string) copyKind {
	switch {
	case hasMark(raw, marks):
		return tracked
	case hasTrace(raw):
		return relayed
	}
	return clean
}

// hasTrace reports whether the top-level header has pixelrelay's Received.
func hasTrace(raw []byte) bool {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return bytes.Contains(raw, []byte(traceMark))
	}
	for _, v := range h.Values("Received") {
		if strings.Contains(v, traceMark) {
			return true
		}
	}
	return false
}

// hasMark reports whether any of marks is in the message: in its raw
// bytes with quoted-printable soft line breaks taken out, or in any
// part's decoded body (base64, quoted-printable).
func hasMark(raw []byte, marks []string) bool {
	if len(marks) == 0 {
		return false
	}
	flat := bytes.ReplaceAll(bytes.ReplaceAll(raw, []byte("=\r\n"), nil), []byte("=\n"), nil)
	if containsAny(flat, marks) {
		return true
	}
	e, err := message.Read(bytes.NewReader(raw))
	if e == nil {
		return false
	}
	_ = err // an unknown charset still gives the bytes
	found := false
	e.Walk(func(_ []int, part *message.Entity, err error) error {
		if err != nil || found {
			return nil
		}
		if mr := part.MultipartReader(); mr != nil {
			return nil
		}
		body, _ := io.ReadAll(io.LimitReader(part.Body, 64<<20))
		found = containsAny(body, marks)
		return nil
	})
	return found
}

func containsAny(b []byte, marks []string) bool {
	for _, m := range marks {
		if m != "" && bytes.Contains(b, []byte(m)) {
			return true
		}
	}
	return false
}

// Marks are the URL prefixes of a tracker's pixels and click links.
func Marks(baseURL string) []string {
	b := strings.TrimRight(baseURL, "/")
	if b == "" {
		return nil
	}
	return []string{b + "/o/", b + "/c/"}
}

// Submitted is the message as the client submitted it: raw as spooled
// without the Received header pixelrelay put in front, and with a
// Message-ID header (messageID, the one its copies carry) when it had
// none.
func Submitted(raw []byte, messageID string) []byte {
	raw = dropTrace(raw)
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
	if err == nil && h.Get("Message-Id") == "" && messageID != "" {
		return append([]byte("Message-ID: "+messageID+"\r\n"), raw...)
	}
	return raw
}

// dropTrace takes out the first header field when it is pixelrelay's own
// Received (with its folded lines).
func dropTrace(raw []byte) []byte {
	if !bytes.HasPrefix(raw, []byte("Received:")) {
		return raw
	}
	end := 0
	for {
		i := bytes.IndexByte(raw[end:], '\n')
		if i < 0 {
			return raw
		}
		end += i + 1
		if end >= len(raw) || (raw[end] != ' ' && raw[end] != '\t') {
			break
		}
	}
	if !bytes.Contains(raw[:end], []byte(traceMark)) {
		return raw
	}
	return raw[end:]
}

// DateOf is raw's Date header, or fallback when it has none that parses.
func DateOf(raw []byte, fallback time.Time) time.Time {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return fallback
	}
	mh := mail.Header{Header: message.Header{Header: h}}
	if d, err := mh.Date(); err == nil && !d.IsZero() {
		return d
	}
	return fallback
}
