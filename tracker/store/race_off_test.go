//go:build !race

package store

// purgeTestCopies scales TestPurgeWithConcurrentRecords: 1000 copies with
// 100 opens each (see race_on_test.go).
const purgeTestCopies = 1000
