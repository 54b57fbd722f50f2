// Package webhook sends pixelrelay's events to the [[webhooks]] endpoints,
// signed as Standard Webhooks 1.0 specifies
// (https://www.standardwebhooks.com): headers webhook-id, webhook-timestamp
// and webhook-signature ("v1," + base64 HMAC-SHA256 of "ID.TIMESTAMP.BODY"
// keyed with the bytes of the "whsec_" secret).
//
// The events themselves are written by the store (tracker/store) into its
// outbox in the same transaction as what caused them, so they are as
// durable as the open or the delivery state they report. This package reads
// them back: a Manager runs one worker per endpoint that posts its events in
// order, one at a time, retrying with growing delays for MaxAge (3 days);
// any 2xx ends an event, 410 Gone disables the endpoint. Nothing here ever
// blocks SMTP or the pixel: the workers only read the outbox and record
// their results.
//
// The package imports nothing of pixelrelay's: config uses its secret
// parser and event names, the store implements its Outbox.
package webhook

import (
	"crypto/rand"
	"encoding/base32"
	"time"
)

// Event types, as CONTRACT.md "Webhooks" names them. Ping is only sent by
// `pixelrelay webhooks test`; it is never stored.
const (
	Sent     = "message.sent"
	Deferred = "message.deferred"
	Bounced  = "message.bounced"
	Opened   = "message.opened"
	Clicked  = "message.clicked"
	Ping     = "ping"
)

// Types lists the event types an endpoint can subscribe to, in the order
// the contract lists them. An endpoint with no events configured gets all
// of them.
var Types = []string{Sent, Deferred, Bounced, Opened, Clicked}

// IsType reports whether t is one of Types.
func IsType(t string) bool {
	for _, x := range Types {
		if x == t {
			return true
		}
	}
	return false
}

// Event is one stored event waiting for one endpoint.
type Event struct {
	Seq     uint64    // order in the endpoint's outbox
	ID      string    // webhook-id: the same for every endpoint and every retry
	Type    string    // one of Types
	Created time.Time // when what it reports happened
	Body    []byte    // the JSON {"type","timestamp","data"} that is signed and sent
}

// Target is one endpoint as the store sees it: the events it takes.
type Target struct {
	Name string
	// URL: a 410 disables the endpoint for this URL; a new URL enables
	// it again.
	URL string
	// Events lists the types it takes; empty means all of Types.
	Events []string
	// HumanOnly keeps machine opens and clicks out.
	HumanOnly bool
}

// Takes reports whether the target wants an event of type typ; human is
// false for a machine open or click.
func (t *Target) Takes(typ string, human bool) bool {
	if t.HumanOnly && !human && (typ == Opened || typ == Clicked) {
		return false
	}
	if len(t.Events) == 0 {
		return true
	}
	for _, e := range t.Events {
		if e == typ {
			return true
		}
	}
	return false
}

// ids are "msg_" and 26 characters of lowercase base32 (128 random bits):
// no ".", which Standard Webhooks forbids in a signed id.
var ids = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a new webhook-id.
func NewID() string {
	var b [16]byte
	rand.Read(b[:])
	return "msg_" + ids.EncodeToString(b[:])
}
