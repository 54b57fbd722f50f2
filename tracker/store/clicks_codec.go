package store

import (
	"encoding/binary"
	"strconv"
)

// Clicks and the links they lead to. Layout:
//
//	links          linksKey -> linksRec: the link URLs of a message, shared
//	               by its tracked copies (refs counts them; the last purged
//	               copy takes the record with it)
//	clicks         id 0 clicked(8) seq(8) -> clickRec
//	clicks_by_time clicked(8) seq(8) -> flags id 0 rcpt (as opens_by_time)
//	clicks_by_rcpt rcpt 0 clicked(8) seq(8) -> id
//	clicks_pending clicked(8) seq(8) -> id: clicks not settled yet (see settle)
var (
	bLinks         = []byte("links")
	bClicks        = []byte("clicks")
	bClicksByTime  = []byte("clicks_by_time")
	bClicksByRcpt  = []byte("clicks_by_rcpt")
	bClicksPending = []byte("clicks_pending")

	clickBuckets = [][]byte{bLinks, bClicks, bClicksByTime, bClicksByRcpt, bClicksPending}
)

// Counter names in bMeta: the clicks stored now (purges lower them), as
// mOpens and mOpensHuman.
var (
	mClicks      = []byte("clicks")
	mClicksHuman = []byte("clicks_human")
)

// Flags of a stored click (flagBot and flagFirst as for opens).
const (
	// flagRuled: a click rule (classify.ClickRules) made it a machine's
	// where the open rules said human; its verdict before the rule is the
	// plain human one.
	flagRuled = 4
)

// flagByClick marks an open that is no pixel fetch: a human click on a
// copy whose pixel never loaded made the copy humanly opened (see settle).
const flagByClick = 4

const (
	clickV1 = 1
	linksV1 = 1
)

// clickRec is the value of a click in bClicks; the id and time are in the
// key.
type clickRec struct {
	Flags     byte
	Link      int // 0: the honeypot
	IP        string
	UserAgent string
	BotType   string
	Reason    string
	Country   string
	City      string
}

func encodeClick(c *clickRec) []byte {
	b := make([]byte, 0, 24+len(c.IP)+len(c.UserAgent)+len(c.BotType)+len(c.Reason)+len(c.Country)+len(c.City))
	b = append(b, clickV1, c.Flags)
	b = binary.AppendUvarint(b, uint64(c.Link))
	for _, s := range []string{c.IP, c.UserAgent, c.BotType, c.Reason, c.Country, c.City} {
		b = appendStr(b, s)
	}
	return b
}

func decodeClick(v []byte) (clickRec, error) {
	var c clickRec
	d := decoder{b: v}
	if d.byte() != clickV1 {
		return c, errCorrupt
	}
	c.Flags = d.byte()
	c.Link = int(min(d.uvarint(), 1<<20))
	for _, p := range []*string{&c.IP, &c.UserAgent, &c.BotType, &c.Reason, &c.Country, &c.City} {
		*p = d.str()
	}
	return c, d.err
}

// linksRec is a message's link URLs and how many stored copies use them.
type linksRec struct {
	Refs int
	URLs []string
}

func encodeLinks(l *linksRec) []byte {
	n := 8
	for _, u := range l.URLs {
		n += len(u) + 2
	}
	b := make([]byte, 0, n)
	b = append(b, linksV1)
	b = binary.AppendUvarint(b, uint64(l.Refs))
	b = binary.AppendUvarint(b, uint64(len(l.URLs)))
	for _, u := range l.URLs {
		b = appendStr(b, u)
	}
	return b
}

func decodeLinks(v []byte) (linksRec, error) {
	var l linksRec
	d := decoder{b: v}
	if d.byte() != linksV1 {
		return l, errCorrupt
	}
	l.Refs = int(d.uvarint())
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		return l, errCorrupt
	}
	l.URLs = make([]string, 0, n)
	for range n {
		l.URLs = append(l.URLs, d.str())
	}
	return l, d.err
}

// addRefs returns an encoded linksRec with d more copies using it, the
// URLs copied as they are; false when it is damaged or no copy is left.
func addRefs(v []byte, d int) ([]byte, bool) {
	if len(v) < 2 || v[0] != linksV1 {
		return nil, false
	}
	refs, n := binary.Uvarint(v[1:])
	if n <= 0 || int64(refs)+int64(d) <= 0 {
		return nil, false
	}
	out := make([]byte, 0, len(v)+2)
	out = append(out, linksV1)
	out = binary.AppendUvarint(out, uint64(int64(refs)+int64(d)))
	return append(out, v[1+n:]...), true
}

// linkURL returns the URL of link n (from 1) of an encoded linksRec
// without decoding the others.
func linkURL(v []byte, n int) (string, bool) {
	d := decoder{b: v}
	if d.byte() != linksV1 {
		return "", false
	}
	d.uvarint() // refs
	count := d.uvarint()
	if d.err != nil || n < 1 || uint64(n) > count {
		return "", false
	}
	for range n - 1 {
		d.skip()
	}
	u := d.str()
	return u, d.err == nil
}

// linksKey is where a copy's link URLs are kept: under its message's queue
// id, shared by the message's copies; a copy recorded without one (a
// public tracker keeps no queue ids) has its own, under "~" and its
// tracking id (queue ids and tracking ids are letters and digits).
func linksKey(queueID, trackingID string) []byte {
	if queueID != "" {
		return []byte(queueID)
	}
	return []byte("~" + trackingID)
}

// clickDedupID is what dedup keys a click by: its copy and link.
func clickDedupID(id string, link int) string { return id + "/" + strconv.Itoa(link) }
