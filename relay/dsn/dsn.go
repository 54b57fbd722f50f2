// Package dsn writes delivery status notifications (RFC 3464): the bounce
// the queue sends to the envelope sender when copies of a message fail
// permanently or expire.
package dsn

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-message"
)

// Recipient is one recipient the message could not be delivered to.
type Recipient struct {
	Address    string    // the envelope recipient
	Status     string    // enhanced status code, "5.1.1"; "5.0.0" when empty
	Diagnostic string    // the upstream's reply ("550 5.1.1 no such user") or our reason
	At         time.Time // last attempt
}

// Report is everything a bounce says.
type Report struct {
	Hostname    string    // Reporting-MTA and the From domain
	To          string    // the original envelope sender
	QueueID     string    // the original message's queue id
	MessageID   string    // the bounce's own Message-ID, with brackets
	Date        time.Time // the bounce's Date
	ArrivalDate time.Time // when the original was accepted
	Subject     string    // the original Subject, for the human part
	Recipients  []Recipient
	// Header is the original message's header section, raw.
	Header []byte
}

// Build returns the bounce message: multipart/report with a text/plain
// explanation, message/delivery-status, and text/rfc822-headers of the
// original.
func Build(r Report) ([]byte, error) {
	if len(r.Recipients) == 0 {
		return nil, fmt.Errorf("dsn: no recipients")
	}
	host := ascii(r.Hostname)
	if host == "" {
		host = "localhost"
	}
	var h message.Header
	h.Set("From", "Mail Delivery System <MAILER-DAEMON@"+host+">")
	h.Set("To", "<"+ascii(r.To)+">")
	h.Set("Subject", "Undelivered Mail Returned to Sender")
	h.Set("Date", r.Date.Format(time.RFC1123Z))
	h.Set("Message-ID", r.MessageID)
	h.Set("Auto-Submitted", "auto-replied")
	h.Set("MIME-Version", "1.0")
	h.SetContentType("multipart/report", map[string]string{"report-type": "delivery-status"})

	var buf bytes.Buffer
	w, err := message.CreateWriter(&buf, h)
	if err != nil {
		return nil, fmt.Errorf("dsn: %w", err)
	}
	parts := []struct {
		ctype, cte string
		params     map[string]string
		body       []byte
	}{
		{"text/plain", "", map[string]string{"charset": "us-ascii"}, human(r, host)},
		{"message/delivery-status", "", nil, status(r, host)},
		{"text/rfc822-headers", headerCTE(r.Header), nil, crlf(r.Header)},
	}
	for _, p := range parts {
		var ph message.Header
		ph.SetContentType(p.ctype, p.params)
		if p.cte != "" {
			ph.Set("Content-Transfer-Encoding", p.cte)
		}
		pw, err := w.CreatePart(ph)
		if err != nil {
			return nil, fmt.Errorf("dsn: %w", err)
		}
		if _, err := pw.Write(p.body); err != nil {
			return nil, fmt.Errorf("dsn: %w", err)
		}
		if err := pw.Close(); err != nil {
			return nil, fmt.Errorf("dsn: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("dsn: %w", err)
	}
	return buf.Bytes(), nil
}

func human(r Report, host string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "This is the mail system at host %s.\r\n\r\n", host)
	b.WriteString("Your message could not be delivered to the following recipients.\r\n")
	if r.Subject != "" {
		fmt.Fprintf(&b, "Subject: %s\r\n", ascii(r.Subject))
	}
	b.WriteString("\r\n")
	for _, rc := range r.Recipients {
		fmt.Fprintf(&b, "<%s>: %s\r\n", ascii(rc.Address), ascii(rc.Diagnostic))
	}
	return []byte(b.String())
}

func status(r Report, host string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "Reporting-MTA: dns; %s\r\n", host)
	if r.QueueID != "" {
		fmt.Fprintf(&b, "X-Pixelrelay-Queue-ID: %s\r\n", ascii(r.QueueID))
	}
	if !r.ArrivalDate.IsZero() {
		fmt.Fprintf(&b, "Arrival-Date: %s\r\n", r.ArrivalDate.Format(time.RFC1123Z))
	}
	for _, rc := range r.Recipients {
		code := rc.Status
		if code == "" {
			code = "5.0.0"
		}
		b.WriteString("\r\n")
		fmt.Fprintf(&b, "Final-Recipient: %s\r\n", addrType(rc.Address))
		b.WriteString("Action: failed\r\n")
		fmt.Fprintf(&b, "Status: %s\r\n", ascii(code))
		if rc.Diagnostic != "" {
			fmt.Fprintf(&b, "Diagnostic-Code: smtp; %s\r\n", ascii(rc.Diagnostic))
		}
		if !rc.At.IsZero() {
			fmt.Fprintf(&b, "Last-Attempt-Date: %s\r\n", rc.At.Format(time.RFC1123Z))
		}
	}
	return []byte(b.String())
}

// addrType is "rfc822; addr", or "utf-8; addr" (RFC 6533) for an
// internationalised address, with anything unprintable escaped.
func addrType(a string) string {
	for i := 0; i < len(a); i++ {
		if a[i] >= 0x80 {
			return "utf-8; " + ascii(a)
		}
	}
	return "rfc822; " + ascii(a)
}

// ascii keeps a header value on one line of printable ASCII: other bytes
// become \x{HH} (the RFC 6533 escape style).
func ascii(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\r' || r == '\n' || r == '\t':
			b.WriteByte(' ')
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		default:
			fmt.Fprintf(&b, `\x{%X}`, r)
		}
	}
	return b.String()
}

// headerCTE is "8bit" when the original header has 8-bit bytes
// (SMTPUTF8 mail), else "" (7bit).
func headerCTE(h []byte) string {
	for _, c := range h {
		if c >= 0x80 {
			return "8bit"
		}
	}
	return ""
}

// crlf normalises line ends to CRLF and ends the text with one.
func crlf(h []byte) []byte {
	h = bytes.TrimRight(h, "\r\n")
	h = bytes.ReplaceAll(h, []byte("\r\n"), []byte("\n"))
	h = bytes.ReplaceAll(h, []byte("\n"), []byte("\r\n"))
	return append(h, "\r\n"...)
}
