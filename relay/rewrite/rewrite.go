// Package rewrite decides which recipients of a message are tracked and
// writes each copy: only text/html body parts change (one pixel each);
// every other byte stays as it was. It does no I/O of its own.
//
// The message is streamed line by line; boundaries are matched per
// RFC 2046 over the raw bytes, so headers (order, folding, case), preamble,
// epilogue, delimiter lines, line endings (CRLF or bare LF) and every part
// that is not changed are copied byte for byte. Only a text/html body part
// being changed is held in memory (at most MaxHTMLPart).
//
// Untouchable messages (Info.Untouchable):
//   - "multipart/signed", "multipart/encrypted", "application/pkcs7-mime"
//     (also x-pkcs7-mime), "application/pgp-encrypted",
//     "application/pgp-signature" (PGP/MIME mangled into multipart/mixed):
//     such an entity anywhere in the tree, except inside an attached
//     message/rfc822 (attached messages are never changed anyway);
//   - "inline-pgp": an HTML body part holding "-----BEGIN PGP ";
//   - "dkim": the top-level header has a DKIM-Signature field;
//   - "malformed: REASON": the structure cannot be walked safely (no
//     boundary, missing delimiter or closing boundary, header starting with
//     a continuation line or holding a line that is no field, multipart with
//     a transfer encoding, unparsable Content-Type of a multipart or HTML
//     part, an HTML part whose transfer encoding cannot be decoded or whose
//     charset is unknown, or must be converted and does not convert,
//     nesting deeper than 50).
//
// An mbox "From " line opening the message is kept and not a defect.
//
// A changed part is decoded (quoted-printable, base64; 7bit, 8bit, binary
// as they are). In a charset that keeps ASCII as ASCII (UTF-8, ISO-8859-*,
// windows-*, KOI8-*, Shift_JIS, EUC-*, GBK/GB18030, Big5, ...) the pixel
// goes into the text as it is, which is not decoded at all; in ISO-2022-*
// at a point in ASCII state (see charset.go). Only a part in another
// charset (UTF-16, HZ, EBCDIC) is converted to UTF-8 (x/text), with the
// charset parameter of its Content-Type rewritten in place and its <meta>
// charset set to utf-8. It is written back in its own
// transfer encoding and line ending; 7bit, 8bit and binary text switches
// to quoted-printable (the Content-Transfer-Encoding value is rewritten,
// or the field added) when a line would exceed 998 octets, 7bit text is
// no longer ASCII, or a line would read as a boundary delimiter.
//
// A text/html part is a body part unless it has Content-Disposition
// attachment or a file name (Content-Disposition filename, Content-Type
// name) or sits inside a message/rfc822. A body part larger than
// MaxHTMLPart is left alone and counted in Info.LargeHTML.
//
// Rewrite never fails because of the content: whatever it cannot change
// safely it copies unchanged, so a message Inspect accepted always gets
// through, and errors only come from reading r or writing w.
package rewrite

import (
	"bufio"
	"errors"
	"html"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // every charset for Subject and HTML parts
	"github.com/emersion/go-message/textproto"
)

// Info is what Inspect learns from a message once, at spool time.
type Info struct {
	Subject     string // decoded Subject
	MessageID   string // existing Message-ID with brackets, "" if missing
	Track       string // value of X-Pixelrelay-Track, lowercased: "yes", "no" or ""
	HTMLParts   int    // text/html body parts that would get a pixel
	Untouchable string // why the body must not be modified ("multipart/signed", "dkim", "malformed: ..."), "" if it may be
	LargeHTML   int    // text/html body parts over MaxHTMLPart, left without a pixel
	// Links are the URLs of the links whose clicks a tracked copy counts
	// (see Options.ClickURL): link n leads to Links[n-1]. Inspect fills
	// it; RewriteInfo only when ClickURL is set.
	Links []string
}

// Policy is the tracking part of the config, for Track.
type Policy struct {
	OptIn   bool     // tracking.policy == "opt-in"
	Exclude []string // addresses or @domains, case-insensitive
	// Sender is the envelope sender: a recipient that is the sender's
	// own address is never tracked (their views are not a recipient's).
	Sender string
	// Own is the address of the upstream account's mailbox (its
	// username), the sender's own too; "" when not an address.
	Own string
}

// Inspect reads a whole message and reports what Track and Rewrite need.
// An error means the message could not be read at all; a message that
// merely fails to parse gets Untouchable set instead.
//
// Inspect does the very work Rewrite does for a tracked copy (output
// discarded), so HTMLParts counts exactly the parts Rewrite changes.
// X-Pixelrelay-Track values yes/true/on/1 read as "yes", no/false/off/0
// as "no", anything else as "".
func Inspect(r io.Reader) (Info, error) {
	w := newWalker(r, io.Discard)
	defer w.release()
	w.dry = true
	w.collect = true
	w.pixel = PixelTag("http://inspect.invalid/o/0000000000000000000000000000000000000000000000000000000000000000.gif")
	if err := w.run(); err != nil {
		return Info{}, err
	}
	return w.info(), nil
}

// info is what the walk learnt.
func (w *walker) info() Info {
	info := Info{
		Subject:   w.subject,
		MessageID: w.messageID,
		Track:     w.track,
		HTMLParts: w.htmlParts,
		LargeHTML: w.bigHTML,
		Links:     w.links,
	}
	switch {
	case w.crypto != "":
		info.Untouchable = w.crypto
	case w.dkim:
		info.Untouchable = "dkim"
	case w.defect != "":
		info.Untouchable = "malformed: " + w.defect
	}
	return info
}

// Reasons Track gives for an untracked copy (CONTRACT.md, "What happens
// to a message" item 9), besides "malformed: ..." (ReasonMalformed and
// what could not be parsed).
const (
	ReasonExcluded  = "excluded"      // tracking.exclude names the address or its domain
	ReasonSender    = "sender"        // the recipient is the envelope sender
	ReasonHeaderNo  = "header no"     // X-Pixelrelay-Track: no
	ReasonOptIn     = "policy opt-in" // opt-in without X-Pixelrelay-Track: yes
	ReasonNoHTML    = "no HTML part"  // nothing to put a pixel in
	ReasonSigned    = "signed"        // multipart/signed, PGP or S/MIME signatures
	ReasonEncrypted = "encrypted"     // multipart/encrypted, S/MIME, inline PGP
	ReasonDKIM      = "dkim"          // a DKIM-Signature header
	ReasonMalformed = "malformed: "   // MIME that cannot be changed safely, and why
)

// Track reports whether the copy for rcpt gets a pixel, and if not, why
// (one of the Reason constants; "malformed: " is followed by what is
// wrong). Per-recipient reasons come first: an exclusion is an address or
// "@domain" (a bare domain works too), compared case-insensitively, and
// the envelope sender's own address (compared the same way) is never
// tracked; rcpt may carry angle brackets. Then the message's: its header,
// the opt-in policy, what must not be modified, and whether it has an HTML
// body part.
func Track(info Info, rcpt string, p Policy) (bool, string) {
	addr := normAddr(rcpt)
	domain := ""
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		domain = addr[i+1:]
	}
	for _, e := range p.Exclude {
		e = strings.ToLower(strings.TrimSpace(e))
		switch {
		case e == "":
		case e == addr, strings.HasPrefix(e, "@") && e[1:] == domain, !strings.Contains(e, "@") && e == domain:
			return false, ReasonExcluded
		}
	}
	switch {
	case addr != "" && (addr == normAddr(p.Sender) || addr == normAddr(p.Own)):
		return false, ReasonSender
	case info.Track == "no":
		return false, ReasonHeaderNo
	case p.OptIn && info.Track != "yes":
		return false, ReasonOptIn
	case info.Untouchable != "":
		return false, untouchableReason(info.Untouchable)
	case info.HTMLParts == 0 && info.LargeHTML > 0:
		return false, ReasonNoHTML + ": the HTML part is over " + strconv.Itoa(MaxHTMLPart>>20) + " MB"
	case info.HTMLParts == 0:
		return false, ReasonNoHTML
	}
	return true, ""
}

// untouchableReason words Info.Untouchable as Track's reason.
func untouchableReason(u string) string {
	switch {
	case u == "dkim":
		return ReasonDKIM
	case strings.HasPrefix(u, ReasonMalformed):
		return u
	case strings.Contains(u, "signed") || u == "application/pgp-signature":
		return ReasonSigned
	case u == "inline-pgp" || strings.Contains(u, "encrypted") || strings.Contains(u, "pkcs7-mime"):
		// application/pkcs7-mime is mostly S/MIME's enveloped data (opaque
		// signed data is "signed" above when Untouchable says so); PGP in
		// an HTML part is mostly an encrypted block (Mailvelope).
		return ReasonEncrypted
	}
	return ReasonMalformed + u // e.g. the queue's "inspect failed: ..."
}

func normAddr(s string) string {
	return strings.ToLower(strings.Trim(strings.TrimSpace(s), "<>"))
}

// Options says what one copy needs.
type Options struct {
	PixelURL  string // "" for the untracked copy: headers only change
	MessageID string // added as Message-ID when the message has none
	// ClickURL, with PixelURL, counts clicks: the href of link n (an
	// absolute http or https URL of an <a> in an HTML body part; numbered
	// from 1 in document order over the parts, up to MaxLinks; see
	// links.go for what is left alone) becomes ClickURL(n), and each part
	// gets a hidden honeypot link (HoneypotTag) to ClickURL(0) just before
	// its pixel. A "" answer leaves that link, or the honeypot, out. nil:
	// links stay as they are.
	ClickURL func(n int) string
}

// Rewrite writes one copy of the message read from r to w: Bcc,
// Resent-Bcc and X-Pixelrelay-Track removed (top level only), Message-ID
// added at the end of the header when missing (or empty), and, when
// PixelURL is set, the pixel (PixelTag) in each text/html body part.
//
// Bodies are never changed for a message with a DKIM-Signature or whose
// top level is signed or encrypted, nor inside a signed or encrypted
// entity, whatever PixelURL says; the caller is expected to pass PixelURL
// only when Track said yes.
func Rewrite(w io.Writer, r io.Reader, opt Options) error {
	_, err := RewriteInfo(w, r, opt)
	return err
}

// RewriteInfo is Rewrite that also returns what Inspect would, from the
// same single reading of the message: with a PixelURL, the Info equals
// Inspect's whenever Info.Untouchable is "" (the walk takes the very same
// paths); for an untouchable message Untouchable is the same but HTMLParts
// may be lower (the copy leaves its parts alone).
func RewriteInfo(w io.Writer, r io.Reader, opt Options) (Info, error) {
	if strings.ContainsAny(opt.MessageID, "\r\n") {
		return Info{}, errors.New("rewrite: Message-ID contains a line break")
	}
	wk := newWalker(r, w)
	defer wk.release()
	wk.msgID = opt.MessageID
	if opt.PixelURL != "" {
		wk.pixel = PixelTag(opt.PixelURL)
		wk.click = opt.ClickURL
		wk.collect = opt.ClickURL != nil
	}
	if err := wk.run(); err != nil {
		return Info{}, err
	}
	return wk.info(), wk.out.Flush()
}

// PixelTag returns the exact tag Rewrite inserts for url. The URL is
// HTML-escaped; control characters are dropped.
func PixelTag(url string) string {
	url = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, url)
	return `<img src="` + html.EscapeString(url) + `" width="1" height="1" alt="" ` +
		`style="display:block;width:1px;height:1px;border:0;margin:0;padding:0">`
}

// walkerPool keeps walkers with their read and write buffers and scratch
// space; a walker holding a large buffer is dropped instead.
var walkerPool = sync.Pool{New: func() any {
	return &walker{
		lr:  lineReader{br: bufio.NewReaderSize(nil, readBufSize)},
		out: bufio.NewWriterSize(nil, 32<<10),
		buf: new(buffers),
	}
}}

func newWalker(r io.Reader, out io.Writer) *walker {
	old := walkerPool.Get().(*walker)
	old.lr.br.Reset(r)
	old.out.Reset(out)
	return &walker{
		lr:  lineReader{br: old.lr.br, atStart: true, pending: old.lr.pending[:0]},
		out: old.out,
		t:   term{line: old.t.line[:0]},
		hdr: header{buf: old.hdr.buf[:0], fields: old.hdr.fields[:0]},
		buf: old.buf,
	}
}

func (w *walker) release() {
	w.lr.br.Reset(nil)
	w.out.Reset(nil)
	if !w.buf.reset() || cap(w.hdr.buf) > 64<<10 || cap(w.lr.pending) > 64<<10 {
		return
	}
	walkerPool.Put(w)
}

// decodeText decodes RFC 2047 encoded words with go-message, any charset;
// a value that does not decode is returned as it is.
func decodeText(v string) string {
	if v == "" {
		return ""
	}
	var th textproto.Header
	th.Set("Subject", v)
	mh := message.Header{Header: th}
	s, err := mh.Text("Subject")
	if err != nil {
		return v
	}
	return s
}
