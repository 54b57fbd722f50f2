// Package browsertest drives a real browser (Debian's chromium, headless)
// over the DevTools protocol with chromedp, for the dashboard's tests: it
// records every console error and every request a page makes, and keeps
// screenshots. A missing chromium fails the tests under CI (.ci/run
// installs it) and skips them elsewhere.
package browsertest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Chromium returns the chromium binary. The browser tests fail without
// it under CI (.ci/run installs it) and skip elsewhere.
func Chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not installed: .ci/run must install it")
	}
	t.Skip("chromium not installed (apt-get install -y chromium)")
	return ""
}

// ArtifactDir is where screenshots go: $PIXELRELAY_ARTIFACTS when set
// (kept after the run), else the test's temporary directory.
func ArtifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("PIXELRELAY_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Browser is one headless chromium with a fresh profile, watching what its
// pages log and every request they make.
type Browser struct {
	T     *testing.T
	Name  string // screenshot prefix
	ctx   context.Context
	dir   string
	width int64

	mu       sync.Mutex
	expected []string // log texts that are part of the test (a refused link's 401)
	problems []string // console errors, uncaught exceptions, browser log errors
	foreign  []string // requests to anything but 127.0.0.1
	requests int
}

// New starts chromium, offline-friendly (no background traffic of
// its own), with a viewport width wide (375 emulates a phone).
func New(t *testing.T, chrome string, width int64, dir string) *Browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chrome),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(int(width), 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	b := &Browser{T: t, ctx: ctx, Name: fmt.Sprintf("dashboard-%d", width), dir: dir, width: width}
	if err := chromedp.Listen(ctx, b.watch); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	view := []chromedp.EmulateViewportOption{}
	if width < 600 {
		view = append(view, chromedp.EmulateScale(2), chromedp.EmulateMobile)
	}
	b.Do(chromedp.EmulateViewport(width, 900, view...))
	return b
}

// watch runs in the tab's event loop: it only records.
func (b *Browser) watch(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		b.requests++
		if u, err := url.Parse(ev.Request.URL); err != nil || u.Scheme != "data" && u.Hostname() != "127.0.0.1" {
			b.foreign = append(b.foreign, ev.Request.URL)
		}
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, string(a.Value)+a.Description)
			}
			b.problems = append(b.problems, "console."+string(ev.Type)+": "+strings.Join(parts, " "))
		}
	case *runtime.EventExceptionThrown:
		b.problems = append(b.problems, "exception: "+ev.ExceptionDetails.Text+" "+exceptionText(ev.ExceptionDetails))
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.EntryLevelError {
			b.problems = append(b.problems, "log: "+ev.Entry.Text+" "+ev.Entry.URL)
		}
	}
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d.Exception != nil {
		return d.Exception.Description
	}
	return ""
}

// timeout bounds one step.
const step = 30 * time.Second

// Do runs actions, failing the test on an error.
func (b *Browser) Do(actions ...chromedp.Action[chromedp.Void]) {
	b.T.Helper()
	if err := b.Try(actions...); err != nil {
		b.Shot("failed")
		b.T.Fatalf("%s: %v", b.Name, err)
	}
}

func (b *Browser) Try(actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.ctx, step)
	defer cancel()
	return chromedp.Do(ctx, actions...)
}

// Eval evaluates a JavaScript expression in the page.
func Eval[T any](b *Browser, expr string) T {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, step)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.T.Fatalf("%s: evaluating %s: %v", b.Name, expr, err)
	}
	return v
}

// WaitTrue waits until a JavaScript expression is true in the page.
func (b *Browser) WaitTrue(expr string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(b.ctx, within+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(within), chromedp.WithPollingInterval(50*time.Millisecond)))
	return err
}

// Shot saves a full-page screenshot as NAME-WIDTH-what.png and logs it.
func (b *Browser) Shot(what string) string {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, step)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.T.Errorf("%s: screenshot %s: %v", b.Name, what, err)
		return ""
	}
	path := filepath.Join(b.dir, b.Name+"-"+what+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.T.Fatal(err)
	}
	b.T.Logf("screenshot: %s", path)
	return path
}

// Expect marks an error the browser will log as part of the test.
func (b *Browser) Expect(text string) {
	b.mu.Lock()
	b.expected = append(b.expected, text)
	b.mu.Unlock()
}

// Clean fails the test if a page logged an error (other than an expected
// one) or asked another host for anything.
func (b *Browser) Clean() {
	b.T.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		if !slices.ContainsFunc(b.expected, func(e string) bool { return strings.Contains(p, e) }) {
			b.T.Errorf("%s: %s", b.Name, p)
		}
	}
	for _, u := range b.foreign {
		b.T.Errorf("%s: a page asked another host: %s", b.Name, u)
	}
	if b.requests == 0 {
		b.T.Errorf("%s: no request seen at all: the network watch is not working", b.Name)
	}
}
