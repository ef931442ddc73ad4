// Command ferry-nngpeer is the NNG side of `ferry bench --against nng`: a
// small cgo program against libnng (Debian: libnng-dev).
//
//	ferry-nngpeer serve --pattern P --role R --size N --url U [--url2 U2] [--queue Q]
//	ferry-nngpeer run   --pattern P --mode M --size N --url U [--url2 U2] [--queue Q]
//	                    [--duration D] [--warm W] [--subs K] [--max-samples S]
//
// serve listens, prints "ready" and runs its role (echo or source) until
// its stdin ends. run dials, measures (lat or tput) and prints one JSON
// object. Go only parses the flags and prints the result: the loops are C
// (peer.c), so no cgo call is made per message.
//
// Bad flags exit 2, failures exit 1, each with one line on stderr.
package main

// #cgo LDFLAGS: -lnng -lpthread
// #include "peer.h"
import "C"

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

const usageLine = "usage: ferry-nngpeer serve --pattern P --role R --size N --url U [--url2 U2] [--queue Q] | " +
	"ferry-nngpeer run --pattern P --mode M --size N --url U [--url2 U2] [--queue Q] [--duration D] [--warm W] [--subs K] [--max-samples S]"

var patterns = map[string]C.int{
	"pair": C.PEER_PAIR, "reqrep": C.PEER_REQREP, "pushpull": C.PEER_PUSHPULL, "pubsub": C.PEER_PUBSUB, "fanout": C.PEER_FANOUT,
}

// supported lists, for each role or mode, the patterns it has.
var supported = map[string]map[string]bool{
	"echo":   {"pair": true, "reqrep": true, "pushpull": true, "pubsub": true},
	"source": {"pair": true, "pushpull": true, "pubsub": true, "fanout": true},
	"lat":    {"pair": true, "reqrep": true, "pushpull": true, "pubsub": true},
	"tput":   {"pair": true, "pushpull": true, "pubsub": true, "fanout": true},
}

var whats = map[string]C.int{"echo": C.PEER_ECHO, "source": C.PEER_SOURCE, "lat": C.PEER_LAT, "tput": C.PEER_TPUT}

// result is what run prints; ferry bench reads it.
type result struct {
	Samples  int64   `json:"samples"`
	P50ns    int64   `json:"p50ns"`
	P99ns    int64   `json:"p99ns"`
	MinNs    int64   `json:"minns"`
	MaxNs    int64   `json:"maxns"`
	Msgs     int64   `json:"msgs"`
	Seconds  float64 `json:"seconds"`
	MsgsPerS float64 `json:"msgs_per_s"`
}

func usage(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "nngpeer: "+format+"\n", a...)
	os.Exit(2)
}

func fail(msg string) {
	fmt.Fprintf(os.Stderr, "nngpeer: %s\n", msg)
	os.Exit(1)
}

const maxSize = 1 << 30

func main() {
	if len(os.Args) < 2 {
		usage("%s", usageLine)
	}
	verb := os.Args[1]
	if verb != "serve" && verb != "run" {
		usage("unknown command %q; %s", verb, usageLine)
	}
	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	pattern := fs.String("pattern", "", "")
	url := fs.String("url", "", "")
	url2 := fs.String("url2", "", "")
	size := fs.Int64("size", -1, "")
	queue := fs.Int("queue", 128, "")
	var what *string
	var dur, warm *time.Duration
	var subs *int
	var maxSamples *int64
	if verb == "serve" {
		what = fs.String("role", "", "")
	} else {
		what = fs.String("mode", "", "")
		dur = fs.Duration("duration", time.Second, "")
		warm = fs.Duration("warm", 100*time.Millisecond, "")
		subs = fs.Int("subs", 0, "")
		maxSamples = fs.Int64("max-samples", 1<<20, "")
	}
	if err := fs.Parse(os.Args[2:]); err != nil {
		if err == flag.ErrHelp {
			usage("%s", usageLine)
		}
		usage("%s: %v", verb, err)
	}
	whatFlag, whatWant := "--role", "echo or source"
	if verb == "run" {
		whatFlag, whatWant = "--mode", "lat or tput"
	}
	p, ok := patterns[*pattern]
	switch {
	case fs.NArg() > 0:
		usage("%s: unexpected argument %q", verb, fs.Arg(0))
	case *pattern == "":
		usage("%s: --pattern is required (pair, reqrep, pushpull, pubsub or fanout)", verb)
	case !ok:
		usage("%s: --pattern %q: want pair, reqrep, pushpull, pubsub or fanout", verb, *pattern)
	case *what == "":
		usage("%s: %s is required", verb, whatFlag)
	case supported[*what] == nil || (verb == "serve") != (*what == "echo" || *what == "source"):
		usage("%s: %s %q: want %s", verb, whatFlag, *what, whatWant)
	case !supported[*what][*pattern]:
		usage("%s: %s has no %s %s", verb, *pattern, whatFlag, *what)
	case *size < 0:
		usage("%s: --size is required", verb)
	case *size > maxSize:
		usage("%s: --size %d: want at most %d", verb, *size, maxSize)
	case *url == "":
		usage("%s: --url is required", verb)
	case *url2 == "" && (*pattern == "pushpull" || *pattern == "pubsub") && (*what == "echo" || *what == "lat"):
		usage("%s: --url2 is required for %s %s", verb, *pattern, *what)
	}
	o := C.struct_peer_opts{
		pattern: p,
		what:    whats[*what],
		size:    C.int64_t(*size),
		queue:   C.int(max(1, min(*queue, 8192))),
		subs:    1,
	}
	if verb == "run" {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		switch {
		case *dur <= 0:
			usage("run: --duration %v: want > 0", *dur)
		case *warm < 0:
			usage("run: --warm %v: want >= 0", *warm)
		case set["subs"] && *subs < 1:
			usage("run: --subs %d: want >= 1", *subs)
		case *maxSamples < 2:
			usage("run: --max-samples %d: want >= 2", *maxSamples)
		}
		if *pattern == "fanout" {
			o.subs = 100
			if set["subs"] {
				o.subs = C.int(*subs)
			}
		}
		o.dur_ns, o.warm_ns, o.max_samples = C.int64_t(*dur), C.int64_t(*warm), C.int64_t(*maxSamples)
	}
	// The strings live until the process exits.
	o.url, o.url2 = C.CString(*url), C.CString(*url2)

	if verb == "serve" {
		if C.peer_serve(&o) != 0 { // it exits itself when stdin ends
			fail(C.GoString(C.peer_error()))
		}
		os.Exit(0)
	}
	var r C.struct_peer_result
	if C.peer_run(&o, &r) != 0 {
		fail(C.GoString(C.peer_error()))
	}
	out, err := json.Marshal(result{
		Samples: int64(r.samples), P50ns: int64(r.p50ns), P99ns: int64(r.p99ns), MinNs: int64(r.minns), MaxNs: int64(r.maxns),
		Msgs: int64(r.msgs), Seconds: float64(r.seconds), MsgsPerS: float64(r.msgs_per_s),
	})
	if err != nil {
		fail(err.Error())
	}
	if _, err := os.Stdout.Write(append(out, '\n')); err != nil {
		fail(err.Error())
	}
	// Exit without closing: the receiving threads are still inside NNG.
	os.Exit(0)
}
