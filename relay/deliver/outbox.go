package deliver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"pixelrelay/relay"
)

// Outbox is the "outbox" upstream: every copy becomes one .eml file in a
// maildir-style folder. A file is written to DIR/tmp, fsynced, and renamed
// into DIR/new, so a file in new/ is always complete. Its name is
// UNIXNANO.PID.RANDOM.eml.
//
// The file holds the message bytes exactly as they would go upstream,
// preceded by the envelope in the form a local delivery agent writes it:
// "Return-Path: <from>" and one "Delivered-To: <rcpt>" line per envelope
// recipient (the line ending matches the message's own).
type Outbox struct {
	dir   string
	ready atomic.Bool
}

// NewOutbox returns an Outbox writing under dir (created on first use, 0700).
func NewOutbox(dir string) *Outbox { return &Outbox{dir: dir} }

// Dir returns the outbox folder.
func (o *Outbox) Dir() string { return o.dir }

// Deliver writes one copy. A failure is a Temporary *relay.DeliveryError
// (a full disk is not the recipient's fault).
func (o *Outbox) Deliver(ctx context.Context, from string, to []string, msg io.Reader) error {
	err := o.write(ctx, from, to, msg)
	if err != nil {
		io.Copy(io.Discard, msg)
		return &relay.DeliveryError{Class: relay.Temporary, Stage: "data", Err: fmt.Errorf("outbox: %w", err)}
	}
	return nil
}

func (o *Outbox) write(ctx context.Context, from string, to []string, msg io.Reader) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := o.mkdirs(); err != nil {
		return err
	}
	name := fileName()
	tmp := filepath.Join(o.dir, "tmp", name)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	w := bufio.NewWriterSize(f, 64<<10)
	br := bufio.NewReaderSize(msg, 64<<10)
	if _, err := w.WriteString(envelopeHeader(from, to, lineEnd(br))); err != nil {
		return err
	}
	if _, err := io.Copy(w, br); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(o.dir, "new", name)); err != nil {
		return err
	}
	ok = true
	return syncDir(filepath.Join(o.dir, "new"))
}

func (o *Outbox) mkdirs() error {
	if o.ready.Load() {
		return nil
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(o.dir, sub), 0o700); err != nil {
			return err
		}
	}
	o.ready.Store(true)
	return nil
}

// Close does nothing: an Outbox holds no resources.
func (o *Outbox) Close() error { return nil }

// envelopeHeader is the Return-Path and Delivered-To lines.
func envelopeHeader(from string, to []string, eol string) string {
	var b strings.Builder
	b.WriteString("Return-Path: <" + headerSafe(from) + ">" + eol)
	for _, rcpt := range to {
		b.WriteString("Delivered-To: " + headerSafe(rcpt) + eol)
	}
	return b.String()
}

// headerSafe drops line breaks, which an address never has legitimately.
func headerSafe(s string) string {
	return strings.NewReplacer("\r", "", "\n", "").Replace(s)
}

// lineEnd guesses the message's line ending from its first line: "\n" if
// it ends bare, otherwise the SMTP "\r\n".
func lineEnd(br *bufio.Reader) string {
	b, _ := br.Peek(br.Size())
	if i := bytes.IndexByte(b, '\n'); i >= 0 && (i == 0 || b[i-1] != '\r') {
		return "\n"
	}
	return "\r\n"
}

func fileName() string {
	var r [6]byte
	rand.Read(r[:])
	return fmt.Sprintf("%d.%d.%s.eml", time.Now().UnixNano(), os.Getpid(), hex.EncodeToString(r[:]))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
