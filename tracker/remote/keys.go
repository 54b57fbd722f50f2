package remote

import (
	"context"
	"fmt"
	"time"

	"pixelrelay/tracker/token"
)

// RelayKeys are the keys a relay's own HTTP server works with when its
// tracker runs elsewhere: tokens are the tracker's (the relay key), the
// admin key is the relay's own. Rotate asks the tracker for a new version,
// as tracking keys belong to it. It implements httpd.Keys.
type RelayKeys struct {
	Local  *token.Keyring // the relay's secrets file: its admin key
	Remote *token.RemoteKeys
	Client *Client
}

// Verify checks a token against the tracker's keys.
func (k *RelayKeys) Verify(tok string) (string, bool) { return k.Remote.Verify(tok) }

// Current is the version the relay mints with.
func (k *RelayKeys) Current() int { return k.Remote.Current() }

// AdminKey is the relay's own admin key.
func (k *RelayKeys) AdminKey() string { return k.Local.AdminKey() }

// rotateTimeout bounds a rotation at the tracker.
const rotateTimeout = 15 * time.Second

// Rotate makes the tracker rotate its tracking keys and adopts them.
func (k *RelayKeys) Rotate() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), rotateTimeout)
	defer cancel()
	resp, err := k.Client.Rotate(ctx)
	if err != nil {
		return 0, fmt.Errorf("tracking keys belong to the tracker (tracker.remote_url), which could not rotate them: %w", err)
	}
	if _, err := k.Remote.SetKeys(resp.CurrentVersion, resp.TrackingKeys); err != nil {
		return 0, err
	}
	return resp.CurrentVersion, nil
}
