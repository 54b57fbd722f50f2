package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// cmdSinkwait watches the output file of `smtp-sink -c` (counters separated
// by CR, "sess=N quit=N mesg=N") until mesg reaches -want, then prints the
// seconds since -since (a Unix time in seconds with a fraction, as
// `date +%s.%N` prints) and the count. It fails when -timeout passes first.
func cmdSinkwait(args []string) error {
	fs := newFlags("sinkwait")
	out := fs.String("out", "", "smtp-sink -c output file")
	want := fs.Int64("want", 1, "message count to wait for")
	since := fs.Float64("since", 0, "start time (Unix seconds); 0 means now")
	limit := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	start := time.Now()
	if *since > 0 {
		start = time.Unix(0, int64(*since*1e9))
	}
	deadline := time.Now().Add(*limit)
	var got int64
	for {
		n, err := sinkCount(*out)
		if err != nil {
			return err
		}
		got = n
		if got >= *want {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sink counted %d messages of %d within %v", got, *want, *limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Printf("secs %.3f\ncount %d\n", time.Since(start).Seconds(), got)
	return nil
}

// sinkCount returns the last mesg= counter in the file (0 when none yet).
func sinkCount(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	off := max(st.Size()-256, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
		return 0, err
	}
	// The last record ends in CR; anything after it is still being written.
	end := bytes.LastIndexByte(buf, '\r')
	if end < 0 {
		return 0, nil
	}
	rec := buf[:end]
	if start := bytes.LastIndexByte(rec, '\r'); start >= 0 {
		rec = rec[start+1:]
	}
	i := bytes.Index(rec, []byte("mesg="))
	if i < 0 {
		return 0, fmt.Errorf("%s: no mesg= counter in %q", path, rec)
	}
	return strconv.ParseInt(string(bytes.TrimSpace(rec[i+5:])), 10, 64)
}
