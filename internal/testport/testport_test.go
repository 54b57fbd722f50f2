package testport

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestAddr: the ports are distinct, outside the ephemeral range, bindable,
// refused while nobody listens, and reserved until the test ends.
func TestAddr(t *testing.T) {
	lo, hi := candidates()
	dir := filepath.Join(os.TempDir(), "pixelrelay-test-ports")
	seen := map[string]bool{}
	var ports []int
	t.Run("take", func(t *testing.T) {
		for i := 0; i < 20; i++ {
			addr := Addr(t)
			if seen[addr] {
				t.Fatalf("%s given twice", addr)
			}
			seen[addr] = true
			_, ps, _ := net.SplitHostPort(addr)
			port, _ := strconv.Atoi(ps)
			ports = append(ports, port)
			if port < lo || port >= hi {
				t.Errorf("port %d outside [%d, %d)", port, lo, hi)
			}
			if _, err := net.Dial("tcp", addr); err == nil {
				t.Errorf("%s accepts a connection", addr)
			}
			if _, ok := reserve(dir, port); ok {
				t.Errorf("port %d is not reserved while the test runs", port)
			}
			l, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatalf("the test cannot listen on its own port: %v", err)
			}
			l.Close()
		}
	})
	for _, port := range ports {
		f, ok := reserve(dir, port)
		if !ok {
			t.Errorf("port %d still reserved after its test ended", port)
			continue
		}
		f.Close()
	}
}

// TestBindable: a port held on loopback or on the wildcard address is not
// free.
func TestBindable(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "0.0.0.0"} {
		port, _ := strconv.Atoi(Port(t))
		if !bindable(port) {
			t.Fatalf("port %d: not bindable before anyone listens", port)
		}
		l, err := net.Listen("tcp4", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			t.Fatal(err)
		}
		if bindable(port) {
			t.Errorf("port %d held on %s counts as bindable", port, host)
		}
		l.Close()
	}
}
