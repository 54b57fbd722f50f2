package store

import (
	"bytes"
	"fmt"
	bolt "go.etcd.io/bbolt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The dashboard's list of copies: newest first, a page at a time, filtered
// and searched, with every query bounded so it stays fast however big the
// database grows (see ListQuery).

// List filters.
const (
	FilterAll       = ""
	FilterOpened    = "opened"    // a human opened it
	FilterClicked   = "clicked"   // a human clicked a link
	FilterUnopened  = "unopened"  // sent, tracked, no human open (QueuedBefore: "in N days")
	FilterPending   = "pending"   // queued or deferred
	FilterFailed    = "failed"    // bounced
	FilterUntracked = "untracked" // sent without a pixel, and why
)

// Search modes.
const (
	SearchRecipient = "rcpt" // recipients starting with Search (index)
	SearchText      = "text" // recipient or subject containing Search (bounded scan)
)

// scanBudget is the most copies one List call examines when it cannot use
// an index (text search, and the opened, pending and failed filters). A
// page that ran out of budget says how far back it looked (ListPage.
// ScannedTo) and where to go on (Next).
var scanBudget = 20000

// maxRecipientGroups bounds the distinct recipients a recipient-prefix
// search merges; past it the page says TooMany (type more of the address).
const maxRecipientGroups = 200

// Cursor is a position in the list: copies strictly older than it (queued
// time, then tracking id) come next.
type Cursor struct {
	QueuedAt time.Time
	ID       string
}

// String is the cursor as it goes in a URL: UNIXNANO-ID.
func (c Cursor) String() string {
	return strconv.FormatUint(ts(c.QueuedAt), 10) + "-" + c.ID
}

// ParseCursor reads what Cursor.String wrote.
func ParseCursor(s string) (Cursor, error) {
	n, id, ok := strings.Cut(s, "-")
	v, err := strconv.ParseUint(n, 10, 64)
	if !ok || err != nil || id == "" || strings.IndexByte(id, 0) >= 0 || len(id) > 64 {
		return Cursor{}, fmt.Errorf("store: bad cursor %q", s)
	}
	return Cursor{QueuedAt: fromTS(v), ID: id}, nil
}

func (c Cursor) key() []byte {
	return append(appendU64(make([]byte, 0, 8+len(c.ID)), ts(c.QueuedAt)), c.ID...)
}

// ListQuery selects a page of the dashboard's list.
type ListQuery struct {
	Filter string
	// QueuedBefore, if set, keeps copies queued before it ("no human open
	// in 3 days": now minus 3 days).
	QueuedBefore time.Time
	Search       string
	// SearchIn is SearchRecipient, SearchText or "" (recipient when some
	// recipient starts with Search, else text).
	SearchIn string
	Before   *Cursor // nil: from the newest
	Limit    int     // default 50, at most 500
}

// ListPage is one page of the list.
type ListPage struct {
	Messages []Message `json:"messages"`
	Next     *Cursor   `json:"-"` // nil: nothing older
	SearchIn string    `json:"search_in,omitempty"`
	// ScannedTo is set when the page ran out of scanBudget before it was
	// full: copies older than it were not looked at yet (follow Next).
	ScannedTo time.Time `json:"scanned_to,omitzero"`
	// TooMany: more than maxRecipientGroups recipients start with Search;
	// the page shows the newest copies of the first ones only.
	TooMany bool `json:"too_many,omitempty"`
}

// List returns a page of copies, newest first.
func (s *Store) List(q ListQuery) (ListPage, error) {
	if q.Limit <= 0 {
		q.Limit = 50
	}
	q.Limit = min(q.Limit, 500)
	q.Search = strings.TrimSpace(q.Search)
	page := ListPage{Messages: []Message{}}
	err := s.view(func(tx *bolt.Tx) error {
		l := lister{q: q, copies: tx.Bucket(bCopies), page: &page, search: []byte(q.Search)}
		if q.Search != "" && q.SearchIn != SearchText {
			ok, err := l.byRecipientPrefix(tx.Bucket(bCopiesByRcpt))
			if ok || err != nil || q.SearchIn == SearchRecipient {
				page.SearchIn = SearchRecipient
				return err
			}
		}
		if q.Search != "" {
			page.SearchIn = SearchText
		}
		idx := tx.Bucket(bCopiesByTime)
		if q.Filter == FilterUnopened {
			idx = tx.Bucket(bUnopened)
		}
		return l.scan(idx)
	})
	return page, err
}

// lister builds one page in a read transaction.
type lister struct {
	q      ListQuery
	copies *bolt.Bucket
	page   *ListPage
	search []byte
}

// upper is the first key below which the page starts: the cursor, or the
// QueuedBefore bound, whichever is older.
func (l *lister) upper() []byte {
	var k []byte
	if l.q.Before != nil {
		k = l.q.Before.key()
	}
	if !l.q.QueuedBefore.IsZero() {
		qb := appendU64(nil, ts(l.q.QueuedBefore))
		if k == nil || bytes.Compare(qb, k) < 0 {
			k = qb
		}
	}
	return k
}

// scan walks a time index (queued(8) id) newest first from upper(),
// keeping the copies that pass the filter and search, examining at most
// scanBudget of them unless the index is the filter itself.
func (l *lister) scan(idx *bolt.Bucket) error {
	budget := scanBudget
	if l.q.Filter == FilterAll && l.q.Search == "" {
		budget = -1 // every entry is a result: the limit bounds it
	}
	c := idx.Cursor()
	k, v := seekBelow(c, l.upper())
	var last []byte
	for ; k != nil; k, v = c.Prev() {
		if len(k) <= 8 {
			continue
		}
		if len(l.page.Messages) == l.q.Limit {
			l.setNext(last)
			return nil
		}
		if budget == 0 {
			l.setNext(last)
			l.page.ScannedTo = fromTS(beU64(last))
			return nil
		}
		budget--
		last = k
		l.consider(k[8:], v)
	}
	return nil
}

// consider adds copy id to the page if it passes the search and filter,
// looking first at what it can read without decoding the copy: the index
// value iv (recipient and subject), then the copy's state.
func (l *lister) consider(id, iv []byte) {
	var v []byte
	if l.q.Search != "" {
		rcpt, subj, ok := peekTimeValue(iv)
		if !ok {
			if v = l.copies.Get(id); v == nil {
				return
			}
			rcpt, subj, ok = peekCopyText(v)
		}
		if ok && !containsFold(rcpt, l.search) && !containsFold(subj, l.search) {
			return
		}
	}
	if v == nil {
		if v = l.copies.Get(id); v == nil {
			return
		}
	}
	if l.q.Filter != FilterAll {
		if f, ok := peekCopyFacts(v); ok && !passFacts(l.q.Filter, f) {
			return
		}
	}
	c, err := decodeCopy(v)
	if err != nil || !l.pass(&c) {
		return // a damaged record is not listed
	}
	if l.q.Search != "" && !containsFold([]byte(c.Recipient), l.search) && !containsFold([]byte(c.Subject), l.search) {
		return
	}
	l.page.Messages = append(l.page.Messages, c.message())
}

// pass applies the filter to a decoded copy.
func (l *lister) pass(c *copyRec) bool {
	if !l.q.QueuedBefore.IsZero() && !c.QueuedAt.Before(l.q.QueuedBefore) {
		return false
	}
	f := copyFacts{status: []byte(c.Status), opensHuman: uint64(max(c.OpensHuman, 0)), untracked: !c.Tracked(),
		clicksHuman: uint64(max(c.ClicksHuman, 0))}
	return passFacts(l.q.Filter, f)
}

func (l *lister) setNext(k []byte) {
	if len(k) > 8 {
		l.page.Next = &Cursor{QueuedAt: fromTS(beU64(k)), ID: string(k[8:])}
	}
}

// seekBelow positions c on the last key strictly below upper (the last
// key at all when upper is nil).
func seekBelow(c *bolt.Cursor, upper []byte) ([]byte, []byte) {
	if upper == nil {
		return c.Last()
	}
	if k, _ := c.Seek(upper); k == nil {
		return c.Last()
	}
	return c.Prev()
}

// byRecipientPrefix fills the page from the recipient index: the newest
// copies (below the cursor, passing the filter) of every recipient that
// starts with the search, merged. It reports whether any recipient
// matched. Each recipient's walk gets an equal share of scanBudget; where
// one ran out, the page ends at the newest such point (ScannedTo).
func (l *lister) byRecipientPrefix(idx *bolt.Bucket) (bool, error) {
	groups := l.recipientGroups(idx)
	if len(groups) == 0 {
		return false, nil
	}
	share := max(scanBudget/len(groups), l.q.Limit+1)
	var hits [][]byte // queued(8) id
	var cut []byte    // the newest point where a group's walk stopped early
	for _, g := range groups {
		h, stop := l.walkGroup(idx, g, share)
		hits = append(hits, h...)
		if stop != nil && bytes.Compare(stop, cut) > 0 {
			cut = stop
		}
	}
	sort.Slice(hits, func(i, j int) bool { return bytes.Compare(hits[i], hits[j]) > 0 })
	n := len(hits)
	if cut != nil {
		n = sort.Search(len(hits), func(i int) bool { return bytes.Compare(hits[i], cut) < 0 })
	}
	for i := 0; i < n && i < l.q.Limit; i++ {
		v := l.copies.Get(hits[i][8:])
		c, err := decodeCopy(v)
		if v == nil || err != nil {
			continue // a damaged record is not listed
		}
		l.page.Messages = append(l.page.Messages, c.message())
	}
	switch {
	case n > l.q.Limit:
		l.setNext(hits[l.q.Limit-1])
	case cut != nil:
		l.setNext(cut)
		l.page.ScannedTo = fromTS(beU64(cut))
	}
	return true, nil
}

// recipientGroups returns the index prefixes (rcpt 0) of the recipients
// that start with the search, at most maxRecipientGroups of them.
func (l *lister) recipientGroups(idx *bolt.Bucket) [][]byte {
	prefix := []byte(normAddr(l.q.Search))
	if len(prefix) == 0 || bytes.IndexByte(prefix, 0) >= 0 {
		return nil
	}
	var groups [][]byte
	c := idx.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); {
		sep := bytes.IndexByte(k, 0)
		if sep < 0 {
			k, _ = c.Next()
			continue
		}
		if len(groups) == maxRecipientGroups {
			l.page.TooMany = true
			break
		}
		g := append([]byte(nil), k[:sep+1]...)
		groups = append(groups, g)
		k, _ = c.Seek(prefixEnd(g))
	}
	return groups
}

// walkGroup returns the keys (queued(8) id) of up to Limit+1 copies of one
// recipient below the page's upper bound that pass the filter, newest
// first, examining at most budget entries; stop is the last key examined
// when the budget ran out first.
func (l *lister) walkGroup(idx *bolt.Bucket, group []byte, budget int) (hits [][]byte, stop []byte) {
	start := prefixEnd(group)
	if up := l.upper(); up != nil {
		start = append(append([]byte(nil), group...), up...)
	}
	c := idx.Cursor()
	for k, _ := seekBelow(c, start); k != nil && bytes.HasPrefix(k, group) && len(hits) <= l.q.Limit; k, _ = c.Prev() {
		rest := k[len(group):]
		if len(rest) <= 8 {
			continue
		}
		if budget == 0 {
			return hits, stop
		}
		budget--
		stop = append(stop[:0], rest...)
		if l.q.Filter != FilterAll && !l.passID(rest[8:]) {
			continue
		}
		hits = append(hits, append([]byte(nil), rest...))
	}
	return hits, nil
}

// passID applies the filter to copy id.
func (l *lister) passID(id []byte) bool {
	v := l.copies.Get(id)
	if v == nil {
		return false
	}
	if f, ok := peekCopyFacts(v); ok {
		return passFacts(l.q.Filter, f)
	}
	c, err := decodeCopy(v)
	return err == nil && l.pass(&c)
}

// containsFold reports whether sub is in s, ignoring case (Unicode simple
// folding, as bytes.EqualFold), without allocating.
func containsFold(s, sub []byte) bool {
	if bytes.Contains(s, sub) {
		return true
	}
	for i := 0; i+len(sub) <= len(s); i++ {
		if i > 0 && s[i]&0xC0 == 0x80 {
			continue // not at the start of a character
		}
		if bytes.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// ByKey returns the copy stored under key (Message.Key): a tracking id, or
// an untracked copy's record.UntrackedID, which Messages does not reach.
func (s *Store) ByKey(key string) (Message, bool, error) {
	var m Message
	var found bool
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bCopies).Get([]byte(key))
		if v == nil {
			return nil
		}
		c, err := decodeCopy(v)
		if err != nil {
			return fmt.Errorf("store: copy %s: %w", key, err)
		}
		m, found = c.message(), true
		return nil
	})
	return m, found, err
}
