package store

import (
	"encoding/binary"
	"time"

	"pixelrelay/tracker/webhook"
)

// Encoding of outbox entries and endpoint states, in the style of codec.go.

func encodeHookEvent(ev *webhook.Event) []byte {
	b := make([]byte, 0, 48+len(ev.ID)+len(ev.Type)+len(ev.Body))
	b = append(b, recVersion)
	b = appendStr(b, ev.ID)
	b = appendStr(b, ev.Type)
	b = appendTime(b, ev.Created)
	return appendStr(b, string(ev.Body))
}

func decodeHookEvent(v []byte) (webhook.Event, error) {
	var ev webhook.Event
	d := decoder{b: v}
	if d.byte() != recVersion {
		return ev, errCorrupt
	}
	ev.ID = d.str()
	ev.Type = d.str()
	ev.Created = d.time()
	ev.Body = []byte(d.str())
	return ev, d.err
}

// Flags of a stored endpoint state.
const hookDisabled = 1

func encodeHookState(st *webhook.State) []byte {
	b := make([]byte, 0, 64+len(st.URL)+len(st.DisabledReason)+len(st.LastError))
	b = append(b, recVersion)
	var flags byte
	if st.Disabled {
		flags |= hookDisabled
	}
	b = append(b, flags)
	for _, s := range []string{st.URL, st.DisabledReason, st.LastError} {
		b = appendStr(b, s)
	}
	for _, t := range []time.Time{st.DisabledAt, st.NextAttempt, st.LastSuccess, st.LastErrorAt} {
		b = appendTime(b, t)
	}
	b = binary.AppendUvarint(b, uint64(max(st.Failures, 0)))
	for _, n := range []uint64{st.Delivered, st.Expired, st.Dropped} {
		b = binary.AppendUvarint(b, n)
	}
	return b
}

// decodeHookState decodes a state; no value (nil) is the zero state.
func decodeHookState(v []byte) (webhook.State, error) {
	var st webhook.State
	if v == nil {
		return st, nil
	}
	d := decoder{b: v}
	if d.byte() != recVersion {
		return st, errCorrupt
	}
	st.Disabled = d.byte()&hookDisabled != 0
	st.URL = d.str()
	st.DisabledReason = d.str()
	st.LastError = d.str()
	st.DisabledAt = d.time()
	st.NextAttempt = d.time()
	st.LastSuccess = d.time()
	st.LastErrorAt = d.time()
	st.Failures = int(min(d.uvarint(), 1<<31))
	st.Delivered = d.uvarint()
	st.Expired = d.uvarint()
	st.Dropped = d.uvarint()
	return st, d.err
}
