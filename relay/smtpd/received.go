package smtpd

import (
	"errors"
	"net"
	"strings"
	"time"
	"unicode/utf8"
)

// receivedHeader returns the trace header (RFC 5321 4.4) the relay puts in
// front of every message:
//
//	Received: from HELO (HELO [IP])
//		by HOSTNAME (pixelrelay) with ESMTPSA;
//		Mon, 02 Jan 2006 15:04:05 +0000
//
// The protocol is ESMTP plus S for TLS and A for an authenticated client
// (RFC 3848). There is no "id" clause: the queue id only exists once the
// message is spooled, and it is in the 250 reply and the log. There is no
// "for" clause, so Bcc recipients are not disclosed.
func receivedHeader(helo string, remote net.Addr, host string, tls, auth bool, t time.Time) *strings.Reader {
	proto := "ESMTP"
	if tls {
		proto += "S"
	}
	if auth {
		proto += "A"
	}
	h := headerToken(helo)
	var b strings.Builder
	b.Grow(160)
	b.WriteString("Received: from ")
	b.WriteString(h)
	b.WriteString(" (")
	b.WriteString(h)
	b.WriteString(" [")
	b.WriteString(remoteIP(remote))
	b.WriteString("])\r\n\tby ")
	b.WriteString(headerToken(host))
	b.WriteString(" (pixelrelay) with ")
	b.WriteString(proto)
	b.WriteString(";\r\n\t")
	b.WriteString(t.Format(time.RFC1123Z))
	b.WriteString("\r\n")
	return strings.NewReader(b.String())
}

// headerToken keeps s safe inside a header: printable ASCII without
// comment or separator characters, at most 255 bytes.
func headerToken(s string) string {
	if s == "" {
		return "unknown"
	}
	b := []byte(s)
	if len(b) > 255 {
		b = b[:255]
	}
	for i, c := range b {
		if c <= ' ' || c >= 0x7f || strings.IndexByte("();\\\"", c) >= 0 {
			b[i] = '_'
		}
	}
	return string(b)
}

// remoteIP is the client's address as an RFC 5321 address literal body:
// "192.0.2.1" or "IPv6:2001:db8::1".
func remoteIP(a net.Addr) string {
	if a == nil {
		return "unknown"
	}
	var ip net.IP
	if ta, ok := a.(*net.TCPAddr); ok {
		ip = ta.IP
	} else if host, _, err := net.SplitHostPort(a.String()); err == nil {
		ip = net.ParseIP(host)
	}
	switch {
	case ip == nil:
		return headerToken(a.String())
	case ip.To4() != nil:
		return ip.To4().String()
	default:
		return "IPv6:" + ip.String()
	}
}

// checkAddress checks a mailbox go-smtp has already split at "@": the
// local part must be usable in an upstream RCPT/MAIL command as is, the
// domain a host name or an address literal. utf8 allows non-ASCII
// (SMTPUTF8).
func checkAddress(addr string, allowUTF8 bool) error {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return errors.New("want local-part@domain")
	}
	if len(addr) > 254 {
		return errors.New("address too long")
	}
	local, domain := addr[:at], addr[at+1:]
	if !utf8.ValidString(addr) {
		return errors.New("invalid UTF-8")
	}
	for _, r := range local {
		if r <= ' ' || r == 0x7f || strings.ContainsRune(`<>()[]\,;:"`, r) {
			return errors.New("local part needs quoting")
		}
		if r >= 0x80 && !allowUTF8 {
			return errors.New("non-ASCII address without SMTPUTF8")
		}
	}
	return checkDomain(domain, allowUTF8)
}

func checkDomain(d string, allowUTF8 bool) error {
	if strings.HasPrefix(d, "[") && strings.HasSuffix(d, "]") {
		lit := d[1 : len(d)-1]
		if v6, ok := strings.CutPrefix(lit, "IPv6:"); ok {
			lit = v6
		}
		if net.ParseIP(lit) == nil {
			return errors.New("bad address literal")
		}
		return nil
	}
	if len(d) > 253 {
		return errors.New("domain too long")
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("bad domain")
		}
		for _, r := range label {
			ok := r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_'
			if !ok && !(r >= 0x80 && allowUTF8) {
				return errors.New("bad domain")
			}
		}
	}
	return nil
}
