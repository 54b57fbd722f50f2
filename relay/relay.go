// Package relay is the mail side of pixelrelay. The data path is visible in
// its sub-packages:
//
//	client → smtpd (session) → spool → queue → rewrite → deliver → upstream
//
// This file holds the few types they share.
package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Class says what a delivery failure means for the copy.
type Class int

const (
	// Temporary failures (4xx, network, TLS handshake, timeouts) are retried
	// with growing delays until queue.max_age.
	Temporary Class = iota
	// Permanent failures (5xx) bounce at once.
	Permanent
	// Setup failures are the relay's own configuration problem (upstream
	// refuses our credentials, untrusted certificate, Gmail's daily limit):
	// never bounced, the copy waits until the config is fixed or max_age.
	Setup
)

func (c Class) String() string {
	switch c {
	case Permanent:
		return "permanent"
	case Setup:
		return "setup"
	default:
		return "temporary"
	}
}

// DeliveryError is a failed delivery of one copy.
type DeliveryError struct {
	Class Class
	Code  int    // SMTP reply code, 0 when the failure was not a reply
	Err   error  // the underlying error
	Stage string // "connect", "tls", "auth", "mail", "rcpt", "data"
}

func (e *DeliveryError) Error() string {
	return fmt.Sprintf("%s: %v", e.Stage, e.Err)
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// ClassOf returns the class of err: a *DeliveryError's own class, else
// Temporary (an unknown failure is never a reason to bounce).
func ClassOf(err error) Class {
	var de *DeliveryError
	if errors.As(err, &de) {
		return de.Class
	}
	return Temporary
}

// Upstream delivers one copy to one or more recipients. Implementations:
// deliver.Outbox (files under data_dir/outbox) and deliver.SMTP.
// Deliver reads msg to its end; errors should be *DeliveryError.
type Upstream interface {
	Deliver(ctx context.Context, from string, to []string, msg io.Reader) error
	Close() error
}

// RecipientErrors is returned by Upstream.Deliver when some recipients of a
// shared copy were refused and the rest accepted (and delivered). Its keys
// are the refused recipients; each value is a *DeliveryError.
type RecipientErrors map[string]error

func (e RecipientErrors) Error() string {
	return fmt.Sprintf("%d recipient(s) refused", len(e))
}

// Spooler is what an SMTP session hands an accepted message to. Spool must
// return only once the envelope and body are durably on disk (fsynced file
// and directory); from then on the message is never lost. The returned queue
// id goes into the 250 reply. Any error means nothing was accepted.
type Spooler interface {
	Spool(from string, to []string, body io.Reader) (queueID string, err error)
}

// UserSpooler is a Spooler that also takes the SMTP AUTH user (the
// account a message goes through may be chosen by it). smtpd uses it
// when its Spooler has it.
type UserSpooler interface {
	SpoolUser(user, from string, to []string, body io.Reader) (queueID string, err error)
}
