package cli

import (
	"log/slog"
	"net/http"
	_ "net/http/pprof" // profiling endpoint, only with PIXELRELAY_PPROF
	"os"
	"runtime"
)

// PIXELRELAY_PPROF=addr (a loopback address, e.g. 127.0.0.1:6060) serves
// net/http/pprof on addr, with block and mutex profiling on: a
// developer's tool for profiling a running serve, off by default.
func init() {
	addr := os.Getenv("PIXELRELAY_PPROF")
	if addr == "" {
		return
	}
	runtime.SetBlockProfileRate(100_000) // one sample per 100µs blocked
	runtime.SetMutexProfileFraction(20)
	go func() {
		if err := http.ListenAndServe(addr, nil); err != nil {
			slog.Error("pprof listener", "addr", addr, "err", err)
		}
	}()
}
