package ui

import (
	"encoding/json"
	"net/http"
	"time"

	"pixelrelay/tracker/store"
)

// Live updates: /ui/events is a Server-Sent Events stream of the store's
// committed changes (an open, a click, a copy's new state). The page's
// script reloads the part of the page the change concerns; the stream
// itself carries ids and kinds only.

// keepAlive is how often an idle stream gets a comment, so proxies and
// browsers keep it open and a dead client is noticed.
const keepAlive = 20 * time.Second

// coalesce is how long changes are gathered into one message.
const coalesce = 200 * time.Millisecond

func (c *call) events() {
	w, r := c.w, c.r
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{}) // a stream outlives the server's write timeout
	sub := c.h.opt.Store.Subscribe()
	defer sub.Close()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write([]byte("retry: 2000\n: live\n\n")); err != nil || rc.Flush() != nil {
		return
	}
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-c.h.closed:
			return
		case <-tick.C:
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil || rc.Flush() != nil {
				return
			}
		case <-sub.C:
			time.Sleep(coalesce)
			changes, over := sub.Take()
			if !c.send(rc, changes, over) {
				return
			}
		}
	}
}

// liveMessage is one event of the stream: the changes, or reload when
// some were dropped (the reader fell behind).
type liveMessage struct {
	Changes []store.Change `json:"changes"`
	Reload  bool           `json:"reload,omitempty"`
}

func (c *call) send(rc *http.ResponseController, changes []store.Change, over bool) bool {
	if len(changes) == 0 && !over {
		return true
	}
	b, err := json.Marshal(liveMessage{Changes: changes, Reload: over})
	if err != nil {
		return false
	}
	out := make([]byte, 0, len(b)+32)
	out = append(out, "event: change\ndata: "...)
	out = append(append(out, b...), "\n\n"...)
	if _, err := c.w.Write(out); err != nil {
		return false
	}
	return rc.Flush() == nil
}
