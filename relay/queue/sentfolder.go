package queue

import (
	"io"
	"time"

	"pixelrelay/relay/spool"
	"pixelrelay/tracker/record"
)

// Finished is a message whose copies are all final, as Options.SentFolder
// gets it before its files are deleted.
type Finished struct {
	QueueID   string
	From      string // envelope sender
	Account   string // the account it went through (config.DefaultAccount for [upstream])
	MessageID string // as its copies carry it
	Received  time.Time
	Sent      int  // copies accepted upstream
	Tracked   bool // one of them carried a pixel
	// Records are the ids of its copies' records (record.Copy.ID).
	Records []string
	// Raw is the message as spooled (pixelrelay's Received header first);
	// nil when Options.SentFolderOn said the Sent folder is off for it or
	// no copy was tracked.
	Raw []byte
}

// markSentFolder gives m's records their first sent_folder: "pending"
// when the Sent folder of m's account is on and a copy is tracked, else
// "off"; nothing when Options.SentFolderOn is not set.
func (q *Queue) markSentFolder(m *message, recs []record.Copy, tracked bool) {
	if q.opt.SentFolderOn == nil {
		return
	}
	st := "off"
	if tracked && q.opt.SentFolderOn(accountIn(q.cfg(), m.env.Account).Name, m.env.From) {
		st = "pending"
	}
	for i := range recs {
		recs[i].SentFolder = st
	}
}

// handOver gives a finished message that had copies accepted upstream to
// Options.SentFolder, which keeps what it needs durably. false: it failed
// and the message stays in the spool for another try. The caller holds
// m.wmu.
func (q *Queue) handOver(m *message) bool {
	if q.opt.SentFolder == nil || m.env.DSN || m.env.From == "" {
		return true
	}
	account := accountIn(q.cfg(), m.env.Account).Name
	q.mu.Lock()
	if m.damaged != "" {
		q.mu.Unlock()
		return true
	}
	f := Finished{QueueID: m.env.ID, From: m.env.From, Account: account, MessageID: m.env.MessageID,
		Received: m.env.Received}
	if m.st != nil {
		if m.st.MessageID != "" {
			f.MessageID = m.st.MessageID
		}
		for _, c := range m.st.Copies {
			f.Records = append(f.Records, recordIDs(m.env.ID, &c)...)
			if c.Status == spool.Sent {
				f.Sent++
				f.Tracked = f.Tracked || c.TrackingID != ""
			}
		}
	}
	q.mu.Unlock()
	if f.Sent == 0 {
		return true
	}
	var err error
	if q.needsRaw(&f) {
		var body *spool.Body
		if body, err = q.sp.Open(m.env.ID, m.off); err == nil {
			f.Raw, err = io.ReadAll(body)
			body.Close()
		}
	}
	if err == nil {
		err = q.opt.SentFolder(f)
	}
	if err != nil {
		q.log.Error("handing the message to the sent folder job; will retry", "queue_id", m.env.ID, "err", err)
		return false
	}
	return true
}

// needsRaw reports whether Options.SentFolder may need f's raw message:
// not when its account has the Sent folder off or no copy was tracked
// (reading the spool file back for nothing cost every message about 2 %
// of the relay's CPU). A hot reload between this and the job turning it
// on is the job's to notice (Raw is nil then).
func (q *Queue) needsRaw(f *Finished) bool {
	return q.opt.SentFolderOn == nil || f.Tracked && q.opt.SentFolderOn(f.Account, f.From)
}

// recordIDs are the ids of the records of c's recipients.
func recordIDs(queueID string, c *spool.Copy) []string {
	if c.TrackingID != "" {
		return []string{c.TrackingID}
	}
	ids := make([]string, len(c.Recipients))
	for i, r := range c.Recipients {
		ids[i] = record.UntrackedID(queueID, r)
	}
	return ids
}
