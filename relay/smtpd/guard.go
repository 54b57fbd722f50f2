package smtpd

import (
	"bytes"
	"errors"
)

// SMTP smuggling (CVE-2023-51764 and kin): a line holding only "." that a
// bare CR or a bare LF starts or ends ("\n.\r\n", "\r.\r\n", "\n.\n",
// "\r.\r", ...) is read as the end of the data by some servers and as data
// by others. go-smtp ends DATA only at CRLF.CRLF, so such a line never ends
// a message here and no command after it is ever executed. The relay still
// refuses the message (550 5.5.2, as Postfix's smtpd_forbid_bare_newline =
// reject does): no mail client sends these lines (clients dot-stuff), and
// forwarding them could end the data early at a lenient upstream (bare LF
// is turned into CRLF and dot-stuffed by go-smtp's client, but a bare CR
// before the dot is sent as it is).
//
// go-smtp v0.25.1 also misses the real end of the data when the line before
// it ends in a bare CR ("...\r\r\n.\r\n": any even run of CRs before the
// LF): it keeps reading the client's next commands as message text, and a
// client that waits for the reply hangs until the read timeout. Per RFC
// 5321 that sequence does end the data, so the relay treats it as a missed
// end: the message is refused (550 5.5.2, as bare CRs have no place in
// SMTP text) and the connection closed, so nothing the client sent after it
// is taken as text or as commands. clientConn notices the missed end while
// go-smtp waits for more (plain-text connections only: under STARTTLS it
// sees ciphertext, and such a client waits for the read timeout).

var (
	// errSmuggling: a "." line next to a bare CR or LF.
	errSmuggling = errors.New("smtpd: a line holding only \".\" is next to a bare CR or LF (SMTP smuggling)")
	// errMissedEnd: the client ended the data with "\r\r\n.\r\n", which
	// go-smtp does not recognise.
	errMissedEnd = errors.New("smtpd: end of data after a bare CR, which go-smtp does not recognise")
)

// endOfData is the end-of-data sequence, RFC 5321 4.1.1.4.
const endOfData = "\r\n.\r\n"

// Kinds of place a byte sits at, for dotScanner.
const (
	midLine     = iota
	cleanStart  // the start of the text, or after CRLF
	bareStart   // after a bare LF or a bare CR
	missedStart // after CRLF preceded by another CR: go-smtp saw no line start
)

// Where dotScanner stands after a "." at a line start.
const (
	noDot = iota
	dotSeen
	dotCR
)

// dotScanner looks at the message as go-smtp hands it over (dot-stuffing
// removed) for "." lines next to a bare CR or LF. It keeps a few bytes of
// state, so the message can come in pieces of any size.
type dotScanner struct {
	bdat bool // BDAT: no dot-stuffing, so no missed end either

	started  bool
	prev     byte // the byte before the current one
	crRun    int  // CRs right before the current byte
	lfKind   int  // line start after the last LF
	dot      int  // noDot, dotSeen or dotCR
	dotStart int  // line start the "." sat at
}

// scan checks p, which follows what was scanned before. It returns
// errSmuggling or errMissedEnd at the first offending line.
func (s *dotScanner) scan(p []byte) error {
	lf := -1 // the next LF in p at or after i (len(p): none); -1: not looked for
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch s.dot {
		case dotSeen:
			switch c {
			case '\n':
				return errSmuggling // ".\n"
			case '\r':
				s.dot = dotCR
			default:
				s.dot = noDot
			}
		case dotCR:
			s.dot = noDot
			switch {
			case c != '\n', s.dotStart == bareStart:
				return errSmuggling // ".\r" + other, or "\n.\r\n" / "\r.\r\n"
			case s.dotStart == missedStart:
				return errMissedEnd
			}
		}
		switch c {
		case '.':
			if k := s.lineStart(); k != midLine {
				s.dot, s.dotStart = dotSeen, k
			}
		case '\n':
			s.lfKind = s.kindOfLF()
		}
		if c == '\r' {
			s.crRun++
		} else {
			s.crRun = 0
		}
		s.prev, s.started = c, true
		if s.dot == noDot && !isLineEnd(c) && i+1 < len(p) && !isLineEnd(p[i+1]) {
			// In the middle of a line nothing counts until the next CR or
			// LF: skip to it. (The bytes skipped would leave the state as
			// it is: crRun 0, prev neither CR nor LF.) A line end right
			// after c needs no search: short lines stay cheap.
			if lf <= i {
				lf = indexFrom(p, i+1, '\n')
			}
			i = indexFrom(p[:lf], i+1, '\r') - 1
		}
	}
	return nil
}

func isLineEnd(c byte) bool { return c == '\r' || c == '\n' }

// indexFrom returns the index of the first c in p at or after i, or len(p).
func indexFrom(p []byte, i int, c byte) int {
	if j := bytes.IndexByte(p[i:], c); j >= 0 {
		return i + j
	}
	return len(p)
}

// lineStart says whether the current byte starts a line, and how.
func (s *dotScanner) lineStart() int {
	switch {
	case !s.started:
		return cleanStart
	case s.prev == '\r':
		return bareStart // a CR followed by this byte, not by LF
	case s.prev == '\n':
		return s.lfKind
	}
	return midLine
}

// kindOfLF classifies the line start after an LF preceded by s.crRun CRs.
// go-smtp's reader sees the line start only after an odd run of CRs.
func (s *dotScanner) kindOfLF() int {
	switch {
	case s.crRun == 0:
		return bareStart
	case s.crRun%2 == 0 && !s.bdat:
		return missedStart
	}
	return cleanStart
}
