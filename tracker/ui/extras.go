package ui

import "pixelrelay/tracker/store"

// messageExtras reads the MESSAGE fields that arrive with other parts of
// the work (clicks, account, Sent folder: zero until the store has them).
func messageExtras(m store.Message) extras {
	return extras{Tracked: m.Tracked, UntrackedReason: m.UntrackedReason}
}

// openReason is the rule that classified an open.
func openReason(o store.Open) string { return o.Reason }
