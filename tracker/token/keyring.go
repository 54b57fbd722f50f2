package token

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// AdminKeyEnv overrides the admin key stored in the secrets file.
const AdminKeyEnv = "PIXELRELAY_ADMIN_KEY"

// keyBytes is the size of the admin key and of every tracking key.
const keyBytes = 32

// secretsFile is the JSON layout of data_dir/secrets.json.
type secretsFile struct {
	AdminKey       string `json:"admin_key"`
	CurrentVersion int    `json:"current_version"`
	TrackingKeys   []Key  `json:"tracking_keys"`
	// Relays are the relays paired with this tracker (relays.go).
	Relays []relayEntry `json:"relays,omitempty"`
}

// Key is one tracking key version, as the secrets file and a relay key
// file hold it.
type Key struct {
	Version   int       `json:"version"`
	Key       string    `json:"key"` // hex, 32 bytes
	CreatedAt time.Time `json:"created_at"`
}

// Keyring holds the secrets: the admin key and the tracking key versions.
// It mints tokens with the current version and verifies tokens of every
// version still in the file. It is safe for concurrent use.
//
// The file is read when the keyring is opened and again by Rotate and
// Reload; to retire a version, see the package documentation.
type Keyring struct {
	path string
	log  *slog.Logger

	mu    sync.Mutex // serialises loads and rotations
	state atomic.Pointer[keyState]
}

// keyState is an immutable snapshot of the secrets; readers load it
// without locking.
type keyState struct {
	admin   string
	current int
	keys    map[int]*macKey
	relays  []relayEntry
}

// OpenKeyring opens the secrets file at path (data_dir/secrets.json),
// creating it with mode 0600, a random 32-byte admin key and tracking key
// version 1 when it does not exist. An existing file readable by group or
// others is set back to 0600 and a warning is logged; one writable by them,
// or owned by another user, is refused (see fixMode).
func OpenKeyring(path string) (*Keyring, error) {
	k := &Keyring{path: path, log: slog.Default()}
	if err := k.load(true); err != nil {
		return nil, err
	}
	return k, nil
}

// Path returns the secrets file's path.
func (k *Keyring) Path() string { return k.path }

// Mint makes a fresh tracking id and its token under the current key
// version. It implements record.Minter.
func (k *Keyring) Mint() (trackingID, tok string, err error) {
	st := k.state.Load()
	return mint(st.current, st.keys[st.current])
}

// Verify checks a token of any letter case. It returns the tracking id when
// the token is genuine under the key version it names, and ok false for any
// damaged, forged or retired token.
func (k *Keyring) Verify(tok string) (trackingID string, ok bool) {
	raw, ver, ok := parse(tok)
	if !ok {
		return "", false
	}
	key, found := k.state.Load().keys[ver]
	if !found || !check(raw, key) {
		return "", false
	}
	return idOf(raw), true
}

// Current returns the key version new tokens are made with.
func (k *Keyring) Current() int {
	return k.state.Load().current
}

// AdminKey returns the admin key: $PIXELRELAY_ADMIN_KEY when set, else the
// one in the secrets file.
func (k *Keyring) AdminKey() string {
	if v := os.Getenv(AdminKeyEnv); v != "" {
		return v
	}
	return k.state.Load().admin
}

// Rotate adds a new tracking key version and makes it current. Tokens of
// older versions keep verifying. The file is re-read first, so versions
// removed by hand are not written back, and then replaced atomically.
func (k *Keyring) Rotate() (newVersion int, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	f, err := readSecrets(k.path)
	if err != nil {
		return 0, err
	}
	next := 1
	for _, tk := range f.TrackingKeys {
		next = max(next, tk.Version+1)
	}
	if next > MaxVersion {
		return 0, ErrVersion
	}
	key, err := randomHex()
	if err != nil {
		return 0, err
	}
	f.TrackingKeys = append(f.TrackingKeys, Key{Version: next, Key: key, CreatedAt: time.Now().UTC()})
	f.CurrentVersion = next
	if err := writeSecrets(k.path, f); err != nil {
		return 0, err
	}
	if err := k.apply(f); err != nil {
		return 0, err
	}
	k.log.Info("tracking key rotated", "version", next, "path", k.path)
	return next, nil
}

// Reload re-reads the secrets file, e.g. after a version was retired by
// hand. The keyring is unchanged when the file is missing or invalid.
func (k *Keyring) Reload() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.loadLocked(false)
}

// load reads (or, if create is set, first creates) the secrets file.
func (k *Keyring) load(create bool) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.loadLocked(create)
}

func (k *Keyring) loadLocked(create bool) error {
	if create {
		if err := createSecrets(k.path); err != nil {
			return err
		}
	}
	if err := k.fixMode(); err != nil {
		return err
	}
	f, err := readSecrets(k.path)
	if err != nil {
		return err
	}
	return k.apply(f)
}

// fixMode checks the secrets file's owner and mode before it is read (at
// start and on Reload). A file readable by group or others is set back to
// 0600 and a warning names it and its old mode. A file that another user
// could have written (group- or world-writable, or owned by another user)
// is refused: its keys may have been replaced, so tokens and the admin key
// could be forged; pixelrelay will not start on it until its owner checks
// it (chmod 600, chown).
func (k *Keyring) fixMode() error {
	st, err := os.Stat(k.path)
	if err != nil {
		return fmt.Errorf("secrets %s: %w", k.path, err)
	}
	mode := st.Mode().Perm()
	tighten, err := checkSecrets(k.path, mode, fileOwner(st), os.Geteuid())
	if err != nil || !tighten {
		return err
	}
	if err := os.Chmod(k.path, 0o600); err != nil {
		return fmt.Errorf("secrets %s has mode %#o and cannot be set to 0600: %w", k.path, mode, err)
	}
	k.log.Warn("secrets file was readable by others; mode set to 0600", "path", k.path, "old_mode", fmt.Sprintf("%#o", mode))
	return nil
}

// checkSecrets decides about a secrets file of that mode and owner (-1:
// unknown) read by user euid: refuse it (err), set it to 0600 (tighten),
// or take it as is.
func checkSecrets(path string, mode fs.FileMode, owner, euid int) (tighten bool, err error) {
	if owner >= 0 && owner != euid {
		return false, fmt.Errorf("secrets %s is owned by uid %d, not by uid %d running pixelrelay: another user could have replaced its keys; check it, then chown it", path, owner, euid)
	}
	if mode&0o022 != 0 {
		return false, fmt.Errorf("secrets %s has mode %#o: writable by group or others, so its keys could have been replaced; check it, then chmod 600 it", path, mode)
	}
	return mode&0o077 != 0, nil
}

// apply installs a validated secrets file into the keyring.
func (k *Keyring) apply(f *secretsFile) error {
	keys, err := parseKeys(f.TrackingKeys, f.CurrentVersion)
	if err != nil {
		return fmt.Errorf("secrets %s: %w", k.path, err)
	}
	if f.AdminKey == "" {
		return fmt.Errorf("secrets %s: admin_key is empty", k.path)
	}
	k.state.Store(&keyState{admin: f.AdminKey, current: f.CurrentVersion, keys: keys, relays: f.Relays})
	return nil
}

// parseKeys checks tracking key versions and prepares them for use;
// current must be one of them.
func parseKeys(list []Key, current int) (map[int]*macKey, error) {
	keys := make(map[int]*macKey, len(list))
	for _, tk := range list {
		b, err := hex.DecodeString(tk.Key)
		if err != nil || len(b) != keyBytes {
			return nil, fmt.Errorf("tracking key version %d: want %d hex-encoded bytes", tk.Version, keyBytes)
		}
		if tk.Version < 1 || tk.Version > MaxVersion {
			return nil, fmt.Errorf("tracking key version %d out of range 1..%d", tk.Version, MaxVersion)
		}
		if _, dup := keys[tk.Version]; dup {
			return nil, fmt.Errorf("tracking key version %d appears twice", tk.Version)
		}
		keys[tk.Version] = newMacKey(b)
	}
	if _, ok := keys[current]; !ok {
		return nil, fmt.Errorf("current_version %d has no tracking key", current)
	}
	return keys, nil
}

// AdminKey returns the admin key for the command line: $PIXELRELAY_ADMIN_KEY
// when set, else the admin key in the secrets file at secretsPath. It never
// creates the file.
func AdminKey(secretsPath string) (string, error) {
	if v := os.Getenv(AdminKeyEnv); v != "" {
		return v, nil
	}
	f, err := readSecrets(secretsPath)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("no secrets file at %s: start pixelrelay serve once to create it (or set %s)", secretsPath, AdminKeyEnv)
	}
	if err != nil {
		return "", err
	}
	if f.AdminKey == "" {
		return "", fmt.Errorf("secrets %s: admin_key is empty", secretsPath)
	}
	return f.AdminKey, nil
}

// readSecrets parses the secrets file.
func readSecrets(path string) (*secretsFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	var f secretsFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("secrets %s: %w", path, err)
	}
	sort.Slice(f.TrackingKeys, func(i, j int) bool { return f.TrackingKeys[i].Version < f.TrackingKeys[j].Version })
	return &f, nil
}

// createSecrets makes a new secrets file unless one exists. The new file
// is written and synced under a temporary name and then hard-linked into
// place, so a concurrent creator never sees a half-written file and never
// overwrites one.
func createSecrets(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	admin, err := randomHex()
	if err != nil {
		return err
	}
	key, err := randomHex()
	if err != nil {
		return err
	}
	f := &secretsFile{
		AdminKey:       admin,
		CurrentVersion: 1,
		TrackingKeys:   []Key{{Version: 1, Key: key, CreatedAt: time.Now().UTC()}},
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	tmp, err := writeTemp(dir, f)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("secrets: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	slog.Default().Info("created secrets file (admin key and tracking key version 1)", "path", path)
	return nil
}

// writeSecrets replaces the secrets file atomically (temp, fsync, rename,
// fsync of the directory), mode 0600.
func writeSecrets(path string, f *secretsFile) error {
	dir := filepath.Dir(path)
	tmp, err := writeTemp(dir, f)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("secrets: %w", err)
	}
	return syncDir(dir)
}

// writeTemp writes f (as JSON) to a new 0600 file in dir, synced, and
// returns its name.
func writeTemp(dir string, f any) (string, error) {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return "", err
	}
	t, err := os.CreateTemp(dir, ".secrets-*.tmp")
	if err != nil {
		return "", fmt.Errorf("secrets: %w", err)
	}
	name := t.Name()
	err = t.Chmod(0o600)
	if err == nil {
		_, err = t.Write(append(b, '\n'))
	}
	if err == nil {
		err = t.Sync()
	}
	if cerr := t.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", fmt.Errorf("secrets: %w", err)
	}
	return name, nil
}

// syncDir fsyncs a directory so a rename or link in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("secrets: sync %s: %w", dir, err)
	}
	return nil
}

// randomHex returns 32 random bytes, hex-encoded.
func randomHex() (string, error) {
	b := make([]byte, keyBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("secrets: random key: %w", err)
	}
	return hex.EncodeToString(b), nil
}
