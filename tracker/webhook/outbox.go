package webhook

import "time"

// Outbox is the store's side of delivery: the events waiting per endpoint
// and each endpoint's state. *store.Store implements it. Each endpoint's
// worker is the only writer of that endpoint's state.
type Outbox interface {
	// SetWebhooks tells the store which endpoints take which events. From
	// then on the store calls wake, after each commit, with the names of
	// the endpoints that got new events.
	SetWebhooks(targets []Target, wake func(names []string))
	// PendingEvents returns up to n of the endpoint's events, oldest
	// first.
	PendingEvents(name string, n int) ([]Event, error)
	// WebhookState returns the endpoint's state (zero if it has none).
	WebhookState(name string) (State, error)
	// RecordWebhook saves the outcome of a round of attempts in one
	// transaction: the events in done are deleted, and so, when
	// expireBefore is not zero, are the waiting events created before it
	// (counted in st.Expired); st becomes the endpoint's state. It
	// returns how many events expired.
	RecordWebhook(name string, done []uint64, expireBefore time.Time, st State) (expired int, err error)
	// DisableWebhook saves st (Disabled set) and deletes the endpoint's
	// waiting events (counted in st.Dropped); it returns how many.
	DisableWebhook(name string, st State) (dropped int, err error)
	// WebhookBacklog counts the endpoint's waiting events and returns the
	// creation time of the oldest.
	WebhookBacklog(name string) (n int, oldest time.Time, err error)
	// PurgeWebhookEvents deletes the events created before before of every
	// endpoint for which keep is false (endpoints removed from the
	// config), and returns how many.
	PurgeWebhookEvents(before time.Time, keep func(name string) bool) (int, error)
}

// State is one endpoint's delivery state, kept in the store.
type State struct {
	// URL is the endpoint URL this state is about; a different configured
	// URL starts afresh (enabled, no failures).
	URL            string
	Disabled       bool // a 410 Gone answer: no events are kept or sent
	DisabledReason string
	DisabledAt     time.Time
	Failures       int       // failed attempts since the last success
	NextAttempt    time.Time // zero: now
	LastSuccess    time.Time
	LastError      string
	LastErrorAt    time.Time
	Delivered      uint64 // events answered with a 2xx
	Expired        uint64 // events dropped after MaxAge without a 2xx
	Dropped        uint64 // events dropped when a 410 disabled the endpoint
}
