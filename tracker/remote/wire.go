// Package remote is the split deployment (CONTRACT.md "Where the tracker
// runs"): a relay on a laptop and a tracker on an always-on public host.
//
// The tracker serves the relay API under /relay/v1/ (Handler), authenticated
// by the relay's secret (`pixelrelay keys export` pairs a relay and writes
// its relay key): relays register their copies there and take the opens of
// them back. The relay runs a Syncer: it pushes the copies its store lists
// in its outbox, pulls the opens waiting in its feed (a long poll, so opens
// reach the laptop within a second while it is online) and imports them into
// its own store, where the query commands, the dashboard and the webhooks
// find them joined to its full copy records. Neither side waits for the
// other: the relay accepts and delivers mail while the tracker is
// unreachable, and the tracker records opens while the laptop sleeps.
//
// By default a registration carries only the tracking id, the queued and
// sent times and the delivery status; tracker.share_details adds the
// recipient, sender, subject and Message-ID.
package remote

import (
	"time"

	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
	"pixelrelay/tracker/token"
)

// The relay API's routes on the tracker.
const (
	PathPrefix = "/relay/"
	PathCopies = "/relay/v1/copies"      // POST RegisterRequest -> RegisterResponse
	PathOpens  = "/relay/v1/opens"       // GET ?limit=&wait= -> OpensResponse
	PathAck    = "/relay/v1/opens/ack"   // POST AckRequest -> AckResponse
	PathKeys   = "/relay/v1/keys"        // GET -> KeysResponse
	PathRotate = "/relay/v1/keys/rotate" // POST -> KeysResponse
)

// Limits of one request.
const (
	MaxCopies   = 1000             // copies per registration
	MaxFeed     = 1000             // opens per pull
	MaxWait     = 30 * time.Second // longest long poll
	maxBodySize = 8 << 20
)

// RegisterRequest registers copies (or their new delivery states).
type RegisterRequest struct {
	// Now is the relay's clock as it sends: the tracker moves the copies'
	// times by the difference to its own, so its rules compare times of
	// one clock.
	Now    time.Time   `json:"now"`
	Copies []CopyState `json:"copies"`
}

// CopyState is what the tracker is told about one copy. The personal
// fields are sent only with tracker.share_details.
type CopyState struct {
	TrackingID string     `json:"tracking_id"`
	QueuedAt   time.Time  `json:"queued_at"`
	SentAt     *time.Time `json:"sent_at,omitempty"`
	Status     string     `json:"status"`
	Recipient  string     `json:"recipient,omitempty"`
	From       string     `json:"from,omitempty"`
	Subject    string     `json:"subject,omitempty"`
	MessageID  string     `json:"message_id,omitempty"`
	LastError  string     `json:"last_error,omitempty"` // may name the recipient: only with share_details
	Account    string     `json:"account,omitempty"`    // the relay's upstream account: only with share_details
	// Links are the URLs of the copy's tracked links, which the tracker
	// redirects clicks to: always sent (a click could not be answered
	// without them).
	Links []string `json:"links,omitempty"`
}

// RegisterResponse answers a registration.
type RegisterResponse struct {
	store.RegisterResult
	Now        time.Time `json:"now"`         // the tracker's clock
	KeyVersion int       `json:"key_version"` // its current tracking key version
}

// OpensResponse is the relay's waiting opens, oldest first.
type OpensResponse struct {
	Opens      []store.FeedOpen `json:"opens"`
	Now        time.Time        `json:"now"`
	KeyVersion int              `json:"key_version"`
}

// AckRequest acknowledges opens the relay has stored.
type AckRequest struct {
	Seqs []uint64 `json:"seqs"`
}

// AckResponse says how many were still waiting.
type AckResponse struct {
	Acked int `json:"acked"`
}

// KeysResponse is the tracker's tracking keys.
type KeysResponse struct {
	CurrentVersion int         `json:"current_version"`
	TrackingKeys   []token.Key `json:"tracking_keys"`
}

// ErrorResponse is any non-2xx answer.
type ErrorResponse struct {
	Error string `json:"error"`
}

// stateOf is what the relay sends about c.
func stateOf(c *record.Copy, details bool) CopyState {
	s := CopyState{TrackingID: c.TrackingID, QueuedAt: c.QueuedAt.UTC(), Status: c.Status, Links: c.Links}
	if !c.SentAt.IsZero() {
		t := c.SentAt.UTC()
		s.SentAt = &t
	}
	if details {
		s.Recipient, s.From, s.Subject, s.MessageID, s.LastError = c.Recipient, c.From, c.Subject, c.MessageID, c.LastError
		s.Account = c.Account
	}
	return s
}

// copyOf is the record the tracker keeps of s, its times moved by skew.
func copyOf(s *CopyState, skew time.Duration) record.Copy {
	c := record.Copy{TrackingID: s.TrackingID, QueuedAt: s.QueuedAt.Add(skew).UTC(), Status: s.Status,
		Recipient: s.Recipient, From: s.From, Subject: s.Subject, MessageID: s.MessageID, LastError: s.LastError,
		Account: s.Account, Links: s.Links}
	if s.SentAt != nil && !s.SentAt.IsZero() {
		c.SentAt = s.SentAt.Add(skew).UTC()
	}
	return c
}

// skewTolerance: clocks closer than this are taken as equal (request
// latency would otherwise move every registration by a few milliseconds).
const skewTolerance = 2 * time.Second

// skewOf is how far the tracker's clock (now) is ahead of the relay's
// (relayNow), rounded to the second; 0 within skewTolerance or when the
// relay did not say.
func skewOf(now, relayNow time.Time) time.Duration {
	if relayNow.IsZero() {
		return 0
	}
	d := now.Sub(relayNow)
	if d > -skewTolerance && d < skewTolerance {
		return 0
	}
	return d.Round(time.Second)
}
