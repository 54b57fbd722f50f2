// Package record is the seam between the relay and the tracker: the record a
// tracked copy leaves behind, the queue view the admin API shows, and the two
// small interfaces each side implements. Neither side imports the other.
package record

import (
	"errors"
	"strings"
	"time"
)

// Copy statuses, as CONTRACT.md's MESSAGE.status.
const (
	StatusQueued   = "queued"
	StatusDeferred = "deferred"
	StatusSent     = "sent"
	StatusFailed   = "failed"
)

// Copy is the record of one recipient's copy: tracked (its own copy with a
// tracking id) or not (UntrackedReason says why; the untracked recipients
// of a message share one unmodified copy, but each has its own record).
type Copy struct {
	TrackingID string    // the id inside the token; what `pixelrelay opens ID` takes; "" when untracked
	QueueID    string    // the spooled message this copy came from
	Recipient  string    // envelope recipient as given in RCPT TO
	From       string    // envelope sender ("" for the null sender)
	Subject    string    // decoded Subject header
	MessageID  string    // Message-ID header, with angle brackets
	QueuedAt   time.Time // when the 250 was given
	SentAt     time.Time // zero until delivered
	Status     string    // one of the Status constants
	LastError  string    // last delivery error, "" if none
	// UntrackedReason is why the recipient's copy has no pixel, in
	// CONTRACT.md's words: "excluded", "sender", "policy opt-in",
	// "header no", "no HTML part", "signed", "encrypted", "dkim",
	// "malformed: ..."; "" for a tracked copy.
	UntrackedReason string
	// Account names the upstream account the copy goes through
	// ("default" for [upstream]; "" in records made before accounts).
	Account string
	// SentFolder is MESSAGE's sent_folder: "pending" (the sender's Sent
	// folder will be cleaned once the message is delivered), "replaced",
	// "failed: REASON" or "off" (see relay/sentfolder); "" in records
	// made before it was kept.
	SentFolder string
	// Links are the URLs of the copy's tracked links: link n of its click
	// URLs leads to Links[n-1] (see relay/rewrite). Copies of one message
	// share the slice; nil when clicks are not counted.
	Links []string
}

// Tracked reports whether the copy carries a pixel.
func (c *Copy) Tracked() bool { return c.UntrackedReason == "" }

// ID is what the tracker keeps the copy under and what Recorder.Update
// takes: the tracking id, or for an untracked copy UntrackedID.
func (c *Copy) ID() string {
	if c.Tracked() {
		return c.TrackingID
	}
	return UntrackedID(c.QueueID, c.Recipient)
}

// UntrackedID names the record of an untracked recipient, which has no
// tracking id: "QUEUEID/recipient" (lowercased, without angle brackets).
// It is the same every time the message is planned, so recording it again
// is harmless, and it can never be taken for a tracking id (those are
// base32), so `opens ID` and the pixel never reach such a record.
func UntrackedID(queueID, rcpt string) string {
	return queueID + "/" + strings.ToLower(strings.Trim(strings.TrimSpace(rcpt), "<>"))
}

// IsUntrackedID reports whether id is an UntrackedID (never a tracking
// id).
func IsUntrackedID(id string) bool { return strings.IndexByte(id, '/') >= 0 }

// ErrNotFound is Recorder.Update's error for a copy it has no record of
// (an untracked copy planned before untracked copies were recorded, or
// while the recorder was down).
var ErrNotFound = errors.New("unknown copy")

// Recorder is implemented by the tracker's store. The relay calls Add once
// per message with the record of every recipient (tracked or not) when the
// message is planned, and Update (id is Copy.ID) whenever a recipient's
// delivery state changes. Both must be safe for concurrent use.
type Recorder interface {
	Add(copies []Copy) error
	Update(id, status, lastError string, at time.Time) error
}

// AccountSetter is implemented by a Recorder that can change the account
// of recorded copies: the queue moves the copies waiting for an account a
// reload removed to the default one. ids are Copy.ID values; unknown ids
// are skipped.
type AccountSetter interface {
	SetAccount(ids []string, account string) error
}

// Minter is implemented by the tracker's token keyring: it makes a fresh
// tracking id and the authenticated token that goes into the pixel URL.
type Minter interface {
	Mint() (trackingID, token string, err error)
}

// LinkMinter is implemented by the tracker's token keyring: the tokens of
// links 0 (the honeypot) to links of the copy whose pixel token is
// pixelToken, for its click URLs.
type LinkMinter interface {
	LinkTokens(pixelToken string, links int) ([]string, error)
}

// QueueEntry is one copy waiting in the spool, as `pixelrelay queue` and
// GET /api/queue show it.
type QueueEntry struct {
	QueueID     string    `json:"queue_id"`
	TrackingID  string    `json:"tracking_id"` // "" for an untracked copy
	From        string    `json:"from"`
	Recipients  []string  `json:"recipients"` // one for a tracked copy; all untracked ones share a copy
	Status      string    `json:"status"`     // queued | deferred
	Attempts    int       `json:"attempts"`
	QueuedAt    time.Time `json:"queued_at"`
	NextAttempt time.Time `json:"next_attempt"`
	LastError   string    `json:"last_error"`
	Account     string    `json:"account"` // the upstream account that delivers it
}

// Queue is implemented by the relay's queue: what is waiting now.
type Queue interface {
	Entries() []QueueEntry
}
