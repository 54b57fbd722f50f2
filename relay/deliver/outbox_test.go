package deliver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"pixelrelay/relay"
)

func TestOutbox(t *testing.T) {
	tests := []struct {
		name, msg, want string
		to              []string
	}{
		{"crlf", "Subject: a\r\n\r\nbody\r\n", "Return-Path: <s@example.com>\r\nDelivered-To: r@example.com\r\nSubject: a\r\n\r\nbody\r\n", []string{"r@example.com"}},
		{"lf", "Subject: a\n\nbody\n", "Return-Path: <s@example.com>\nDelivered-To: r@example.com\nDelivered-To: q@example.com\nSubject: a\n\nbody\n", []string{"r@example.com", "q@example.com"}},
		{"empty", "", "Return-Path: <s@example.com>\r\nDelivered-To: r@example.com\r\n", []string{"r@example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "outbox")
			o := NewOutbox(dir)
			if err := o.Deliver(context.Background(), "s@example.com", tt.to, strings.NewReader(tt.msg)); err != nil {
				t.Fatal(err)
			}
			files, err := os.ReadDir(filepath.Join(dir, "new"))
			if err != nil || len(files) != 1 {
				t.Fatalf("new/: %v %v", files, err)
			}
			if !strings.HasSuffix(files[0].Name(), ".eml") {
				t.Errorf("name %q", files[0].Name())
			}
			got, _ := os.ReadFile(filepath.Join(dir, "new", files[0].Name()))
			if string(got) != tt.want {
				t.Errorf("file:\n%q\nwant\n%q", got, tt.want)
			}
			fi, _ := files[0].Info()
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v", fi.Mode())
			}
			if tmp, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmp) != 0 {
				t.Errorf("tmp/ not empty: %v", tmp)
			}
		})
	}
}

func TestOutboxConcurrentUniqueNames(t *testing.T) {
	dir := t.TempDir()
	o := NewOutbox(dir)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if err := o.Deliver(context.Background(), "s@x", []string{"r@x"}, strings.NewReader("a\r\n")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	files, _ := os.ReadDir(filepath.Join(dir, "new"))
	if len(files) != 50 {
		t.Fatalf("%d files, want 50", len(files))
	}
}

func TestOutboxReadErrorLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	o := NewOutbox(dir)
	err := o.Deliver(context.Background(), "s@x", []string{"r@x"}, &failingReader{n: 10})
	var de *relay.DeliveryError
	if !errors.As(err, &de) || de.Class != relay.Temporary {
		t.Fatalf("err = %v", err)
	}
	for _, sub := range []string{"new", "tmp"} {
		if f, _ := os.ReadDir(filepath.Join(dir, sub)); len(f) != 0 {
			t.Errorf("%s/ has %v", sub, f)
		}
	}
}

func TestOutboxUnwritable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o600)
	err := NewOutbox(filepath.Join(file, "outbox")).Deliver(context.Background(), "s@x", []string{"r@x"}, strings.NewReader("a"))
	if relay.ClassOf(err) != relay.Temporary || err == nil {
		t.Fatalf("err = %v", err)
	}
}
