package rewrite

import (
	"bytes"
	"io"
	"mime"
	"net/textproto"
	"strings"
)

// maxHeaderSize bounds one header section. A larger one is malformed: it
// is kept as read and the rest of the message is passed through.
const maxHeaderSize = 1 << 20

// field is one header field as it was read: its raw bytes (folded lines
// and line endings included) are buf[start:end].
type field struct {
	key        string // canonical key, "" for a stray continuation line
	start, end int
}

// header is a header section kept byte for byte. textproto.ReadHeader
// normalises line endings to CRLF, so the raw fields are kept here and
// only values are interpreted.
type header struct {
	buf    []byte
	fields []field
	end    string // the blank line ending the section, "" if none
	nl     string // the section's line ending
	defect string // why the section is malformed, "" if it is not
	full   bool   // section exceeded maxHeaderSize and was cut short
}

func (h *header) raw(f field) []byte { return h.buf[f.start:f.end] }

// index returns the position of the first field named key, or -1.
func (h *header) index(key string) int {
	for i, f := range h.fields {
		if f.key == key {
			return i
		}
	}
	return -1
}

// has reports whether a field named key (canonical form) is present.
func (h *header) has(key string) bool { return h.index(key) >= 0 }

// get returns the unfolded value of the first field named key.
func (h *header) get(key string) string {
	i := h.index(key)
	if i < 0 {
		return ""
	}
	return fieldValue(h.raw(h.fields[i]))
}

// fieldValue unfolds a raw field and returns its value with surrounding
// spaces and tabs removed, as go-message's textproto does (a stray CR
// stays: such a value is not valid).
func fieldValue(raw []byte) string {
	i := bytes.IndexByte(raw, ':')
	if i < 0 {
		return ""
	}
	v := raw[i+1:]
	var b strings.Builder
	b.Grow(len(v))
	for len(v) > 0 {
		line := v
		if i := bytes.IndexByte(v, '\n'); i >= 0 {
			line, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		line = bytes.Trim(bytes.TrimSuffix(line, []byte("\r")), " \t")
		if len(line) == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.Write(line)
	}
	return b.String()
}

// mediaType parses the Content-Type field. def is the default type when
// the field is missing. bad reports a field that does not parse.
func (h *header) mediaType(def string) (typ string, params map[string]string, bad bool) {
	v := h.get("Content-Type")
	if v == "" {
		return def, nil, false
	}
	typ, params, err := mime.ParseMediaType(v)
	if err != nil {
		if typ == "" {
			typ, _, _ = strings.Cut(strings.ToLower(v), ";")
			typ = strings.TrimSpace(typ)
		}
		return typ, params, true
	}
	return typ, params, false
}

// attachment reports whether the entity is an attachment: disposition
// attachment, or a file name given in Content-Disposition or Content-Type.
func (h *header) attachment(ctParams map[string]string) bool {
	if ctParams["name"] != "" {
		return true
	}
	v := h.get("Content-Disposition")
	if v == "" {
		return false
	}
	disp, params, err := mime.ParseMediaType(v)
	if err != nil {
		return true // cannot tell: leave it alone
	}
	return disp == "attachment" || params["filename"] != "" || params["filename*"] != ""
}

// readHeader reads a header section from lr. It ends at a blank line, at
// the end of the input, at a delimiter line of bs (returned as term, to be
// handled by the caller) or at a line that is no header field (pushed back:
// the body starts there). h is reused.
func readHeader(lr *lineReader, bs boundaries, h *header, t *term) (bool, error) {
	*h = header{buf: h.buf[:0], fields: h.fields[:0]}
	for {
		chunk, start, err := lr.next()
		if err != nil {
			if err == io.EOF {
				return false, nil
			}
			return false, err
		}
		if h.nl == "" {
			h.nl = lineEnding(chunk)
		}
		if !start {
			if len(h.fields) == 0 { // rest of an overlong delimiter line
				h.setDefect("overlong delimiter line")
				h.fields = append(h.fields, field{start: len(h.buf), end: len(h.buf)})
			}
			if !h.add(chunk) {
				return false, nil
			}
			continue
		}
		if isBlank(chunk) {
			h.end = lineEnding(chunk)
			return false, nil
		}
		if level, closing, ok := bs.match(chunk); ok {
			h.setDefect("part header not ended by a blank line")
			t.set(level, closing, chunk, lr.before)
			return true, nil
		}
		if chunk[0] == ' ' || chunk[0] == '\t' {
			if len(h.fields) == 0 {
				h.setDefect("header starts with a continuation line")
				h.fields = append(h.fields, field{start: len(h.buf), end: len(h.buf)})
			}
			if !h.add(chunk) {
				return false, nil
			}
			continue
		}
		if len(bs) == 0 && len(h.fields) == 0 && bytes.HasPrefix(chunk, []byte("From ")) {
			// An mbox "From " line: kept as it is, not a field.
			h.fields = append(h.fields, field{start: len(h.buf), end: len(h.buf)})
			if !h.add(chunk) {
				return false, nil
			}
			continue
		}
		key, ok := fieldKey(chunk)
		if !ok {
			h.setDefect("header line without a field name")
			lr.unread(chunk, start)
			return false, nil
		}
		h.fields = append(h.fields, field{key: key, start: len(h.buf), end: len(h.buf)})
		if !h.add(chunk) {
			return false, nil
		}
	}
}

// add appends chunk to the current field. It reports false when the
// section grew over maxHeaderSize.
func (h *header) add(chunk []byte) bool {
	h.buf = append(h.buf, chunk...)
	h.fields[len(h.fields)-1].end = len(h.buf)
	if len(h.buf) > maxHeaderSize {
		h.setDefect("header section over 1 MiB")
		h.full = true
		return false
	}
	return true
}

func (h *header) setDefect(d string) {
	if h.defect == "" {
		h.defect = d
	}
}

// fieldKey returns the canonical field name of a header line, and false if
// the line is no "name: value" field.
func fieldKey(line []byte) (string, bool) {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return "", false
	}
	k := bytes.TrimRight(line[:i], " \t")
	if len(k) == 0 {
		return "", false
	}
	for _, c := range k {
		if c < 33 || c > 126 {
			return "", false
		}
	}
	if c, ok := commonKeys[string(k)]; ok { // no allocation
		return c, true
	}
	return textproto.CanonicalMIMEHeaderKey(string(k)), true
}

// commonKeys maps the usual spellings of frequent fields to their
// canonical form.
var commonKeys = map[string]string{}

func init() {
	for _, k := range []string{
		"From", "To", "Cc", "Bcc", "Subject", "Date", "Message-ID", "Message-Id", "MIME-Version",
		"Mime-Version", "Content-Type", "Content-Transfer-Encoding", "Content-Disposition",
		"Content-ID", "Content-Id", "Content-Description", "Reply-To", "Received", "Return-Path",
		"DKIM-Signature", "References", "In-Reply-To", "X-Mailer", "Sender", "List-Unsubscribe",
		"content-type", "content-transfer-encoding", "content-disposition", "X-Pixelrelay-Track",
	} {
		commonKeys[k] = textproto.CanonicalMIMEHeaderKey(k)
	}
}
