package smtpd

import (
	"errors"
	"io"

	"github.com/emersion/go-smtp"
)

// countedSession counts what a session answers (Server.Metrics): the reply
// code at the end of each DATA, and refused MAIL and RCPT commands. It
// wraps a session, so the session's own code stays about SMTP.
type countedSession struct {
	*session
}

func (c countedSession) Mail(from string, opts *smtp.MailOptions) error {
	err := c.session.Mail(from, opts)
	if err != nil {
		c.s.Metrics.SMTPRefused("mail", replyCode(err))
	}
	return err
}

func (c countedSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	err := c.session.Rcpt(to, opts)
	if err != nil {
		c.s.Metrics.SMTPRefused("rcpt", replyCode(err))
	}
	return err
}

func (c countedSession) Data(r io.Reader) error {
	err := c.session.Data(r)
	c.s.Metrics.SMTPMessage(replyCode(err))
	return err
}

// replyCode is the SMTP code a session method's result becomes: 250 for
// nil, the code of an *smtp.SMTPError, else 554 (what go-smtp sends for
// any other error).
func replyCode(err error) int {
	if err == nil {
		return 250
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 554
}
