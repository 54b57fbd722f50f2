package sentfolder

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-imap"
	"github.com/emersion/go-imap/client"
	"github.com/emersion/go-imap/commands"
	"github.com/emersion/go-message/textproto"
)

// Message is what one replacement works on.
type Message struct {
	MessageID string    // with angle brackets, as the copies carry it
	Raw       []byte    // the message as submitted (see Submitted)
	Date      time.Time // its Date, the appended copy's internal date
	Marks     []string  // the tracker's pixel and click URL prefixes (Marks)
}

// Result is what one replacement did.
type Result struct {
	Found    int  // relayed copies found in Sent
	Removed  int  // relayed copies removed from Sent, All Mail and Trash
	Appended bool // the clean copy was appended (none was there)
	Mailbox  string
}

// Replace signs in to the account, appends msg to its Sent mailbox (\Seen,
// msg.Date) unless a clean copy of that Message-ID is there already, and
// removes every copy of it that pixelrelay relayed from Sent, and every
// tracked one from All Mail (through Trash, so that Gmail deletes it
// rather than archive it) and from Trash. It is safe to run again: a second run appends nothing and
// removes what was filed since.
func Replace(ctx context.Context, a Account, msg Message) (Result, error) {
	var res Result
	c, err := connect(ctx, a)
	if err != nil {
		return res, err
	}
	defer c.Logout()
	stop := context.AfterFunc(ctx, func() { c.Terminate() })
	defer stop()
	mb, err := findMailboxes(c)
	if err != nil {
		return res, err
	}
	res.Mailbox = mb.Sent
	sent, err := scan(c, mb.Sent, msg)
	if err != nil {
		return res, err
	}
	fromSent := append(sent.relayed, sent.tracked...)
	res.Found = len(fromSent)
	if sent.clean == 0 {
		if err := c.Append(mb.Sent, []string{imap.SeenFlag}, msg.Date, bytes.NewBuffer(msg.Raw)); err != nil {
			return res, fmt.Errorf("APPEND to %s: %w", mb.Sent, err)
		}
		res.Appended = true
	}
	if err := remove(c, fromSent); err != nil {
		return res, fmt.Errorf("removing from %s: %w", mb.Sent, err)
	}
	res.Removed += len(fromSent)
	n, err := cleanAllMail(c, mb, msg)
	res.Removed += n
	return res, err
}

// cleanAllMail removes tracked copies from All Mail (moved to Trash
// first when there is one: on Gmail an expunge from All Mail only
// archives) and then from Trash.
func cleanAllMail(c *client.Client, mb Mailboxes, msg Message) (int, error) {
	removed := 0
	if mb.All != "" && mb.All != mb.Sent {
		all, err := scan(c, mb.All, msg)
		if err != nil {
			return removed, err
		}
		if len(all.tracked) > 0 && mb.Trash != "" {
			if err := c.UidMove(uidSet(all.tracked), mb.Trash); err != nil {
				return removed, fmt.Errorf("moving from %s to %s: %w", mb.All, mb.Trash, err)
			}
		} else if err := remove(c, all.tracked); err != nil {
			return removed, fmt.Errorf("removing from %s: %w", mb.All, err)
		} else {
			removed += len(all.tracked)
		}
	}
	if mb.Trash == "" || mb.Trash == mb.Sent {
		return removed, nil
	}
	trash, err := scan(c, mb.Trash, msg)
	if err != nil {
		return removed, err
	}
	if err := remove(c, trash.tracked); err != nil {
		return removed, fmt.Errorf("removing from %s: %w", mb.Trash, err)
	}
	return removed + len(trash.tracked), nil
}

// found are the copies of a Message-ID in one mailbox.
type found struct {
	tracked []uint32 // UIDs of copies with a pixel or rewritten links
	relayed []uint32 // UIDs of other copies pixelrelay relayed
	clean   int      // copies without either
}

// scan selects mailbox and sorts the copies of msg's Message-ID in it.
func scan(c *client.Client, mailbox string, msg Message) (found, error) {
	var f found
	st, err := c.Select(mailbox, false)
	if err != nil {
		return f, fmt.Errorf("SELECT %s: %w", mailbox, err)
	}
	if st.Messages == 0 {
		return f, nil
	}
	crit := imap.NewSearchCriteria()
	crit.Header.Add("Message-Id", msg.MessageID)
	uids, err := c.UidSearch(crit)
	if err != nil {
		return f, fmt.Errorf("SEARCH %s: %w", mailbox, err)
	}
	if len(uids) == 0 {
		return f, nil
	}
	section := &imap.BodySectionName{Peek: true}
	ch := make(chan *imap.Message, 8)
	done := make(chan error, 1)
	go func() { done <- c.UidFetch(uidSet(uids), []imap.FetchItem{imap.FetchUid, section.FetchItem()}, ch) }()
	for m := range ch {
		r := m.GetBody(section)
		if r == nil {
			continue
		}
		raw, err := io.ReadAll(r)
		if err != nil || !sameID(raw, msg.MessageID) {
			continue
		}
		switch classify(raw, msg.Marks) {
		case tracked:
			f.tracked = append(f.tracked, m.Uid)
		case relayed:
			f.relayed = append(f.relayed, m.Uid)
		default:
			f.clean++
		}
	}
	if err := <-done; err != nil {
		return f, fmt.Errorf("FETCH %s: %w", mailbox, err)
	}
	return f, nil
}

// sameID reports whether raw's Message-ID is id (SEARCH matches
// substrings).
func sameID(raw []byte, id string) bool {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return false
	}
	return strings.EqualFold(strings.TrimSpace(h.Get("Message-Id")), strings.TrimSpace(id))
}

// remove flags the UIDs \Deleted in the selected mailbox and expunges
// them: UID EXPUNGE (UIDPLUS) when the server has it, else EXPUNGE (which
// also expunges what else was flagged \Deleted there).
func remove(c *client.Client, uids []uint32) error {
	if len(uids) == 0 {
		return nil
	}
	set := uidSet(uids)
	item := imap.FormatFlagsOp(imap.AddFlags, true)
	if err := c.UidStore(set, item, []interface{}{imap.DeletedFlag}, nil); err != nil {
		return err
	}
	if ok, _ := c.Support("UIDPLUS"); ok {
		cmd := &commands.Uid{Cmd: &imap.Command{Name: "EXPUNGE", Arguments: []interface{}{set}}}
		st, err := c.Execute(cmd, nil)
		if err != nil {
			return err
		}
		return st.Err()
	}
	return c.Expunge(nil)
}

func uidSet(uids []uint32) *imap.SeqSet {
	s := new(imap.SeqSet)
	s.AddNum(uids...)
	return s
}
