// Package rewrite decides which recipients of a message are tracked and
// writes each copy: only text/html body parts change (one pixel each);
// every other byte stays as it was. It does no I/O of its own.
//
// API (stub: the rewrite owner replaces the bodies, keeps the signatures):
package rewrite

import "io"

// Info is what Inspect learns from a message once, at spool time.
type Info struct {
	Subject     string // decoded Subject
	MessageID   string // existing Message-ID with brackets, "" if missing
	Track       string // value of X-Pixelrelay-Track, lowercased: "yes", "no" or ""
	HTMLParts   int    // text/html body parts that would get a pixel
	Untouchable string // why the body must not be modified ("multipart/signed", "dkim", "malformed: ..."), "" if it may be
}

// Policy is the tracking part of the config, for Track.
type Policy struct {
	OptIn   bool     // tracking.policy == "opt-in"
	Exclude []string // addresses or @domains, case-insensitive
}

// Inspect reads a whole message and reports what Track and Rewrite need.
// An error means the message could not be read at all; a message that
// merely fails to parse gets Untouchable set instead.
func Inspect(r io.Reader) (Info, error) {
	_, err := io.Copy(io.Discard, r)
	return Info{Untouchable: "not implemented"}, err
}

// Track reports whether the copy for rcpt gets a pixel, and if not, why.
func Track(info Info, rcpt string, p Policy) (bool, string) {
	return false, "not implemented"
}

// Options says what one copy needs.
type Options struct {
	PixelURL  string // "" for the untracked copy: headers only change
	MessageID string // added as Message-ID when the message has none
}

// Rewrite writes one copy of the message read from r to w: Bcc and
// X-Pixelrelay-Track removed, Message-ID added when missing, and, when
// PixelURL is set, the pixel in each text/html body part.
func Rewrite(w io.Writer, r io.Reader, opt Options) error {
	_, err := io.Copy(w, r)
	return err
}
