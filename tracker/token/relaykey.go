package token

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// RelayKeyFormat names the relay key file's layout.
const RelayKeyFormat = "pixelrelay relay key 1"

// RelayKey is what a relay needs to work with a remote tracker: its name
// and secret there (the credential of the tracker's /relay/ API), and the
// tracker's tracking keys, which it mints tokens with. `pixelrelay keys
// export` on the tracker makes it; `pixelrelay keys import` on the relay
// writes it to tracker.remote_key_file (0600). The relay keeps the tracking
// keys up to date by itself afterwards.
type RelayKey struct {
	Format         string `json:"format"`
	Relay          string `json:"relay"`
	Secret         string `json:"secret"`
	Tracker        string `json:"tracker,omitempty"` // the tracker's tracking.base_url, a hint for remote_url
	CurrentVersion int    `json:"current_version"`
	TrackingKeys   []Key  `json:"tracking_keys"`
}

// Check reports what is wrong with a relay key, if anything.
func (rk *RelayKey) Check() error {
	if rk.Format != RelayKeyFormat {
		return fmt.Errorf("not a pixelrelay relay key (format %q, want %q)", rk.Format, RelayKeyFormat)
	}
	if !ValidRelayName(rk.Relay) {
		return fmt.Errorf("relay name %q is not valid", rk.Relay)
	}
	if !strings.HasPrefix(rk.Secret, relaySecretPrefix) || len(rk.Secret) != len(relaySecretPrefix)+2*keyBytes {
		return errors.New("secret: want pxr_ and 64 hex digits")
	}
	_, err := parseKeys(rk.TrackingKeys, rk.CurrentVersion)
	return err
}

// ParseRelayKey decodes and checks a relay key.
func ParseRelayKey(b []byte) (*RelayKey, error) {
	var rk RelayKey
	if err := json.Unmarshal(b, &rk); err != nil {
		return nil, fmt.Errorf("not a pixelrelay relay key: %v", err)
	}
	if err := rk.Check(); err != nil {
		return nil, err
	}
	sort.Slice(rk.TrackingKeys, func(i, j int) bool { return rk.TrackingKeys[i].Version < rk.TrackingKeys[j].Version })
	return &rk, nil
}

// WriteRelayKey checks rk and writes it to path atomically, mode 0600
// (temporary file, fsync, rename, fsync of the directory).
func WriteRelayKey(path string, rk *RelayKey) error {
	if err := rk.Check(); err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("relay key: %w", err)
	}
	tmp, err := writeTemp(dir, rk)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("relay key: %w", err)
	}
	return syncDir(dir)
}

// RemoteKeys is a relay's side of the tracking keys: read from its relay
// key file, minting with the current version and verifying every version
// the file holds. SetKeys replaces the keys (the tracker rotated) and
// writes the file. It implements record.Minter and is safe for concurrent
// use.
type RemoteKeys struct {
	path  string
	mu    sync.Mutex // serialises writes and reloads of the file
	state atomic.Pointer[remoteState]
}

type remoteState struct {
	rk    *RelayKey
	keys  map[int]*macKey
	stamp fileStamp // of the file rk was read from or written to
}

// fileStamp identifies a version of a file.
type fileStamp struct {
	size int64
	mod  time.Time
}

func stampOf(path string) fileStamp {
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{st.Size(), st.ModTime()}
}

// OpenRemoteKeys reads the relay key file at path. The file must be
// owned by this user and not writable by others, as the secrets file.
func OpenRemoteKeys(path string) (*RemoteKeys, error) {
	r := &RemoteKeys{path: path}
	rk, err := readRelayKey(path)
	if err != nil {
		return nil, err
	}
	if err := r.install(rk); err != nil {
		return nil, err
	}
	return r, nil
}

// readRelayKey reads and checks the relay key file at path.
func readRelayKey(path string) (*RelayKey, error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("relay key %s does not exist: run `pixelrelay keys export` on the tracker, then `pixelrelay keys import FILE` here", path)
	}
	if err != nil {
		return nil, fmt.Errorf("relay key: %w", err)
	}
	if _, err := checkSecrets(path, st.Mode().Perm(), fileOwner(st), os.Geteuid()); err != nil {
		return nil, fmt.Errorf("relay key: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("relay key: %w", err)
	}
	rk, err := ParseRelayKey(b)
	if err != nil {
		return nil, fmt.Errorf("relay key %s: %w", path, err)
	}
	return rk, nil
}

// Reload reads the file again when it changed since it was read (`keys
// import` while serve runs). A file that cannot be used is reported and
// the keys in use stay.
func (r *RemoteKeys) Reload() (changed bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if stampOf(r.path) == r.state.Load().stamp {
		return false, nil
	}
	rk, err := readRelayKey(r.path)
	if err != nil {
		return false, err
	}
	return true, r.install(rk)
}

func (r *RemoteKeys) install(rk *RelayKey) error {
	keys, err := parseKeys(rk.TrackingKeys, rk.CurrentVersion)
	if err != nil {
		return fmt.Errorf("relay key %s: %w", r.path, err)
	}
	r.state.Store(&remoteState{rk: rk, keys: keys, stamp: stampOf(r.path)})
	return nil
}

// Path is the relay key file.
func (r *RemoteKeys) Path() string { return r.path }

// Relay returns the relay's name and secret at the tracker.
func (r *RemoteKeys) Relay() (name, secret string) {
	rk := r.state.Load().rk
	return rk.Relay, rk.Secret
}

// Mint makes a fresh tracking id and its token under the current version.
func (r *RemoteKeys) Mint() (trackingID, tok string, err error) {
	st := r.state.Load()
	return mint(st.rk.CurrentVersion, st.keys[st.rk.CurrentVersion])
}

// Verify checks a token against every version the relay key holds.
func (r *RemoteKeys) Verify(tok string) (trackingID string, ok bool) {
	raw, ver, ok := parse(tok)
	if !ok {
		return "", false
	}
	key, found := r.state.Load().keys[ver]
	if !found || !check(raw, key) {
		return "", false
	}
	return idOf(raw), true
}

// LinkTokens makes the link tokens of a copy's pixel token with the
// tracker's keys (record.LinkMinter).
func (r *RemoteKeys) LinkTokens(tok string, links int) ([]string, error) {
	st := r.state.Load()
	return linkTokens(st.keys, st.rk.CurrentVersion, tok, links)
}

// VerifyLink checks a link token against the tracker's keys.
func (r *RemoteKeys) VerifyLink(tok string) (trackingID string, link int, ok bool) {
	return verifyLink(r.state.Load().keys, tok)
}

// Current is the version new tokens are minted with.
func (r *RemoteKeys) Current() int { return r.state.Load().rk.CurrentVersion }

// Versions lists the versions the relay key holds, oldest first.
func (r *RemoteKeys) Versions() []int {
	var out []int
	for _, k := range r.state.Load().rk.TrackingKeys {
		out = append(out, k.Version)
	}
	return out
}

// SetKeys installs the tracker's tracking keys and writes them to the file
// first, so a restart mints with them too. It does nothing when they are
// the ones in use.
func (r *RemoteKeys) SetKeys(current int, keys []Key) (changed bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.state.Load().rk
	if old.CurrentVersion == current && sameKeys(old.TrackingKeys, keys) {
		return false, nil
	}
	next := *old
	next.CurrentVersion = current
	next.TrackingKeys = append([]Key(nil), keys...)
	sort.Slice(next.TrackingKeys, func(i, j int) bool { return next.TrackingKeys[i].Version < next.TrackingKeys[j].Version })
	if err := next.Check(); err != nil {
		return false, fmt.Errorf("tracking keys from the tracker: %w", err)
	}
	if err := WriteRelayKey(r.path, &next); err != nil {
		return false, err
	}
	return true, r.install(&next)
}

func sameKeys(a, b []Key) bool {
	if len(a) != len(b) {
		return false
	}
	m := make(map[int]string, len(a))
	for _, k := range a {
		m[k.Version] = k.Key
	}
	for _, k := range b {
		if m[k.Version] != k.Key {
			return false
		}
	}
	return true
}
