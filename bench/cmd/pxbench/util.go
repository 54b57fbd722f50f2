package main

import (
	"flag"
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"
)

// cmdPorts prints N distinct free TCP ports on 127.0.0.1, one a line. All
// listeners are held open until every port is chosen, so they differ.
func cmdPorts(args []string) error {
	n := 1
	if len(args) > 0 {
		v, err := strconv.Atoi(args[0])
		if err != nil || v < 1 || v > 100 {
			return fmt.Errorf("bad count %q", args[0])
		}
		n = v
	}
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		ls = append(ls, l)
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	return nil
}

// percentile returns the p-th percentile (0..100) of sorted durations,
// nearest-rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	if rank < 0 {
		rank = 0
	}
	if rank >= len(sorted) {
		rank = len(sorted) - 1
	}
	return sorted[rank]
}

// printLatencies prints prefix_p50_ms, _p90_ms, _p99_ms and _max_ms.
func printLatencies(prefix string, lat []time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	for _, p := range []float64{50, 90, 99} {
		fmt.Printf("%sp%g_ms %.2f\n", prefix, p, ms(percentile(lat, p)))
	}
	if len(lat) > 0 {
		fmt.Printf("%smax_ms %.2f\n", prefix, ms(lat[len(lat)-1]))
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func newFlags(name string) *flag.FlagSet {
	return flag.NewFlagSet("pxbench "+name, flag.ContinueOnError)
}
