package oauth

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"pixelrelay/internal/oauthtest"
)

// TestWatchSignIns: a new sign-in is reported once; a rotated refresh
// token and the sign-ins that were there before are not.
func TestWatchSignIns(t *testing.T) {
	p := oauthtest.Start(t, oauthtest.Options{AccessTTL: time.Second, Rotate: true})
	opts := options(t, p, "work")
	login(t, opts) // before the watch: not reported
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 10)
	done := make(chan error, 1)
	go func() {
		done <- WatchSignIns(ctx, opts.DataDir, slog.New(slog.NewTextHandler(io.Discard, nil)), func(a string) { got <- a })
	}()
	time.Sleep(200 * time.Millisecond) // the watch is set up
	if _, err := For(opts).Token(context.Background()); err != nil {
		t.Fatal(err) // rotates the refresh token: not a sign-in
	}
	other := opts
	other.Account = "private-2"
	login(t, other)
	select {
	case a := <-got:
		if a != "private-2" {
			t.Fatalf("reported %q, want private-2", a)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the new sign-in was not reported")
	}
	time.Sleep(300 * time.Millisecond)
	if len(got) != 0 {
		t.Errorf("reported more: %q", <-got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
