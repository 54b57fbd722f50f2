package rewrite

import (
	"bufio"
	"bytes"
	"io"
	"strings"
)

// maxDepth bounds multipart nesting; deeper structures are malformed.
const maxDepth = 50

// term is how a body ended: at the end of the input, or at a delimiter
// line of one of the boundaries in force (its index, and whether it is
// the close delimiter). The line is kept to be written by its owner.
type term struct {
	eof     bool
	level   int
	closing bool
	line    []byte
	before  string // line ending of the line before the delimiter
}

func (t *term) set(level int, closing bool, line []byte, before string) {
	t.eof = false
	t.level = level
	t.closing = closing
	t.line = append(t.line[:0], line...)
	t.before = before
}

// scope is what an entity knows about where it sits.
type scope struct {
	bs     boundaries
	depth  int
	frozen bool // inside multipart/signed or encrypted: never modified
	digest bool // parent is multipart/digest: default type message/rfc822
}

// walker streams one message from lr to out, entity by entity, changing
// only what a copy needs. In dry mode (Inspect) it does the same work to
// learn what Rewrite would do, and out discards.
type walker struct {
	lr  lineReader
	out *bufio.Writer

	pixel string             // tag to insert, "" leaves bodies as they are
	click func(n int) string // Options.ClickURL
	// collect: find the links whose clicks are counted (Inspect, and a
	// copy that rewrites them)
	collect bool
	dry     bool   // inspecting: try every HTML part, ignore freezing
	msgID   string // Message-ID to add when the message has none
	frozen  bool   // top-level says: do not modify bodies (DKIM, crypto)

	t   term
	hdr header
	buf *buffers

	// findings
	htmlParts int
	bigHTML   int
	links     []string // URLs of the links found, link n at n-1
	defect    string
	crypto    string
	dkim      bool
	subject   string
	messageID string
	track     string
}

func (w *walker) setDefect(d string) {
	if w.defect == "" && d != "" {
		w.defect = d
	}
}

// run walks the whole message.
func (w *walker) run() error {
	h := &w.hdr
	if _, err := readHeader(&w.lr, nil, h, &w.t); err != nil {
		return err
	}
	w.learnTop(h)
	if err := w.entity(h, scope{}); err != nil {
		return err
	}
	if !w.t.eof {
		// Cannot happen at the top (no boundaries), but never lose bytes.
		w.out.Write(w.t.line)
		return w.passthrough(nil)
	}
	return nil
}

// learnTop records what the top-level header says.
func (w *walker) learnTop(h *header) {
	w.subject = decodeText(h.get("Subject"))
	w.messageID = ""
	for _, f := range h.fields { // the first that says something
		if f.key == "Message-Id" {
			if w.messageID = fieldValue(h.raw(f)); w.messageID != "" {
				break
			}
		}
	}
	w.track = trackValue(h.get("X-Pixelrelay-Track"))
	w.dkim = h.has("Dkim-Signature")
	if w.dkim && !w.dry {
		w.frozen = true
	}
}

// entity handles one entity whose header has been read into h.
func (w *walker) entity(h *header, s scope) error {
	w.setDefect(h.defect)
	if h.full {
		return w.opaque(h, s)
	}
	def := "text/plain"
	if s.digest {
		def = "message/rfc822"
	}
	typ, params, bad := h.mediaType(def)
	if name, ok := cryptoTypes[typ]; ok {
		if w.crypto == "" {
			w.crypto = name
		}
		s.frozen = true
		if s.depth == 0 && !w.dry {
			w.frozen = true
		}
	}
	switch {
	case strings.HasPrefix(typ, "multipart/"):
		if bad {
			w.setDefect("unparsable multipart Content-Type")
			return w.opaque(h, s)
		}
		return w.multipart(h, typ, params["boundary"], s)
	case typ == "text/html":
		if bad {
			w.setDefect("unparsable Content-Type of an HTML part")
			return w.opaque(h, s)
		}
		if h.attachment(params) {
			return w.opaque(h, s)
		}
		return w.html(h, params, s)
	}
	return w.opaque(h, s)
}

// cryptoTypes are the signed or encrypted entities, with the name
// Info.Untouchable gives them.
var cryptoTypes = map[string]string{
	"multipart/signed":          "multipart/signed",
	"multipart/encrypted":       "multipart/encrypted",
	"application/pkcs7-mime":    "application/pkcs7-mime",
	"application/x-pkcs7-mime":  "application/pkcs7-mime",
	"application/pgp-encrypted": "application/pgp-encrypted",
	"application/pgp-signature": "application/pgp-signature",
}

// opaque writes the header and copies the body as it is.
func (w *walker) opaque(h *header, s scope) error {
	if err := w.writeHeader(h, s.depth == 0, nil, nil); err != nil {
		return err
	}
	return w.passthrough(s.bs)
}

// passthrough copies lines until a delimiter line of bs or the end.
func (w *walker) passthrough(bs boundaries) error {
	for {
		chunk, start, err := w.lr.next()
		if err == io.EOF {
			w.t.eof = true
			return nil
		}
		if err != nil {
			return err
		}
		if start && len(bs) > 0 {
			if level, closing, ok := bs.match(chunk); ok {
				w.t.set(level, closing, chunk, w.lr.before)
				return nil
			}
		}
		if _, err := w.out.Write(chunk); err != nil {
			return err
		}
	}
}

// multipart walks a multipart body: preamble, parts, epilogue, all kept.
func (w *walker) multipart(h *header, typ, boundary string, s scope) error {
	switch {
	case boundary == "":
		w.setDefect("multipart without boundary")
		return w.opaque(h, s)
	case s.depth >= maxDepth:
		w.setDefect("MIME nesting too deep")
		return w.opaque(h, s)
	}
	switch cte := strings.ToLower(h.get("Content-Transfer-Encoding")); cte {
	case "", "7bit", "8bit", "binary":
	default:
		w.setDefect("multipart with Content-Transfer-Encoding " + cte)
	}
	if err := w.writeHeader(h, s.depth == 0, nil, nil); err != nil {
		return err
	}
	own := len(s.bs)
	in := s
	in.bs = append(s.bs[:own:own], []byte("--"+boundary))
	in.depth++
	in.digest = typ == "multipart/digest"

	t := &w.t
	if err := w.passthrough(in.bs); err != nil { // preamble
		return err
	}
	if t.eof || t.level != own {
		w.setDefect("multipart body without its boundary")
		return nil
	}
	nl := lineEnding(t.line) // go-message, too, takes it from here
	parts := 0
	for !t.closing {
		if _, err := w.out.Write(t.line); err != nil {
			return err
		}
		parts++
		ph := &w.hdr
		ended, err := readHeader(&w.lr, in.bs, ph, t)
		if err != nil {
			return err
		}
		if ended {
			w.setDefect(ph.defect)
			err = w.writeHeader(ph, false, nil, nil)
		} else {
			err = w.entity(ph, in)
		}
		if err != nil {
			return err
		}
		if t.eof || t.level != own {
			w.setDefect("missing closing boundary")
			return nil
		}
		if t.before != nl || (lineEnding(t.line) != nl && !(t.closing && len(lineEnding(t.line)) == 0)) {
			// Parsers that want the same line ending throughout (like
			// go-message) would see other parts here.
			w.setDefect("line endings differ around a boundary")
		}
	}
	if parts == 0 {
		w.setDefect("multipart without parts")
	}
	if _, err := w.out.Write(t.line); err != nil {
		return err
	}
	return w.passthrough(s.bs) // epilogue
}

// dropped are the top-level fields no copy carries.
var dropped = map[string]bool{"Bcc": true, "Resent-Bcc": true, "X-Pixelrelay-Track": true}

// writeHeader writes h. At the top level Bcc, Resent-Bcc and
// X-Pixelrelay-Track go and a missing Message-ID is added. ct and cte,
// when set, replace the first Content-Type and Content-Transfer-Encoding
// fields (cte is added if there is none).
func (w *walker) writeHeader(h *header, top bool, ct, cte []byte) error {
	nl := h.nl
	if nl == "" {
		nl = "\r\n"
	}
	addID := top && w.msgID != "" && w.messageID == ""
	ctDone, cteDone := ct == nil, cte == nil
	for _, f := range h.fields {
		raw := h.raw(f)
		switch {
		case top && dropped[f.key]:
			continue
		case addID && f.key == "Message-Id":
			continue // an empty Message-ID field is replaced
		case !ctDone && f.key == "Content-Type":
			raw, ctDone = ct, true
		case !cteDone && f.key == "Content-Transfer-Encoding":
			raw, cteDone = cte, true
		}
		if _, err := w.out.Write(raw); err != nil {
			return err
		}
	}
	if (addID || !cteDone) && len(h.fields) > 0 && lineEnding(h.raw(h.fields[len(h.fields)-1])) == "" {
		w.out.WriteString(nl) // the last field ended the input: end its line
	}
	if addID {
		w.out.WriteString("Message-ID: " + w.msgID + nl)
	}
	if !cteDone {
		w.out.Write(cte)
	}
	_, err := w.out.WriteString(h.end)
	return err
}

// trackValue normalises X-Pixelrelay-Track to "yes", "no" or "".
func trackValue(v string) string {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "yes", "y", "true", "1", "on":
		return "yes"
	case "no", "n", "false", "0", "off":
		return "no"
	}
	return ""
}

// hasLine reports whether some line of b starts with a delimiter of bs.
func hasDelimiter(b []byte, bs boundaries) bool {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i+1], b[i+1:]
		} else {
			b = nil
		}
		if _, _, ok := bs.match(line); ok {
			return true
		}
	}
	return false
}
