package httpd

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"pixelrelay/config"
	"pixelrelay/internal/testport"
)

// TestServeMovesListener: a second Serve on a new listener, then closing the
// first, moves the server (what serve does when http.listen changes): a
// keep-alive connection opened before keeps being answered, the old address
// refuses, /api/status names the new HTTP address and the SMTP address the
// SMTPAddr func returns now, and Shutdown still ends everything cleanly.
func TestServeMovesListener(t *testing.T) {
	var smtpAddr atomic.Value
	smtpAddr.Store("127.0.0.1:1111")
	s := New(Options{Config: config.Default, Store: newFakeStore(), Keys: &fakeKeys{admin: "k", version: 1}, Log: quiet,
		SMTPAddr: func() string { return smtpAddr.Load().(string) }})
	// A reserved port: once l1 closes, nothing else may take it before the
	// test checks that it refuses.
	l1, err := net.Listen("tcp", testport.Addr(t))
	if err != nil {
		t.Fatal(err)
	}
	done1 := make(chan error, 1)
	go func() { done1 <- s.Serve(l1) }()
	old, err := net.Dial("tcp", l1.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	oldr := bufio.NewReader(old)
	rebindGet(t, old, oldr, "/healthz")

	l2, _ := net.Listen("tcp", "127.0.0.1:0")
	done2 := make(chan error, 1)
	go func() { done2 <- s.Serve(l2) }()
	l1.Close()
	if err := <-done1; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Serve on the closed old listener returned %v, want net.ErrClosed", err)
	}
	smtpAddr.Store("127.0.0.1:2222")
	if _, err := net.DialTimeout("tcp", l1.Addr().String(), time.Second); err == nil {
		t.Error("the old address still accepts connections")
	}
	rebindGet(t, old, oldr, "/healthz") // the connection from before still works

	req, _ := http.NewRequest("GET", "http://"+l2.Addr().String()+"/api/status", nil)
	req.Header.Set("Authorization", "Bearer k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`"http_listen":"` + l2.Addr().String() + `"`, `"smtp_listen":"127.0.0.1:2222"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("status lacks %s: %s", want, body)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	old.Close()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done2; err != nil {
		t.Errorf("Serve returned %v after Shutdown", err)
	}
}

// rebindGet sends one keep-alive GET on c and checks for a 200.
func rebindGet(t *testing.T, c net.Conn, r *bufio.Reader, path string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("GET %s on the old connection: %v", path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
}
