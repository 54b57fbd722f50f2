package ui

import "pixelrelay/tracker/store"

// messageExtras reads the MESSAGE fields that arrive with other parts of
// the work (clicks, account, Sent folder: zero until the store has them).
func messageExtras(m store.Message) extras {
	e := extras{Tracked: m.Tracked, UntrackedReason: m.UntrackedReason, ClicksTotal: m.ClicksTotal, ClicksHuman: m.ClicksHuman,
		Account: m.Account, SentFolder: m.SentFolder}
	if e.Account == "default" { // [upstream]: named only where there are others
		e.Account = ""
	}
	if m.FirstHumanClick != nil {
		e.FirstHumanClick = *m.FirstHumanClick
	}
	return e
}

// openReason is the rule that classified an open.
func openReason(o store.Open) string { return o.Reason }
