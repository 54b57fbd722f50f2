package ui

import (
	"net/http"
	"sort"
	"strings"

	"pixelrelay/tracker/record"
)

// The queue: copies waiting in the spool, with the reason they wait.

type queueView struct {
	Entries  []record.QueueEntry
	Deferred int
}

func (c *call) queue() {
	v := &queueView{Entries: c.h.opt.Queue()}
	sort.SliceStable(v.Entries, func(i, j int) bool { return v.Entries[i].QueuedAt.After(v.Entries[j].QueuedAt) })
	for _, e := range v.Entries {
		if e.Status == record.StatusDeferred {
			v.Deferred++
		}
	}
	c.h.render(c.w, c.r, http.StatusOK, "queue", &pageData{Title: "Queue", Nav: "queue", CSRF: c.sess.csrf, Live: true, Queue: v})
}

// The status page.

type statusView struct {
	Status
	Waiting  int
	Deferred int
	Damaged  int
}

func (c *call) status() {
	st, err := c.h.opt.Status()
	if err != nil {
		c.internal("the status", err)
		return
	}
	v := &statusView{Status: st, Deferred: st.Queue[record.StatusDeferred], Damaged: st.Queue["damaged"]}
	v.Waiting = st.Queue[record.StatusQueued] + v.Deferred
	c.h.render(c.w, c.r, http.StatusOK, "status", &pageData{Title: "Status", Nav: "status", CSRF: c.sess.csrf, Live: true, Status: v})
}

// joinRecipients shows a queue entry's recipients.
func joinRecipients(rs []string) string { return strings.Join(rs, ", ") }
