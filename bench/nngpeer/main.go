// Command ferry-nngpeer is the NNG side of `ferry bench --against nng`: a
// small cgo program against libnng (Debian: libnng-dev). Go parses the
// flags and prints the result; the loops that touch messages are in C
// (peer.c), so no cgo call is made per message.
//
//	ferry-nngpeer serve --pattern P --role echo|source --size N --url U [--url2 U2] [--queue Q]
//	ferry-nngpeer run --pattern P --mode lat|tput --size N --url U [--url2 U2] [--queue Q]
//	              [--duration D] [--warm W] [--subs K] [--max-samples S]
//
// serve listens, prints "ready" and runs until its stdin ends. run dials,
// measures and prints one JSON object.
package main

// #cgo LDFLAGS: -lnng -lpthread
// #include <stdlib.h>
// #include "peer.h"
import "C"

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
	"unsafe"
)

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

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "serve" && os.Args[1] != "run") {
		fmt.Fprintln(os.Stderr, "nngpeer: usage: ferry-nngpeer serve|run --pattern P ... (see bench/nngpeer/README.md)")
		os.Exit(2)
	}
	verb := os.Args[1]
	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	pattern := fs.String("pattern", "pair", "")
	role := fs.String("role", "echo", "")
	mode := fs.String("mode", "lat", "")
	url := fs.String("url", "", "")
	url2 := fs.String("url2", "", "")
	size := fs.Int("size", 64, "")
	queue := fs.Int("queue", 128, "")
	subs := fs.Int("subs", 0, "")
	dur := fs.Duration("duration", time.Second, "")
	warm := fs.Duration("warm", 100*time.Millisecond, "")
	maxSamples := fs.Int64("max-samples", 1<<20, "")
	usage := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "nngpeer: "+format+"\n", a...)
		os.Exit(2)
	}
	if err := fs.Parse(os.Args[2:]); err != nil {
		usage("%v", err)
	}
	switch {
	case fs.NArg() > 0:
		usage("unexpected argument %q", fs.Arg(0))
	case *url == "":
		usage("--url is required")
	case *size < 1 || *size > 64<<20:
		usage("--size %d: want 1..%d", *size, 64<<20)
	case *dur <= 0 || *warm < 0:
		usage("--duration must be > 0 and --warm >= 0")
	case *maxSamples < 2:
		usage("--max-samples %d: want >= 2", *maxSamples)
	}
	*queue = max(1, min(*queue, 8192))
	if *pattern == "fanout" && *subs == 0 {
		*subs = 100
	}
	if *subs < 1 {
		*subs = 1
	}
	cs := func(s string) *C.char {
		p := C.CString(s)
		return p // freed at exit
	}
	o := C.struct_peer_opts{
		pattern: cs(*pattern), role: cs(*role), mode: cs(*mode), url: cs(*url), url2: cs(*url2),
		size: C.int(*size), queue: C.int(*queue), subs: C.int(*subs),
		dur_ns: C.int64_t(*dur), warm_ns: C.int64_t(*warm), max_samples: C.int64_t(*maxSamples),
	}
	defer C.free(unsafe.Pointer(o.pattern))
	if verb == "serve" {
		if C.peer_serve(&o) != 0 {
			fmt.Fprintf(os.Stderr, "nngpeer: %s\n", C.GoString(C.peer_error()))
			os.Exit(1)
		}
		return
	}
	var r C.struct_peer_result
	if C.peer_run(&o, &r) != 0 {
		fmt.Fprintf(os.Stderr, "nngpeer: %s\n", C.GoString(C.peer_error()))
		os.Exit(1)
	}
	out, _ := json.Marshal(result{Samples: int64(r.samples), P50ns: int64(r.p50), P99ns: int64(r.p99), MinNs: int64(r.min), MaxNs: int64(r.max),
		Msgs: int64(r.msgs), Seconds: float64(r.seconds), MsgsPerS: float64(r.msgs_per_s)})
	fmt.Println(string(out))
	os.Exit(0) // the receiving threads are still blocked in NNG
}
