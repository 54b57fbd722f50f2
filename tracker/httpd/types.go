package httpd

import (
	"time"

	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
	"pixelrelay/tracker/webhook"
)

// The admin API's response bodies. The CLI decodes the same types, and its
// --json output prints exactly these.

// OpensResponse is GET /api/opens.
type OpensResponse struct {
	Opens []store.Open `json:"opens"`
}

// ClicksResponse is GET /api/clicks.
type ClicksResponse struct {
	Clicks []store.Click `json:"clicks"`
}

// MessagesResponse is GET /api/messages.
type MessagesResponse struct {
	Messages []store.Message `json:"messages"`
}

// QueueResponse is GET /api/queue.
type QueueResponse struct {
	Queue []record.QueueEntry `json:"queue"`
}

// StatusResponse is GET /api/status.
type StatusResponse struct {
	Version    string `json:"version"`
	ConfigFile string `json:"config_file"` // "" = built-in defaults
	// ConfigProblem says why the config in force is not what the config
	// file says now (the file is gone, or the one found has problems).
	ConfigProblem      string `json:"config_problem,omitempty"`
	DataDir            string `json:"data_dir"`
	SMTPListen         string `json:"smtp_listen"`
	HTTPListen         string `json:"http_listen"`
	Upstream           string `json:"upstream"` // URL without credentials
	TrackingKeyVersion int    `json:"tracking_key_version"`
	// Queue counts the copies waiting by status ("queued", "deferred")
	// and, under QueueDamaged, the damaged spool entries kept aside.
	Queue    map[string]int `json:"queue"`
	Database store.Stats    `json:"database"`
	// Accounts are the upstream accounts: [upstream] ("default") first,
	// then each [[accounts]] block.
	Accounts []AccountStatus `json:"accounts"`
	// Webhooks is each endpoint's state, as GET /api/webhooks.
	Webhooks []webhook.Status `json:"webhooks"`
	// Remote is, on a relay whose tracker runs elsewhere, how it stands
	// with that tracker (remote.Status); absent otherwise.
	Remote any `json:"remote,omitempty"`
	// Role is "tracker" for `serve --tracker-only`, else absent.
	Role string `json:"role,omitempty"`
	// SentFolder counts the Sent folder jobs (absent without a relay).
	SentFolder *SentFolderCounts `json:"sent_folder,omitempty"`
}

// SentFolderCounts are the Sent folder jobs in GET /api/status: waiting
// now, and done since the server started (replaced, or failed after a
// day of retries).
type SentFolderCounts struct {
	Pending  int    `json:"pending"`
	Replaced uint64 `json:"replaced"`
	Failed   uint64 `json:"failed"`
}

// AccountStatus is one upstream account in GET /api/status.
type AccountStatus struct {
	Name       string   `json:"name"`
	Upstream   string   `json:"upstream"` // URL without credentials
	Senders    []string `json:"senders"`
	SMTPUsers  []string `json:"smtp_users"`
	Auth       string   `json:"auth"`        // "password" | "oauth"
	SentFolder string   `json:"sent_folder"` // "on" | "off", as sent_folder resolves
	// Queue counts the account's waiting copies by status ("queued",
	// "deferred").
	Queue map[string]int `json:"queue"`
}

// QueueDamaged is the key, in StatusResponse.Queue, of the number of
// damaged spool entries moved aside (into DATA_DIR/spool/damaged): they
// wait for a person, not for delivery. It is present when the queue can
// count them (see DamagedCounter).
const QueueDamaged = "damaged"

// DamagedCounter is implemented by a Queue that moves damaged spool
// entries aside (*queue.Queue does): Damaged is how many it holds there.
type DamagedCounter interface {
	Damaged() int
}

// RotateResponse is POST /api/keys/rotate.
type RotateResponse struct {
	Version int `json:"version"`
}

// PurgeResponse is POST /api/purge.
type PurgeResponse = store.PurgeResult

// ReclassifyResponse is POST /api/reclassify.
type ReclassifyResponse = store.ReclassifyResult

// DashboardLoginResponse is POST /api/dashboard/login: a one-time sign-in
// link for the dashboard (Path on this server), valid until ExpiresAt.
type DashboardLoginResponse struct {
	Path      string    `json:"path"`
	ExpiresAt time.Time `json:"expires_at"`
}

// ErrorResponse is any non-2xx answer.
type ErrorResponse struct {
	Error string `json:"error"`
}
