package pgtest

import (
	"strings"
	"testing"
)

// TestCluster starts a private cluster, makes a database, writes and reads
// a row over TCP on loopback, and checks it listens nowhere else.
func TestCluster(t *testing.T) {
	c := Start(t)
	if !strings.HasPrefix(c.Addr, "127.0.0.1:") {
		t.Fatalf("listens on %s", c.Addr)
	}
	c.CreateDB(t, "px_test")
	if _, err := c.Psql("px_test", "CREATE TABLE t (v text); INSERT INTO t VALUES ('hello')"); err != nil {
		t.Fatal(err)
	}
	got, err := c.Psql("px_test", "SELECT v FROM t")
	if err != nil || got != "hello" {
		t.Fatalf("SELECT = %q, %v", got, err)
	}
	addrs, err := c.Psql("postgres", "SHOW listen_addresses")
	if err != nil || addrs != "127.0.0.1" {
		t.Fatalf("listen_addresses = %q, %v", addrs, err)
	}
}
