package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"time"

	"pixelrelay/tracker/record"
)

// Bucket names. Keys use 0x00 as a separator: tracking ids, addresses and
// IP strings never contain it (Add rejects ids that do).
var (
	bCopies       = []byte("copies")          // id -> copyRec (id: record.Copy.ID)
	bCopiesByTime = []byte("copies_by_time")  // queued(8) id -> copyTimeValue (or "", older files)
	bCopiesByRcpt = []byte("copies_by_rcpt")  // rcpt 0 queued(8) id -> ""
	bUnopened     = []byte("copies_unopened") // queued(8) id -> "" while opens_human == 0
	bOpens        = []byte("opens")           // id 0 opened(8) seq(8) -> openRec
	bOpensByTime  = []byte("opens_by_time")   // opened(8) seq(8) -> flags id 0 rcpt
	bOpensByRcpt  = []byte("opens_by_rcpt")   // rcpt 0 opened(8) seq(8) -> id
	bMeta         = []byte("meta")            // counter name -> int64(8)
	bHookOutbox   = []byte("webhook_outbox")  // endpoint 0 seq(8) -> event (outbox.go)
	bHookState    = []byte("webhook_state")   // endpoint -> its delivery state

	allBuckets = append([][]byte{bCopies, bCopiesByTime, bCopiesByRcpt, bUnopened, bOpens, bOpensByTime, bOpensByRcpt, bMeta,
		bEvents, bActivity, bHookOutbox, bHookState, bEarly, bCopyRelay, bRelayFeed, bRelayOut}, clickBuckets...)
)

// Counter names in bMeta.
var (
	mCopies     = []byte("copies") // tracked and untracked
	mUntracked  = []byte("copies_untracked")
	mOpens      = []byte("opens")
	mOpensHuman = []byte("opens_human")
)

// Flags of a stored open.
const (
	flagBot   = 1
	flagFirst = 2
)

// recVersion is the first byte of every encoded record. Copies are
// written as copyVersion: version 1 (tracked copies only, before untracked
// copies were recorded) is read as a tracked copy; version 2 appends the
// untracked reason and the time the copy was done (sent or failed);
// version 3 the click counters (older records have none); version 4 the
// account (older records have ""); version 5 the sent folder status
// (older records have "").
const (
	recVersion  = 1
	copyV2      = 2
	copyV3      = 3
	copyV4      = 4
	copyVersion = 5
)

// Open records carry their own version: 2 adds the reason after the city.
// Version 1 opens (databases made before reasons were stored) still decode,
// with an empty reason.
const (
	openV1 = 1
	openV2 = 2
)

var errCorrupt = errors.New("store: corrupt record")

// copyRec is a copy with its open counters, as stored in bCopies under
// its record.Copy.ID.
type copyRec struct {
	record.Copy
	OpensTotal     int
	OpensHuman     int
	FirstHumanOpen time.Time
	// DoneAt is when the copy was sent or failed (zero while queued or
	// deferred): a purge deletes done copies older than its cutoff. A
	// version 1 record has its SentAt, or its QueuedAt when it failed.
	DoneAt time.Time
	// Clicks, as OpensTotal, OpensHuman and FirstHumanOpen: historical
	// totals of the copy's clicks, human or machine, and human ones.
	ClicksTotal     int
	ClicksHuman     int
	FirstHumanClick time.Time
}

// openRec is the value of an open in bOpens; the id and time are in the key.
type openRec struct {
	Flags     byte
	IP        string
	UserAgent string
	BotType   string
	Proxy     string
	Country   string
	City      string
	Reason    string // the rule that decided; "" in version 1 records
}

func normAddr(s string) string {
	return strings.ToLower(strings.Trim(strings.TrimSpace(s), "<>"))
}

// ts encodes a time as 8 big-endian bytes of Unix nanoseconds, so keys sort
// by time. Times before 1970 sort as 1970.
func ts(t time.Time) uint64 {
	n := t.UnixNano()
	if t.IsZero() || n < 0 {
		return 0
	}
	return uint64(n)
}

func fromTS(n uint64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(n)).UTC()
}

func appendU64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte { return binary.AppendUvarint(b, ts(t)) }

// decoder reads what the append functions wrote; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = errCorrupt
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) skip() {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)) {
		d.err = errCorrupt
	}
	if d.err == nil {
		d.b = d.b[n:]
	}
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.err = errCorrupt
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) time() time.Time { return fromTS(d.uvarint()) }

func encodeCopy(c *copyRec) []byte {
	b := make([]byte, 0, 112+len(c.Recipient)+len(c.From)+len(c.Subject)+len(c.MessageID)+len(c.LastError)+len(c.UntrackedReason)+len(c.Account)+len(c.SentFolder))
	b = append(b, copyVersion)
	for _, s := range []string{c.TrackingID, c.QueueID, c.Recipient, c.From, c.Subject, c.MessageID, c.Status, c.LastError} {
		b = appendStr(b, s)
	}
	b = appendTime(b, c.QueuedAt)
	b = appendTime(b, c.SentAt)
	b = appendTime(b, c.FirstHumanOpen)
	b = binary.AppendUvarint(b, uint64(c.OpensTotal))
	b = binary.AppendUvarint(b, uint64(c.OpensHuman))
	b = appendStr(b, c.UntrackedReason)
	b = appendTime(b, c.DoneAt)
	b = binary.AppendUvarint(b, uint64(c.ClicksTotal))
	b = binary.AppendUvarint(b, uint64(c.ClicksHuman))
	b = appendTime(b, c.FirstHumanClick)
	b = appendStr(b, c.Account)
	return appendStr(b, c.SentFolder)
}

func decodeCopy(v []byte) (copyRec, error) {
	var c copyRec
	d := decoder{b: v}
	version := d.byte()
	if !knownCopyVersion(version) {
		return c, errCorrupt
	}
	for _, p := range []*string{&c.TrackingID, &c.QueueID, &c.Recipient, &c.From, &c.Subject, &c.MessageID, &c.Status, &c.LastError} {
		*p = d.str()
	}
	c.QueuedAt = d.time()
	c.SentAt = d.time()
	c.FirstHumanOpen = d.time()
	c.OpensTotal = int(d.uvarint())
	c.OpensHuman = int(d.uvarint())
	if version >= copyV2 {
		c.UntrackedReason = d.str()
		c.DoneAt = d.time()
	} else {
		c.DoneAt = doneAtV1(&c.Copy)
	}
	if version >= copyV3 {
		c.ClicksTotal = int(d.uvarint())
		c.ClicksHuman = int(d.uvarint())
		c.FirstHumanClick = d.time()
	}
	if version >= copyV4 {
		c.Account = d.str()
	}
	if version >= copyVersion {
		c.SentFolder = d.str()
	}
	if d.err == nil && len(d.b) != 0 {
		return c, errCorrupt
	}
	return c, d.err
}

// knownCopyVersion reports whether a copy record starts with a version
// this code reads. Every version begins with the same fields.
func knownCopyVersion(v byte) bool { return v >= recVersion && v <= copyVersion }

// doneAtV1 is when a version 1 copy was done: its SentAt when sent, its
// QueuedAt when failed (the failure time was not kept), else zero.
func doneAtV1(c *record.Copy) time.Time {
	switch c.Status {
	case record.StatusSent:
		return c.SentAt
	case record.StatusFailed:
		return c.QueuedAt
	}
	return time.Time{}
}

// decodeCopyForOpen decodes only what an OPEN shows of its copy (tracking
// id, recipient, subject, message id, sent time): queries over many copies
// allocate less. Both versions start the same way.
func decodeCopyForOpen(v []byte) (copyRec, error) {
	var c copyRec
	d := decoder{b: v}
	if !knownCopyVersion(d.byte()) {
		return c, errCorrupt
	}
	c.TrackingID = d.str()
	d.skip() // queue id
	c.Recipient = d.str()
	d.skip() // from
	c.Subject = d.str()
	c.MessageID = d.str()
	d.skip() // status
	d.skip() // last error
	d.uvarint()
	c.SentAt = d.time()
	return c, d.err
}

func encodeOpen(o *openRec) []byte {
	b := make([]byte, 0, 18+len(o.IP)+len(o.UserAgent)+len(o.BotType)+len(o.Proxy)+len(o.Country)+len(o.City)+len(o.Reason))
	b = append(b, openV2, o.Flags)
	for _, s := range []string{o.IP, o.UserAgent, o.BotType, o.Proxy, o.Country, o.City, o.Reason} {
		b = appendStr(b, s)
	}
	return b
}

func decodeOpen(v []byte) (openRec, error) {
	var o openRec
	d := decoder{b: v}
	version := d.byte()
	if version != openV1 && version != openV2 {
		return o, errCorrupt
	}
	o.Flags = d.byte()
	for _, p := range []*string{&o.IP, &o.UserAgent, &o.BotType, &o.Proxy, &o.Country, &o.City} {
		*p = d.str()
	}
	if version == openV2 {
		o.Reason = d.str()
	}
	return o, d.err
}

// timeSeq is the 16-byte opened(8) seq(8) that ends every open key.
func timeSeq(at, seq uint64) []byte {
	return appendU64(appendU64(make([]byte, 0, 16), at), seq)
}

// prefixed returns p 0 rest.
func prefixed(p string, rest ...[]byte) []byte {
	n := len(p) + 1
	for _, r := range rest {
		n += len(r)
	}
	b := make([]byte, 0, n)
	b = append(append(b, p...), 0)
	for _, r := range rest {
		b = append(b, r...)
	}
	return b
}

// copyTimeKey is queued(8) id, the key of bCopiesByTime and bUnopened
// (id is record.Copy.ID).
func copyTimeKey(c *record.Copy) []byte {
	id := c.ID()
	return append(appendU64(make([]byte, 0, 8+len(id)), ts(c.QueuedAt)), id...)
}

func copyRcptKey(c *record.Copy) []byte {
	return prefixed(normAddr(c.Recipient), copyTimeKey(c))
}

// timeIndexValue is flags id 0 rcpt: enough to delete an open and its
// index entries, and to fix the counters, without reading anything else.
func timeIndexValue(flags byte, id, rcpt string) []byte {
	b := make([]byte, 0, 2+len(id)+len(rcpt))
	b = append(append(append(b, flags), id...), 0)
	return append(b, rcpt...)
}

func parseTimeIndexValue(v []byte) (flags byte, id, rcpt string, ok bool) {
	if len(v) < 2 {
		return 0, "", "", false
	}
	i := bytes.IndexByte(v[1:], 0)
	if i < 0 {
		return 0, "", "", false
	}
	return v[0], string(v[1 : 1+i]), string(v[2+i:]), true
}

// minute is the per-IP counter slot of t.
func minute(t time.Time) uint64 {
	m := t.Unix() / 60
	if m < 0 {
		return 0
	}
	return uint64(m)
}

// prefixEnd returns the smallest key greater than every key with prefix p,
// where p ends with the 0x00 separator.
func prefixEnd(p []byte) []byte {
	e := append([]byte(nil), p...)
	e[len(e)-1]++
	return e
}

// clampLimit applies the contract's default of 100 and cap of 500.
func clampLimit(n int) int {
	if n <= 0 {
		return 100
	}
	return min(n, 500)
}
