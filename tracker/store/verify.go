package store

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	bolt "go.etcd.io/bbolt"
)

// ErrDamaged is wrapped by OpenStore's error when the database file is not a
// readable bbolt file: garbage, truncated, zeroed or overwritten pages.
var ErrDamaged = errors.New("damaged database file")

// verify reads every page of an existing database file before it is opened
// for writing. bbolt trusts the file: a truncated file faults (SIGBUS) on
// the first read beyond its end, and a zeroed or overwritten page makes the
// free-page scan of a read-write open panic in a goroutine of its own; both
// kill the process with a stack trace instead of an error. Here the file is
// opened read-only (no free-page scan) and walked in a goroutine that turns
// faults and bbolt's assertions into an error, so a damaged file is reported
// as one line naming it.
//
// The walk visits every branch and leaf page of every bucket and touches
// each value (so overflow pages are read): about the cost of the scan a
// read-write open does anyway. A missing or empty file is left to bbolt,
// which creates a new database.
func verify(path string) error {
	st, err := os.Stat(path)
	if err != nil || st.Size() == 0 {
		return nil
	}
	opt := boltOptions()
	opt.ReadOnly = true
	db, err := bolt.Open(path, 0o600, opt)
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	defer db.Close()
	done := make(chan error, 1)
	go func() { done <- walkAll(db, st.Size()) }()
	return <-done
}

// walkAll reads the whole tree; it runs in its own goroutine so that a
// memory fault in the mapped file becomes a panic it can recover from.
func walkAll(db *bolt.DB, fileSize int64) (err error) {
	debug.SetPanicOnFault(true)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrDamaged, r)
		}
	}()
	return db.View(func(tx *bolt.Tx) error {
		if tx.Size() > fileSize {
			return fmt.Errorf("%w: truncated: the file has %d bytes, its pages need %d", ErrDamaged, fileSize, tx.Size())
		}
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return walkBucket(b)
		})
	})
}

// walkBucket visits every key and value of b and of its sub-buckets.
func walkBucket(b *bolt.Bucket) error {
	var sink byte
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil {
			if sub := b.Bucket(k); sub != nil {
				if err := walkBucket(sub); err != nil {
					return err
				}
			}
			continue
		}
		if len(v) > 0 {
			sink ^= v[0] ^ v[len(v)-1]
		}
	}
	_ = sink
	return nil
}
