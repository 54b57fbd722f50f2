//go:build race

package store

// purgeTestCopies scales TestPurgeWithConcurrentRecords: the race detector
// makes bbolt ~30x slower, so -race runs purge 25k opens, plain runs 100k.
const purgeTestCopies = 250
