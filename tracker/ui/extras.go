package ui

import "pixelrelay/tracker/store"

// messageExtras reads the MESSAGE fields that arrive with other parts of
// the work (clicks, tracked and its reason, account, Sent folder). Until
// the store records them, every copy in the store is a tracked one.
func messageExtras(m store.Message) extras {
	return extras{Tracked: true}
}

// openReason is the rule that classified an open.
func openReason(o store.Open) string { return o.Reason }
