// Command ferry talks to SP sockets and shows what ferry does.
//
//	ferry demo           a PAIR1 exchange over tcp on loopback
//	ferry cat            nngcat's command line (see docs/cat.md)
//	ferry stress         the five failure classes at scale, pass/fail table
//	ferry bench          latency and throughput per pattern, transport and size
//	ferry help [command] help for a command
package main

import (
	"fmt"
	"io"
	"os"
)

type command struct {
	name, summary, usage string
	run                  func(args []string, out io.Writer) error
	// ownHelp: the command parses -h/--help itself (in cat, "--data -h"
	// sends "-h"), so run must not look for them among its arguments.
	ownHelp bool
}

var commands = []command{
	{"demo", "a tour on loopback: PAIR1 over tcp", demoUsage, runDemo, false},
	{"stress", "the five failure classes at scale, with a pass/fail table", stressUsage, runStress, false},
	{"cat", "nngcat-compatible: send and print messages", catUsage, runCat, true},
	{"bench", "latency and throughput per pattern, transport and size", benchUsage, runBench, false},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, out, errOut io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			for _, c := range commands {
				if c.name == args[1] {
					fmt.Fprint(out, c.usage)
					return 0
				}
			}
		}
		usage(out)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "bench-peer" { // started by ferry bench; not in help
		if err := runBenchPeer(args[1:], out); err != nil {
			fmt.Fprintf(errOut, "ferry bench-peer: %v\n", err)
			return 1
		}
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			for _, a := range args[1:] {
				if !c.ownHelp && (a == "-h" || a == "--help") {
					fmt.Fprint(out, c.usage)
					return 0
				}
			}
			if err := c.run(args[1:], out); err != nil {
				fmt.Fprintf(errOut, "ferry %s: %v\n", c.name, err)
				return 1
			}
			return 0
		}
	}
	fmt.Fprintf(errOut, "ferry: unknown command %q (try: ferry help)\n", args[0])
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "ferry: Scalability Protocols sockets, wire-compatible with NNG")
	fmt.Fprintln(w, "\nUsage: ferry <command> [flags]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'ferry help <command>' for a command's flags and examples.")
}
