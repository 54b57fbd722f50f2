package httpd

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
)

// fakeStore is an in-memory Store that records what it was asked.
type fakeStore struct {
	mu        sync.Mutex
	copies    map[string]record.Copy
	hits      []store.Hit
	copyErr   error
	recordErr error
	opens     []store.Open
	messages  []store.Message
	openQ     []store.OpenQuery
	msgQ      []store.MessageQuery
	purges    []time.Time
	purgeWait chan struct{} // when set, Purge blocks until it is closed
	purgeIn   chan struct{} // when set, Purge signals it started
	block     chan struct{} // when set, Record blocks until it is closed
	copyCalls int
}

func newFakeStore() *fakeStore { return &fakeStore{copies: map[string]record.Copy{}} }

func (f *fakeStore) add(c record.Copy) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.copies[c.TrackingID] = c
}

func (f *fakeStore) Record(h store.Hit) (bool, error) {
	f.mu.Lock()
	block := f.block
	f.mu.Unlock()
	if block != nil {
		<-block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.recordErr != nil {
		return false, f.recordErr
	}
	f.hits = append(f.hits, h)
	return true, nil
}

func (f *fakeStore) Copy(id string) (record.Copy, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.copyCalls++
	if f.copyErr != nil {
		return record.Copy{}, false, f.copyErr
	}
	c, ok := f.copies[id]
	return c, ok, nil
}

func (f *fakeStore) Opens(q store.OpenQuery) ([]store.Open, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.openQ = append(f.openQ, q)
	return f.opens, nil
}

func (f *fakeStore) Messages(q store.MessageQuery) ([]store.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgQ = append(f.msgQ, q)
	return f.messages, nil
}

func (f *fakeStore) Stats() (store.Stats, error) {
	return store.Stats{Path: "/tmp/x.db", SizeBytes: 4096, Copies: len(f.copies)}, nil
}

func (f *fakeStore) Purge(ctx context.Context, before time.Time, progress func(int)) (store.PurgeResult, error) {
	f.mu.Lock()
	f.purges = append(f.purges, before)
	wait, in := f.purgeWait, f.purgeIn
	f.mu.Unlock()
	if in != nil {
		in <- struct{}{}
	}
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
			return store.PurgeResult{}, ctx.Err()
		}
	}
	if progress != nil {
		progress(3)
	}
	return store.PurgeResult{Deleted: 3, SizeBefore: 8192, SizeAfter: 4096, Compacted: true, DurationMS: 1}, nil
}

func (f *fakeStore) hitList() []store.Hit {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]store.Hit(nil), f.hits...)
}

func (f *fakeStore) purgeList() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.purges...)
}

// fakeKeys accepts the tokens it was given, in any letter case.
type fakeKeys struct {
	mu      sync.Mutex
	tokens  map[string]string // lowercase token -> id
	admin   string
	version int
	calls   int
}

func (k *fakeKeys) Verify(tok string) (string, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls++
	id, ok := k.tokens[strings.ToLower(tok)]
	return id, ok
}

func (k *fakeKeys) Rotate() (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.version < 0 {
		return 0, errors.New("secrets file not writable")
	}
	k.version++
	return k.version, nil
}

func (k *fakeKeys) Current() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.version
}

func (k *fakeKeys) AdminKey() string { return k.admin }

type fakeQueue []record.QueueEntry

func (q fakeQueue) Entries() []record.QueueEntry { return append([]record.QueueEntry(nil), q...) }

func recordCopy(id string) record.Copy {
	return record.Copy{TrackingID: id, Recipient: "bob@example.com", SentAt: t0.Add(-time.Hour), Status: record.StatusSent}
}

func mustURL(p string) *url.URL {
	return &url.URL{Path: p}
}

func TestMain(m *testing.M) {
	slog.SetDefault(quiet) // the keyring logs through the default logger
	os.Exit(m.Run())
}
