package cli

import (
	"fmt"
	"time"

	"pixelrelay/tracker/httpd"
	"pixelrelay/tracker/remote"
)

// statusResponse is /api/status with its "remote" part typed.
type statusResponse struct {
	httpd.StatusResponse
	Remote *remote.Status `json:"remote"`
}

// splitRows are status lines of a split deployment: a public tracker's
// backlogs, or a relay's view of its tracker.
func splitRows(st *statusResponse, now time.Time) [][]string {
	var rows [][]string
	db := st.Database
	if st.Role == "tracker" {
		rows = append(rows, []string{"role", "tracker only (serve --tracker-only): relays register copies at /relay/"})
		rows = append(rows, []string{"early opens", fmt.Sprintf("%d (of copies not registered yet; joined when they are)", db.EarlyOpens)})
		rows = append(rows, []string{"relay feed", fmt.Sprintf("%d opens waiting for their relay to take them", db.RelayFeed)})
	}
	if r := st.Remote; r != nil {
		state := "reachable"
		if !r.Reachable {
			state = "not reachable"
			if r.LastError != "" {
				state += ": " + r.LastError
			}
		}
		contact := stampPtr(r.LastContact, now, "never")
		details := "ids and times only (tracker.share_details = false)"
		if r.ShareDetails {
			details = "with recipients and subjects (tracker.share_details = true)"
		}
		rows = append(rows,
			[]string{"remote tracker", fmt.Sprintf("%s as relay %q, %s", r.URL, r.Relay, state)},
			[]string{"last contact", contact},
			[]string{"registrations", fmt.Sprintf("%d waiting; %d sent since start, %d opens taken", r.Waiting, r.Registered, r.Imported)},
			[]string{"tracker learns", details})
		if r.ClockSkewSec != 0 {
			rows = append(rows, []string{"clock", fmt.Sprintf("the tracker's clock is %s off this one (registered times are corrected)", time.Duration(r.ClockSkewSec*float64(time.Second)))})
		}
	}
	for _, r := range rows {
		r[1] = clean(r[1])
	}
	return rows
}

// trackerOnlyRows drops the lines about the relay a tracker-only server
// does not run.
func trackerOnlyRows(rows [][]string) [][]string {
	out := rows[:0]
	for _, r := range rows {
		switch r[0] {
		case "smtp listen", "upstream", "queue":
			continue
		}
		out = append(out, r)
	}
	return out
}
