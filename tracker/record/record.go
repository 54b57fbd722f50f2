// Package record is the seam between the relay and the tracker: the record a
// tracked copy leaves behind, the queue view the admin API shows, and the two
// small interfaces each side implements. Neither side imports the other.
package record

import "time"

// Copy statuses, as CONTRACT.md's MESSAGE.status.
const (
	StatusQueued   = "queued"
	StatusDeferred = "deferred"
	StatusSent     = "sent"
	StatusFailed   = "failed"
)

// Copy is one tracked copy of a message: one recipient, one tracking id.
type Copy struct {
	TrackingID string    // the id inside the token; what `pixelrelay opens ID` takes
	QueueID    string    // the spooled message this copy came from
	Recipient  string    // envelope recipient as given in RCPT TO
	From       string    // envelope sender ("" for the null sender)
	Subject    string    // decoded Subject header
	MessageID  string    // Message-ID header, with angle brackets
	QueuedAt   time.Time // when the 250 was given
	SentAt     time.Time // zero until delivered
	Status     string    // one of the Status constants
	LastError  string    // last delivery error, "" if none
}

// Recorder is implemented by the tracker's store. The relay calls Add once
// per tracked copy when the message is spooled, and Update whenever a copy's
// delivery state changes. Both must be safe for concurrent use.
type Recorder interface {
	Add(copies []Copy) error
	Update(trackingID, status, lastError string, at time.Time) error
}

// Minter is implemented by the tracker's token keyring: it makes a fresh
// tracking id and the authenticated token that goes into the pixel URL.
type Minter interface {
	Mint() (trackingID, token string, err error)
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
}

// Queue is implemented by the relay's queue: what is waiting now.
type Queue interface {
	Entries() []QueueEntry
}
