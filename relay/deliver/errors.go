package deliver

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"

	"github.com/emersion/go-smtp"

	"pixelrelay/relay"
)

// classify turns an error from one stage of an SMTP delivery into a
// *relay.DeliveryError:
//
//   - an SMTP reply 4xx is Temporary, 5xx Permanent, except these Setup
//     replies, which are the relay's own configuration problem: any 5xx
//     before MAIL (greeting, EHLO, STARTTLS, and AUTH: 535 bad credentials,
//     534 "application-specific password required", 538 "encryption
//     required", 504 mechanism), 530 "authentication required" at any
//     stage, and 550 5.4.5 (Gmail's daily sending limit);
//   - an untrusted, expired or mismatched upstream certificate is Setup;
//   - anything else (network, TLS handshake, timeouts, cancellation, the
//     upstream closing the connection) is Temporary.
func classify(err error, stage string) *relay.DeliveryError {
	var de *relay.DeliveryError
	if errors.As(err, &de) {
		return de
	}
	de = &relay.DeliveryError{Class: relay.Temporary, Err: err, Stage: stage}
	var se *smtp.SMTPError
	switch {
	case errors.As(err, &se):
		de.Code = se.Code
		de.Class = replyClass(se, stage)
		de.Err = &replyError{se}
		if de.Class == relay.Setup {
			de.Err = fmt.Errorf("%w (%s)", de.Err, setupHint(se, stage))
		}
	case badCertificate(err):
		de.Class = relay.Setup
		de.Stage = "tls"
		de.Err = fmt.Errorf("untrusted upstream certificate (check the host name in upstream.url, or trust its CA with upstream.ca_file): %w", err)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		de.Err = fmt.Errorf("the upstream closed the connection: %w", err)
	}
	return de
}

// replyError is an upstream's SMTP reply, written the way it was sent
// ("550 5.1.1 No such user"). It unwraps to the *smtp.SMTPError.
type replyError struct{ *smtp.SMTPError }

func (e *replyError) Error() string {
	ec := e.EnhancedCode
	if ec == smtp.EnhancedCodeNotSet || ec == smtp.NoEnhancedCode {
		return fmt.Sprintf("upstream replied %d %s", e.Code, e.Message)
	}
	return fmt.Sprintf("upstream replied %d %d.%d.%d %s", e.Code, ec[0], ec[1], ec[2], e.Message)
}

func (e *replyError) Unwrap() error { return e.SMTPError }

func setupHint(se *smtp.SMTPError, stage string) string {
	switch {
	case se.Code == 550:
		return "sending limit of the upstream account reached; copies wait until it resets"
	case stage == "auth":
		return "check upstream.username and upstream.password"
	case stage == "connect" || stage == "tls":
		return "the upstream refuses our connection: check upstream.url"
	default:
		return "the upstream wants authentication: set upstream.username and upstream.password"
	}
}

func replyClass(se *smtp.SMTPError, stage string) relay.Class {
	switch {
	case se.Code == 530:
		return relay.Setup
	case se.Code == 550 && se.EnhancedCode == smtp.EnhancedCode{5, 4, 5}:
		return relay.Setup
	case se.Code/100 == 5 && (stage == "auth" || stage == "connect" || stage == "tls"):
		// Refused before any message was named: the upstream will not
		// take mail from us at all, whatever the message.
		return relay.Setup
	case se.Code/100 == 5:
		return relay.Permanent
	}
	return relay.Temporary
}

// badCertificate reports whether err says the upstream's certificate was
// not trusted.
func badCertificate(err error) bool {
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	var uaP *x509.UnknownAuthorityError
	var heP *x509.HostnameError
	var ciP *x509.CertificateInvalidError
	return errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) ||
		errors.As(err, &uaP) || errors.As(err, &heP) || errors.As(err, &ciP)
}

// setupErr is a Setup failure that is not a reply.
func setupErr(stage string, err error) *relay.DeliveryError {
	return &relay.DeliveryError{Class: relay.Setup, Stage: stage, Err: err}
}

// ctxErr wraps a context's end as a Temporary failure.
func ctxErr(ctx context.Context, stage string) *relay.DeliveryError {
	return &relay.DeliveryError{Class: relay.Temporary, Stage: stage, Err: context.Cause(ctx)}
}
