package cli

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	"pixelrelay/config"
	"pixelrelay/tracker/remote"
	"pixelrelay/tracker/token"
)

// Pairing a relay with a public tracker (CONTRACT.md "Where the tracker
// runs"): `keys export` on the tracker asks its running server for a relay
// key; `keys import` on the relay saves it where tracker.remote_key_file
// says. `keys relays` lists the paired relays, `keys revoke` shuts one out.

const keysHelp = `Usage: pixelrelay keys rotate [--json] [--config FILE]
       pixelrelay keys export [--name NAME] [--out FILE] [--config FILE]
       pixelrelay keys import FILE|- [--config FILE]
       pixelrelay keys relays [--json] [--config FILE]
       pixelrelay keys revoke NAME [--config FILE]

rotate makes a new tracking key version current in the running server.
New pixels use it; tokens made with older versions keep working, so mail
already sent keeps counting its opens. On a relay whose tracker runs
elsewhere (tracker.remote_url) the tracker rotates, and the relay takes
the new keys.

export, on a public tracker (serve --tracker-only), pairs a relay: it asks
the running server for a relay key named NAME (default "relay") and
writes it to FILE (mode 0600) or stdout. Exporting a name again replaces
that relay's secret: the old one stops working.

import, on the relay, saves a relay key (from FILE, or stdin with -) as
tracker.remote_key_file (default DATA_DIR/tracker-key.json, mode 0600).
Set tracker.remote_url to the tracker's URL and start (or restart) serve.

relays lists the relays paired with the tracker; revoke NAME shuts one out.

Flags:
  --name NAME     export: the relay's name (letters, digits, '.', '-', '_')
  --out FILE      export: write the relay key here instead of stdout
  --json          rotate, relays: print the admin API's JSON instead of text
  --config FILE   the config file naming the server's address and data_dir

Examples:
  pixelrelay keys rotate
  ssh tracker.example.com pixelrelay keys export --name laptop | pixelrelay keys import -
`

// runKeysPairing runs export, import, relays and revoke.
func runKeysPairing(e *env, sub string, pos []string, cfgPath, name, out string, asJSON bool) error {
	switch sub {
	case "export":
		if err := noArgs(pos); err != nil {
			return err
		}
		return e.keysExport(cfgPath, name, out)
	case "import":
		if len(pos) != 1 {
			return usagef("keys import needs one argument: the relay key file, or - for stdin")
		}
		return e.keysImport(cfgPath, pos[0])
	case "relays":
		if err := noArgs(pos); err != nil {
			return err
		}
		return e.keysRelays(cfgPath, asJSON)
	case "revoke":
		if len(pos) != 1 {
			return usagef("keys revoke needs one argument: the relay's name")
		}
		return e.keysRevoke(cfgPath, pos[0])
	}
	return usagef("unknown keys subcommand %q (there are: rotate, export, import, relays, revoke)", sub)
}

func (e *env) keysExport(cfgPath, name, out string) error {
	if !token.ValidRelayName(name) {
		return usagef("--name %q: want 1 to 64 letters, digits, '.', '-' or '_'", name)
	}
	if out != "" {
		if _, err := os.Stat(out); err == nil {
			return fmt.Errorf("%s exists; choose another --out (a relay key is never overwritten)", out)
		}
	}
	c, err := e.connect(cfgPath)
	if err != nil {
		return err
	}
	body, err := c.do(http.MethodPost, remote.PathRelays, url.Values{"name": {name}}, queryTimeout)
	var ae *apiError
	if errors.As(err, &ae) && ae.code == http.StatusNotFound {
		return fmt.Errorf("%s pairs no relays: start the tracker with `pixelrelay serve --tracker-only`", c.addr)
	}
	if err != nil {
		return err
	}
	rk, err := token.ParseRelayKey(body)
	if err != nil {
		return fmt.Errorf("the relay key from %s: %v", c.addr, err)
	}
	if out == "" {
		return printJSON(e.stdout, rk)
	}
	if err := token.WriteRelayKey(out, rk); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "pixelrelay: relay key for %q written to %s (mode 0600); on the relay run: pixelrelay keys import %s\n",
		name, out, filepath.Base(out))
	return nil
}

func (e *env) keysImport(cfgPath, from string) error {
	var data []byte
	var err error
	if from == "-" {
		data, err = io.ReadAll(io.LimitReader(e.in(), 1<<20))
	} else {
		data, err = os.ReadFile(from)
	}
	if err != nil {
		return fmt.Errorf("reading the relay key: %v", err)
	}
	rk, err := token.ParseRelayKey(data)
	if err != nil {
		return fmt.Errorf("%s: %v", displayName(from), err)
	}
	path, err := config.Find(cfgPath)
	if err != nil {
		return err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return fmt.Errorf("config %s: %s (fix it first: tracker.remote_key_file and data_dir decide where the key goes)", displayPath(path), joinLines(err))
	}
	dest := cfg.RemoteKeyPath()
	if err := token.WriteRelayKey(dest, rk); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "relay key for %q saved to %s (mode 0600)\n", rk.Relay, dest)
	if cfg.Tracker.RemoteURL == "" {
		hint := rk.Tracker
		if hint == "" {
			hint = "https://YOUR-TRACKER"
		}
		fmt.Fprintf(e.stdout, "now add to %s:\n\n[tracker]\nremote_url = %q\n\nand start pixelrelay serve\n", configTarget(path), hint)
	} else {
		fmt.Fprintf(e.stdout, "tracker.remote_url is %s; a running serve takes the new key within a minute\n", cfg.Tracker.RemoteURL)
	}
	return nil
}

func (e *env) keysRelays(cfgPath string, asJSON bool) error {
	c, err := e.connect(cfgPath)
	if err != nil {
		return err
	}
	var r remote.RelaysResponse
	body, err := c.getJSON(remote.PathRelays, nil, &r)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(e.stdout, body)
	}
	t := &table{header: []string{"RELAY", "PAIRED"}}
	now := e.now()
	for _, rl := range r.Relays {
		t.add(rl.Name, stamp(rl.CreatedAt, now))
	}
	_, err = io.WriteString(e.stdout, t.render(e.width))
	return err
}

func (e *env) keysRevoke(cfgPath, name string) error {
	c, err := e.connect(cfgPath)
	if err != nil {
		return err
	}
	if _, err := c.do(http.MethodDelete, remote.PathRelays, url.Values{"name": {name}}, queryTimeout); err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "relay %q revoked: its key no longer works here\n", name)
	return err
}

// in is stdin.
func (e *env) in() io.Reader {
	if e.stdin != nil {
		return e.stdin
	}
	return os.Stdin
}

func displayName(from string) string {
	if from == "-" {
		return "stdin"
	}
	return from
}

// configTarget names the file to edit: the config in use, else the default
// place for a new one.
func configTarget(path string) string {
	if path != "" {
		return path
	}
	if d, err := os.UserConfigDir(); err == nil {
		return filepath.Join(d, "pixelrelay", "config.toml")
	}
	return "your config file"
}
