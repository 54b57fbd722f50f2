// Package pgtest starts a private PostgreSQL cluster for tests: initdb and
// pg_ctl from /usr/lib/postgresql/*/bin (the Debian package `postgresql`,
// which .ci/run installs) under a temporary directory, listening on a free
// loopback port only, with trust authentication for its own superuser.
//
// initdb refuses to run as root, so when the tests run as root (CI), the
// cluster runs as the unprivileged user "nobody" through setpriv; its
// directory is made for that user.
//
// Without PostgreSQL a test that needs it is skipped with the reason, or
// fails when $CI or $PIXELRELAY_REQUIRE_POSTGRES is set.
package pgtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster is a running private PostgreSQL.
type Cluster struct {
	Dir  string // its data and socket directory
	Addr string // 127.0.0.1:PORT
	bin  string
	run  []string // the prefix that runs a command as the cluster's owner
}

// URL is a connection URL of database db on the cluster.
func (c *Cluster) URL(db string) string {
	return "postgres://postgres@" + c.Addr + "/" + db + "?sslmode=disable"
}

// nobody is the user the cluster runs as when the tests run as root.
const nobody = 65534

// Bin returns the directory of initdb and pg_ctl, or "" with the reason.
func Bin() (string, string) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, ""
		}
	}
	return "", "no /usr/lib/postgresql/*/bin/initdb (apt-get install postgresql)"
}

func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// required reports whether a missing PostgreSQL fails the test.
func required() bool {
	return os.Getenv("CI") != "" || os.Getenv("PIXELRELAY_REQUIRE_POSTGRES") != ""
}

// Start starts a cluster that is stopped and removed when the test ends.
func Start(t testing.TB) *Cluster {
	t.Helper()
	bin, why := Bin()
	if bin == "" {
		if required() {
			t.Fatalf("PostgreSQL is needed: %s", why)
		}
		t.Skipf("PostgreSQL not installed: %s", why)
	}
	c, err := start(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

func start(bin string) (*Cluster, error) {
	root, err := os.MkdirTemp("", "pixelrelay-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: filepath.Join(root, "data"), bin: bin}
	if os.Geteuid() == 0 {
		// initdb refuses root: run the cluster as nobody, in a directory
		// it owns under a root-owned one it may enter.
		if err := os.Chmod(root, 0o755); err != nil {
			return nil, err
		}
		c.run = []string{"setpriv", "--reuid=" + strconv.Itoa(nobody), "--regid=" + strconv.Itoa(nobody), "--clear-groups", "--"}
	}
	if err := os.Mkdir(c.Dir, 0o700); err != nil {
		return nil, err
	}
	if c.run != nil {
		if err := os.Chown(c.Dir, nobody, nobody); err != nil {
			return nil, err
		}
	}
	if out, err := c.cmd("initdb", "-D", c.Dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		os.RemoveAll(root)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	for try := 0; try < 5; try++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		c.Addr = "127.0.0.1:" + strconv.Itoa(port)
		opts := fmt.Sprintf("-h 127.0.0.1 -p %d -k %s -F -c max_connections=200 -c synchronous_commit=on", port, c.Dir)
		out, err := c.cmd("pg_ctl", "-D", c.Dir, "-l", filepath.Join(c.Dir, "log"), "-o", opts, "-w", "-t", "60", "start").CombinedOutput()
		if err == nil {
			return c, nil
		}
		if !strings.Contains(c.log(), "could not bind") {
			os.RemoveAll(root)
			return nil, fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, c.log())
		}
	}
	os.RemoveAll(root)
	return nil, fmt.Errorf("pg_ctl start: no free port after 5 tries")
}

// cmd runs a PostgreSQL program as the cluster's owner.
func (c *Cluster) cmd(name string, args ...string) *exec.Cmd {
	argv := append(append(append([]string{}, c.run...), filepath.Join(c.bin, name)), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Dir = "/"
	return cmd
}

func (c *Cluster) log() string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "log"))
	return string(b)
}

// Psql runs SQL on database db with psql and returns its output.
func (c *Cluster) Psql(db, sql string) (string, error) {
	out, err := exec.Command("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", c.URL(db), "-c", sql).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("psql: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// CreateDB makes a new empty database and returns its URL.
func (c *Cluster) CreateDB(t testing.TB, name string) string {
	t.Helper()
	if _, err := c.Psql("postgres", "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	return c.URL(name)
}

// Stop stops the cluster at once and removes its files.
func (c *Cluster) Stop() {
	c.cmd("pg_ctl", "-D", c.Dir, "-m", "immediate", "-w", "stop").Run()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(c.Dir, "postmaster.pid")); err != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	os.RemoveAll(filepath.Dir(c.Dir))
}

// freePort returns a loopback port nobody listens on right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
