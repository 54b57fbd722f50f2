// Command pxbench holds the small tools behind bench/run.sh:
//
//	pxbench ports N                      print N free loopback TCP ports
//	pxbench genmsg [-size N] [-attach N] write a multipart/alternative HTML test message
//	pxbench load -addr A ...             SMTP load generator; reports msgs/s and DATA-end→250 latency
//	pxbench sinkwait -out F -want N      wait until smtp-sink -c has counted N messages
//	pxbench apiq -url U -key K ...       latency percentiles of repeated admin API GETs
//	pxbench uiq -base B -key K -paths P  the same for dashboard pages, signed in with a one-time link
//	pxbench fill -data DIR -n N          fill a tracker store with N opens (see fill.go)
//	pxbench api -url U -key K -fields F  one admin API request; prints the named JSON fields
//	pxbench token -file F                the first pixel token in delivered mail
//	pxbench networks -o F                a networks file as large as Apple's egress list
//
// Every subcommand prints "key value" lines that run.sh reads back.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmds := map[string]func([]string) error{
		"ports":    cmdPorts,
		"genmsg":   cmdGenmsg,
		"load":     cmdLoad,
		"sinkwait": cmdSinkwait,
		"apiq":     cmdAPIQ,
		"uiq":      cmdUIQ,
		"fill":     cmdFill,
		"api":      cmdAPI,
		"token":    cmdToken,
		"networks": cmdNetworks,
	}
	run, ok := cmds[os.Args[1]]
	if !ok {
		usage()
	}
	if err := run(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "pxbench %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: pxbench ports|genmsg|load|sinkwait|apiq|uiq|fill|api|token|networks [flags]")
	os.Exit(2)
}
