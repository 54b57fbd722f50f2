// Package testport gives tests loopback ports that stay theirs.
//
// A test that picks a port by listening on 127.0.0.1:0 and closing the
// listener, then starts a server on it (and again after a restart), can lose
// the port in between: the kernel hands ports of its ephemeral range to any
// process's next connect or :0 listen, and on a busy machine one gets it
// ("bind: address already in use"). The ports given here lie below the
// ephemeral range, which the kernel never hands out on its own, and each is
// reserved with a lock file for as long as the test runs, so no other test
// process that uses this package (another package's tests, another clone's
// run) takes it either.
package testport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// The range ports are picked from: [first, ephemeral range start).
const first = 20000

// Addr returns "127.0.0.1:PORT" for a port nothing listens on, reserved for
// t until it ends. Nothing else binds it meanwhile unless it names the port
// itself, so the test may start, stop and restart servers on it, and a
// connection to it is refused while the test's own server is down.
func Addr(t testing.TB) string {
	t.Helper()
	lo, hi := candidates()
	dir := filepath.Join(os.TempDir(), "pixelrelay-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatalf("testport: %v", err)
	}
	os.Chmod(dir, 0o1777) // shared by every user's tests, like /tmp
	n := hi - lo
	start := rand.IntN(n)
	for i := 0; i < n; i++ {
		port := lo + (start+i)%n
		lock, ok := reserve(dir, port)
		if !ok {
			continue
		}
		if !bindable(port) {
			lock.Close()
			continue
		}
		t.Cleanup(func() { lock.Close() })
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	t.Fatalf("testport: no free port in %d-%d", lo, hi-1)
	return ""
}

// Port is Addr's port number alone.
func Port(t testing.TB) string {
	t.Helper()
	_, port, _ := net.SplitHostPort(Addr(t))
	return port
}

// reserve takes the lock file of port; the lock lasts while the file is
// open (and ends with the process, however it ends).
func reserve(dir string, port int) (*os.File, bool) {
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDONLY, 0o666)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return f, true
}

// bindable reports whether nothing holds port on loopback nor on the
// wildcard address.
func bindable(port int) bool {
	for _, host := range []string{"127.0.0.1", "0.0.0.0"} {
		l, err := net.Listen("tcp4", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

// candidates is the range [lo, hi) ports are picked from: below the
// kernel's ephemeral range (Linux: /proc/sys/net/ipv4/ip_local_port_range,
// 32768-60999 by default), else above it, else anything unprivileged.
func candidates() (lo, hi int) {
	elo, ehi := 32768, 60999
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		fmt.Sscan(strings.TrimSpace(string(b)), &elo, &ehi)
	}
	switch {
	case elo-first >= 1000:
		return first, elo
	case 65536-(ehi+1) >= 1000:
		return ehi + 1, 65536
	}
	return 1024, 65536
}
