package httpd

import (
	"pixelrelay/tracker/record"
	"pixelrelay/tracker/store"
)

// The admin API's response bodies. The CLI decodes the same types, and its
// --json output prints exactly these.

// OpensResponse is GET /api/opens.
type OpensResponse struct {
	Opens []store.Open `json:"opens"`
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
	Version            string         `json:"version"`
	ConfigFile         string         `json:"config_file"` // "" = built-in defaults
	DataDir            string         `json:"data_dir"`
	SMTPListen         string         `json:"smtp_listen"`
	HTTPListen         string         `json:"http_listen"`
	Upstream           string         `json:"upstream"` // URL without credentials
	TrackingKeyVersion int            `json:"tracking_key_version"`
	Queue              map[string]int `json:"queue"` // "queued", "deferred" -> count
	Database           store.Stats    `json:"database"`
}

// RotateResponse is POST /api/keys/rotate.
type RotateResponse struct {
	Version int `json:"version"`
}

// PurgeResponse is POST /api/purge.
type PurgeResponse = store.PurgeResult

// ErrorResponse is any non-2xx answer.
type ErrorResponse struct {
	Error string `json:"error"`
}
