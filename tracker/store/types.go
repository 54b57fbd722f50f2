package store

import "time"

// Open is one recorded open, joined with its copy, as CONTRACT.md's OPEN.
type Open struct {
	TrackingID string     `json:"tracking_id"`
	Recipient  string     `json:"recipient"`
	Subject    string     `json:"subject"`
	MessageID  string     `json:"message_id"`
	SentAt     *time.Time `json:"sent_at"` // null when the copy was not sent yet
	OpenedAt   time.Time  `json:"opened_at"`
	IP         string     `json:"ip"`
	UserAgent  string     `json:"user_agent"`
	Bot        bool       `json:"bot"`
	BotType    string     `json:"bot_type"` // "" for humans; apple_mpp, scanner, prefetch
	Proxy      string     `json:"proxy"`    // "" or gmail, yahoo, outlook, ...
	First      bool       `json:"first"`    // first human open of this copy
	Reason     string     `json:"reason"`   // the rule that decided ("" for opens stored before reasons)
	Country    string     `json:"country,omitempty"`
	City       string     `json:"city,omitempty"`
}

// Hit is what the pixel handler asks the store to record: a genuine token
// was fetched. The store applies dedup and the per-IP limit.
type Hit struct {
	TrackingID string
	At         time.Time
	IP         string
	UserAgent  string
	Bot        bool
	BotType    string
	Proxy      string
	Reason     string // the rule that decided
	Country    string
	City       string
}

// Message is one recipient's copy, tracked (with its open counts) or not
// (TrackingID "", with the reason), as CONTRACT.md's MESSAGE.
type Message struct {
	TrackingID string     `json:"tracking_id"`
	Recipient  string     `json:"recipient"`
	From       string     `json:"from"`
	Subject    string     `json:"subject"`
	MessageID  string     `json:"message_id"`
	QueuedAt   time.Time  `json:"queued_at"`
	SentAt     *time.Time `json:"sent_at"`
	Status     string     `json:"status"`
	LastError  string     `json:"last_error"`
	Tracked    bool       `json:"tracked"`
	// UntrackedReason is why an untracked copy has no pixel ("excluded",
	// "sender", "no HTML part", ... see record.Copy); "" when tracked.
	UntrackedReason string     `json:"untracked_reason"`
	OpensTotal      int        `json:"opens_total"`
	OpensHuman      int        `json:"opens_human"`
	FirstHumanOpen  *time.Time `json:"first_human_open"`
	// Key is what the store keeps the copy under: the tracking id, or
	// for an untracked copy record.UntrackedID. It is not part of
	// MESSAGE; the dashboard links a copy's timeline with it.
	Key             string     `json:"-"`
	ClicksTotal     int        `json:"clicks_total"`
	ClicksHuman     int        `json:"clicks_human"`
	FirstHumanClick *time.Time `json:"first_human_click"`
	// Account names the upstream account of the copy ("default" for
	// [upstream]; "" in records made before accounts existed).
	Account string `json:"account"`
	// SentFolder: "pending", "replaced", "failed: REASON" or "off" (see
	// record.Copy.SentFolder).
	SentFolder string `json:"sent_folder"`
}

// Click is one recorded click, joined with its copy and link, as
// CONTRACT.md's CLICK.
type Click struct {
	TrackingID string    `json:"tracking_id"`
	Recipient  string    `json:"recipient"`
	Subject    string    `json:"subject"`
	URL        string    `json:"url"` // "" for the honeypot
	Link       int       `json:"-"`   // its number in the copy (0: the honeypot)
	ClickedAt  time.Time `json:"clicked_at"`
	IP         string    `json:"ip"`
	UserAgent  string    `json:"user_agent"`
	Bot        bool      `json:"bot"`
	BotType    string    `json:"bot_type"`
	Reason     string    `json:"reason"`
	First      bool      `json:"first"` // first human click of this copy
	Country    string    `json:"country,omitempty"`
	City       string    `json:"city,omitempty"`
}

// ClickHit is what the click handler asks the store to record: a genuine
// link token was fetched with GET. Bot, BotType and Reason are the open
// rules' verdict; the store applies the click rules (classify.ClickRules)
// over the copy's clicks, dedup and the per-IP limit.
type ClickHit struct {
	TrackingID string
	Link       int // 0: the honeypot
	At         time.Time
	IP         string
	UserAgent  string
	Bot        bool
	BotType    string
	Reason     string
	Country    string
	City       string
}

// ClickQuery selects clicks as OpenQuery selects opens.
type ClickQuery = OpenQuery

// OpenQuery selects opens: of one copy (ID), of one recipient (To,
// case-insensitive), or the most recent; Since filters by opened_at.
// Results are newest first; Limit <= 0 means 100, and it is capped at 500.
type OpenQuery struct {
	ID    string
	To    string
	Since time.Time
	Limit int
}

// MessageQuery selects copies, newest queued first. Unopened keeps copies
// with no human open.
type MessageQuery struct {
	ID       string // one copy by tracking id (the other fields are ignored)
	To       string
	Since    time.Time
	Unopened bool
	Limit    int
}

// Stats is the store's part of `pixelrelay status`.
type Stats struct {
	Path        string `json:"path"`
	SizeBytes   int64  `json:"size_bytes"`
	FreeBytes   int64  `json:"free_bytes"`       // bytes in free pages
	Copies      int    `json:"copies"`           // copy records, tracked or not
	Untracked   int    `json:"copies_untracked"` // of which untracked
	Opens       int    `json:"opens"`
	OpensHuman  int    `json:"opens_human"`
	Clicks      int    `json:"clicks"`
	ClicksHuman int    `json:"clicks_human"`
	Dropped     int64  `json:"dropped"` // opens answered but not stored (store errors) since start
	// LimiterRefused counts the opens not stored since start because the
	// dedup or per-IP table was full (a flood from more distinct clients
	// than it holds; the limiter fails closed).
	LimiterRefused int64 `json:"limiter_refused"`
	// Split deployment (split.go): on a public tracker, opens of copies
	// not registered yet and opens waiting for their relay to take them;
	// on a relay, copies whose state the tracker has not been told.
	EarlyOpens  int `json:"early_opens,omitempty"`
	RelayFeed   int `json:"relay_feed,omitempty"`
	RelayOutbox int `json:"relay_outbox,omitempty"`
}

// PurgeResult reports one purge.
type PurgeResult struct {
	Deleted       int   `json:"deleted"`        // opens
	DeletedCopies int   `json:"deleted_copies"` // done copies, with their opens (counted in Deleted)
	DeletedClicks int   `json:"deleted_clicks"` // clicks older than the cutoff (a purged copy's go with it, uncounted)
	SizeBefore    int64 `json:"size_before"`
	SizeAfter     int64 `json:"size_after"`
	Compacted     bool  `json:"compacted"`
	DurationMS    int64 `json:"duration_ms"`
}
