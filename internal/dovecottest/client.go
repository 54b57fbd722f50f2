package dovecottest

import (
	"bytes"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/emersion/go-imap"
	"github.com/emersion/go-imap/client"
)

// Message is a message in a mailbox as the tests look at it.
type Message struct {
	UID          uint32
	Flags        []string
	InternalDate time.Time
	Raw          []byte
}

// Seen reports whether the message has the \Seen flag.
func (m Message) Seen() bool {
	for _, f := range m.Flags {
		if f == imap.SeenFlag {
			return true
		}
	}
	return false
}

// Login signs user in over plain IMAP on loopback.
func (s *Server) Login(user, pass string) (*client.Client, error) {
	c, err := client.Dial(s.IMAPAddr)
	if err != nil {
		return nil, err
	}
	c.Timeout = 30 * time.Second
	if err := c.Login(user, pass); err != nil {
		c.Logout()
		return nil, err
	}
	return c, nil
}

// Append puts raw into user's mailbox, as a mail provider files a message.
func (s *Server) Append(user, pass, mailbox string, flags []string, date time.Time, raw []byte) error {
	c, err := s.Login(user, pass)
	if err != nil {
		return err
	}
	defer c.Logout()
	return c.Append(mailbox, flags, date, bytes.NewBuffer(raw))
}

// Messages returns every message in user's mailbox.
func (s *Server) Messages(t testing.TB, user, pass, mailbox string) []Message {
	t.Helper()
	msgs, err := s.messages(user, pass, mailbox)
	if err != nil {
		t.Fatalf("dovecot: messages of %s in %s: %v", user, mailbox, err)
	}
	return msgs
}

func (s *Server) messages(user, pass, mailbox string) ([]Message, error) {
	c, err := s.Login(user, pass)
	if err != nil {
		return nil, err
	}
	defer c.Logout()
	st, err := c.Select(mailbox, true)
	if err != nil {
		return nil, err
	}
	if st.Messages == 0 {
		return nil, nil
	}
	seq := new(imap.SeqSet)
	seq.AddRange(1, st.Messages)
	section := &imap.BodySectionName{Peek: true}
	items := []imap.FetchItem{imap.FetchUid, imap.FetchFlags, imap.FetchInternalDate, section.FetchItem()}
	ch := make(chan *imap.Message, 16)
	done := make(chan error, 1)
	go func() { done <- c.Fetch(seq, items, ch) }()
	var out []Message
	for m := range ch {
		r := m.GetBody(section)
		if r == nil {
			return nil, fmt.Errorf("no body for uid %d", m.Uid)
		}
		raw, err := io.ReadAll(r)
		if err != nil {
			return nil, err
		}
		out = append(out, Message{UID: m.Uid, Flags: m.Flags, InternalDate: m.InternalDate, Raw: raw})
	}
	return out, <-done
}
