package pg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"

	"pixelrelay/tracker/store"
)

// Live views across processes: every write transaction with changes
// sends them with NOTIFY (delivered when it commits), and every process
// LISTENs on its own connection and hands what other processes committed
// to its subscribers (Subscribe), so a dashboard on any process updates
// with every process's opens. Changes too many for one notification
// (PostgreSQL takes under 8000 bytes) are announced as a reload.

const notifyChannel = "pixelrelay_changes"

// maxNotify bounds a notification's payload.
const maxNotify = 7000

// notice is a notification's payload.
type notice struct {
	Node    string         `json:"n"`
	Changes []store.Change `json:"c,omitempty"`
	Reload  bool           `json:"r,omitempty"`
}

func newNode() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// notify sends a transaction's changes to the other processes.
func (s *Store) notify(ctx context.Context, tx pgx.Tx, changes []store.Change) error {
	if len(changes) == 0 {
		return nil
	}
	b, err := json.Marshal(notice{Node: s.node, Changes: changes})
	if err != nil || len(b) > maxNotify {
		b, _ = json.Marshal(notice{Node: s.node, Reload: true})
	}
	_, err = tx.Exec(ctx, "SELECT pg_notify($1, $2)", notifyChannel, string(b))
	return err
}

// listen passes the other processes' changes to this one's subscribers
// until ctx ends, connecting again after a failure.
func (s *Store) listen(ctx context.Context) {
	defer close(s.listening)
	for ctx.Err() == nil {
		err := s.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("store: live updates from other processes paused; connecting again", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
}

func (s *Store) listenOnce(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, s.url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var msg notice
		if json.Unmarshal([]byte(n.Payload), &msg) != nil || msg.Node == s.node {
			continue
		}
		if msg.Reload {
			s.feed.Reload()
		} else {
			s.feed.Publish(msg.Changes)
		}
	}
}
