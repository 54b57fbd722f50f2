package main

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
)

// cmdNetworks writes a tracking.networks_file as large as Apple's whole
// iCloud Private Relay egress list before compaction (286,946 rows on
// 2026-07-02: 41,818 IPv4, the rest IPv6 /64s), so the tracker can be
// measured with the worst table a user may load.
func cmdNetworks(args []string) error {
	fs := newFlags("networks")
	n4 := fs.Int("v4", 41818, "IPv4 /32 lines")
	n6 := fs.Int("v6", 245128, "IPv6 /64 lines")
	out := fs.String("o", "", "output file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	const src = "Synthetic egress list (bench) <https://mask-api.icloud.com/egress-ip-ranges.csv> 2026-07-02"
	for i := range *n4 {
		a := netip.AddrFrom4([4]byte{172, byte(224 + i>>16), byte(i >> 8), byte(i)})
		fmt.Fprintf(w, "%s/32 apple_mpp %s\n", a, src)
	}
	for i := range *n6 {
		var b [16]byte
		b[0], b[1], b[2], b[3] = 0x2a, 0x02, 0x26, 0xf7
		b[4], b[5], b[6] = byte(i>>16), byte(i>>8), byte(i)
		fmt.Fprintf(w, "%s/64 apple_mpp %s\n", netip.AddrFrom16(b), src)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Printf("lines %d\n", *n4+*n6)
	return nil
}
