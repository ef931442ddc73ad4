package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/selfsigned"
	"github.com/ferrymq/ferry/protocol/pair1"
	"github.com/ferrymq/ferry/protocol/pub"
	"github.com/ferrymq/ferry/protocol/pull"
	"github.com/ferrymq/ferry/protocol/push"
	"github.com/ferrymq/ferry/protocol/req"
)

const benchUsage = `Usage: ferry bench [--quick] [--json] [--patterns list] [--transports list]
                   [--sizes list] [--duration D] [--procs 1|2] [--fanout N]
                   [--against nng [--nng-peer PATH]] [--idle-pipes N]

Measures, for each pattern, transport and message size, between a far
side that listens and a near side that dials and measures:

  latency     round trips, one message in flight: p50 and p99
  throughput  the far side streams (a reused message), the near side
              counts: msg/s and MB/s (10^6 bytes) over the measured time

Send and receive queues are 128 messages deep, or 512 KiB of messages
for large ones (at least 4): 8 at 64 KiB, since deeper queues of large
messages fall out of the CPU cache and cost throughput.

Patterns: pair (PAIR1), pushpull, reqrep, pubsub (one subscriber), and
fanout (one publisher, --fanout subscribers; not in the default list).
  pair      latency: the far side echoes; throughput: one way
  pushpull  latency: PUSH->PULL, then back over a second PUSH->PULL link
  reqrep    latency: one context against a Serve echo (the reply takes
            the request's body, Msg.SwapBody); throughput: replies/s
            with 8 contexts in flight
  pubsub    latency: PUB->SUB, back over a second PUB->SUB link;
            throughput: the publisher sends flat out (PUB never blocks;
            what a subscriber's queue cannot take is dropped), msg/s
            counts what the subscriber received
  fanout    throughput only: messages received by all subscribers
            together per second

With --procs 2 the far side runs in a second process that ferry bench
starts itself (` + "`ferry bench-peer`" + `); inproc rows stay in one process.

With tcp among the transports, a raw-TCP floor is measured in the same run
for each size: length-prefixed frames over a plain net.TCPConn on loopback
with bufio, no library (pattern "raw"), across processes too with
--procs 2. Each tcp row then shows "lat x floor" (its p50 / the floor's
p50) and "tput x floor" (its msg/s / the floor's msg/s). With fanout
among the patterns, a raw fan-out floor is measured too (row "raw/N"):
one raw stream per subscriber, each written flat out from one buffer by
a goroutine of its own, msg/s counting what all N readers received; the
tcp fanout row's "tput x floor" is against it.

--against nng runs every workload over tcp and ipc a second time between
two NNG processes (ferry-nngpeer, a small cgo program against libnng in
bench/nngpeer; the same queue depths) and adds NNG's p50 and msg/s and
the ratios "lat x nng" (ferry p50 / NNG p50: lower is better) and
"tput x nng" (ferry msg/s / NNG msg/s: higher is better). It implies
--procs 2; without --patterns and --transports it runs every pattern,
fanout included, over tcp. NNG's reqrep has no throughput figure.

--idle-pipes N opens N tcp pipes from a second process to one listener
here and reports the resident memory (RSS) they cost per pipe.

Flags:
  --quick          tiny durations, as run in CI (whole run in seconds)
  --json           print one JSON document with every result
  --patterns P     comma-separated subset of pair,pushpull,reqrep,pubsub,
                   fanout (default pair,pushpull,reqrep,pubsub)
  --transports T   comma-separated subset of inproc,ipc,tcp,ws,tls+tcp,
                   wss,quic (default inproc,ipc,tcp; tls+tcp, wss and quic
                   use a self-signed certificate made in memory)
  --sizes S        comma-separated message sizes in bytes; k and m suffixes
                   (KiB, MiB) are allowed (default 64,1024,65536,1048576)
  --duration D     time per measurement (default 1s; 30ms with --quick)
  --procs N        1: far side in this process (default); 2: in a second
  --fanout N       subscribers in the fanout pattern, 1..1000 (default 100)
  --against nng    compare with NNG (see above)
  --nng-peer PATH  the ferry-nngpeer binary (default: on PATH, or next to
                   this program)
  --idle-pipes N   measure N idle tcp pipes, 0..100000 (default 0: skip)
  --cpuprofile F   write a CPU profile of this process (the near side) to F
  --rounds N       run the whole list N times, interleaved, and report
                   each row's medians (1..100, default 1): on a shared
                   machine latencies move by 2x from minute to minute
  --copy           ferry's streaming senders copy each payload into their
                   message (SetBody), as a sender filling messages with
                   fresh data does; by default they lend one payload
                   (SetBodyShared), as the raw floor writes one buffer

A progress line is drawn on stderr once a run passes one second. A
measurement whose messages stop for 10s fails as "stalled" with the
sockets' counters instead of hanging; a throughput row in which nothing
arrived for a quarter of a measured window or more gets a note under
the table (a stall, not a steady rate; "longest_gap" in the JSON).

Examples:
  ferry bench
  ferry bench --quick
  ferry bench --patterns pair,reqrep --transports tcp --sizes 64,64k
  ferry bench --procs 2 --transports tcp --sizes 64,64k --duration 3s
  ferry bench --against nng --sizes 64,64k --duration 2s --rounds 5
  ferry bench --procs 2 --transports tcp --patterns fanout --sizes 64
  ferry bench --idle-pipes 10000 --patterns pair --transports inproc --sizes 64
  ferry bench --duration 3s --json > bench.json
`

// benchProgress is where the progress line goes.
var benchProgress io.Writer = os.Stderr

var (
	benchPatterns    = []string{"pair", "pushpull", "reqrep", "pubsub", "fanout"}
	benchDefPatterns = []string{"pair", "pushpull", "reqrep", "pubsub"}
	benchTransports  = []string{"inproc", "ipc", "tcp", "ws", "tls+tcp", "wss", "quic"}
	benchDefaultTr   = []string{"inproc", "ipc", "tcp"}
	benchDefSizes    = []int{64, 1024, 65536, 1048576}
)

const benchMaxSize = 64 << 20

// benchResult is one row: a pattern over a transport at one size.
type benchResult struct {
	Pattern   string `json:"pattern"`
	Transport string `json:"transport"`
	Size      int    `json:"size"`
	// Latency: round trips.
	Samples int     `json:"latency_samples"`
	P50ns   int64   `json:"p50_ns"`
	P99ns   int64   `json:"p99_ns"`
	MinNs   int64   `json:"min_ns"`
	MaxNs   int64   `json:"max_ns"`
	LatXF   float64 `json:"lat_x_floor,omitempty"`
	// Throughput.
	Msgs     int64   `json:"msgs"`
	Seconds  float64 `json:"seconds"`
	MsgsPerS float64 `json:"msgs_per_sec"`
	MBPerS   float64 `json:"mb_per_sec"`
	TputXF   float64 `json:"tput_x_floor,omitempty"`
	// Gap: the longest part of the throughput window in which nothing
	// arrived, as a fraction of the window (sampled every 1/30 of it);
	// over rounds, the worst. A low figure with a large gap is a stall
	// (of the far side, or of this machine), not a slow steady rate.
	Gap       float64 `json:"longest_gap,omitempty"`
	Floor     bool    `json:"floor,omitempty"`
	Procs     int     `json:"procs"` // 2: the far side ran in its own process
	ErrString string  `json:"error,omitempty"`
	// With --against nng: the same workload between two NNG processes.
	NNG      *benchResult `json:"nng,omitempty"`
	LatXNNG  float64      `json:"lat_x_nng,omitempty"`
	TputXNNG float64      `json:"tput_x_nng,omitempty"`
}

type benchReport struct {
	Go         string        `json:"go"`
	GOOS       string        `json:"goos"`
	GOARCH     string        `json:"goarch"`
	GOMAXPROCS int           `json:"gomaxprocs"`
	Duration   string        `json:"duration"`
	Quick      bool          `json:"quick"`
	Procs      int           `json:"procs"`
	Against    string        `json:"against,omitempty"`
	Fanout     int           `json:"fanout"`
	Rounds     int           `json:"rounds"`
	CopySends  bool          `json:"copy_sends"`
	Results    []benchResult `json:"results"`
	Idle       *benchIdle    `json:"idle_pipes,omitempty"`
}

type benchOpts struct {
	dur, warm time.Duration
	minMsgs   int64
	tmpDir    string
	lat       []int64 // preallocated latency samples, reused
	procs     int     // 2: far sides in a child process
	copySends bool    // streaming senders copy each payload (SetBody), --copy
	fanout    int     // subscribers in the fanout pattern
	nngPeer   string  // ferry-nngpeer binary, with --against nng
	// window, if set, is called as benchCount's measured window opens
	// (false) and closes (true): tests read allocation counts there,
	// away from setup and teardown.
	window func(end bool)
}

func runBench(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	quick := fs.Bool("quick", false, "")
	asJSON := fs.Bool("json", false, "")
	patterns := fs.String("patterns", strings.Join(benchDefPatterns, ","), "")
	transports := fs.String("transports", strings.Join(benchDefaultTr, ","), "")
	sizes := fs.String("sizes", "64,1024,65536,1048576", "")
	duration := fs.Duration("duration", time.Second, "")
	procs := fs.Int("procs", 1, "")
	against := fs.String("against", "", "")
	nngPeer := fs.String("nng-peer", "", "")
	fanout := fs.Int("fanout", 100, "")
	idle := fs.Int("idle-pipes", 0, "")
	cpuprofile := fs.String("cpuprofile", "", "")
	rounds := fs.Int("rounds", 1, "")
	copySends := fs.Bool("copy", false, "")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%v (see: ferry help bench)", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see: ferry help bench)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *duration <= 0 {
		return fmt.Errorf("--duration %v: must be > 0", *duration)
	}
	if *procs != 1 && *procs != 2 {
		return fmt.Errorf("--procs %d: must be 1 or 2", *procs)
	}
	if *against != "" && *against != "nng" {
		return fmt.Errorf("--against %q: the only peer is nng", *against)
	}
	if *fanout < 1 || *fanout > 1000 {
		return fmt.Errorf("--fanout %d: must be 1..1000", *fanout)
	}
	if *rounds < 1 || *rounds > 100 {
		return fmt.Errorf("--rounds %d: must be 1..100", *rounds)
	}
	if *idle < 0 || *idle > 100000 {
		return fmt.Errorf("--idle-pipes %d: must be 0..100000", *idle)
	}
	if *against == "nng" {
		*procs = 2 // NNG's figures come from two processes; so do ours
		if !set["patterns"] {
			*patterns = strings.Join(benchPatterns, ",")
		}
		if !set["transports"] {
			*transports = "tcp"
		}
	}
	pats, err := benchList("--patterns", *patterns, benchPatterns)
	if err != nil {
		return err
	}
	trs, err := benchList("--transports", *transports, benchTransports)
	if err != nil {
		return err
	}
	szs, err := benchParseSizes(*sizes)
	if err != nil {
		return err
	}
	o := &benchOpts{dur: *duration, minMsgs: 8, procs: *procs, fanout: *fanout, copySends: *copySends}
	if *quick && !set["duration"] {
		o.dur = 30 * time.Millisecond
		o.minMsgs = 2
	}
	o.warm = min(o.dur/10, 100*time.Millisecond)
	o.lat = make([]int64, benchLatCap(o.dur))
	if *against == "nng" {
		if o.nngPeer, err = benchFindNNGPeer(*nngPeer); err != nil {
			return err
		}
	}
	if slices.Contains(trs, "ipc") {
		d, err := os.MkdirTemp("", "ferrybench")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		o.tmpDir = d
	}

	if *cpuprofile != "" {
		stop, err := benchProfile(*cpuprofile)
		if err != nil {
			return err
		}
		defer stop()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	type job struct {
		pattern, tr string
		size        int
	}
	var jobs []job
	if slices.Contains(trs, "tcp") {
		for _, sz := range szs {
			jobs = append(jobs, job{"raw", "tcp", sz})
		}
		if slices.Contains(pats, "fanout") {
			for _, sz := range szs {
				jobs = append(jobs, job{benchRawFanout, "tcp", sz})
			}
		}
	}
	if slices.Contains(trs, "inproc") {
		for _, sz := range szs {
			jobs = append(jobs, job{"chan", "inproc", sz})
		}
	}
	for _, p := range pats {
		for _, tr := range trs {
			for _, sz := range szs {
				jobs = append(jobs, job{p, tr, sz})
			}
		}
	}
	pr := benchNewProgress(len(jobs) * *rounds)
	type floorKey struct {
		tr     string
		size   int
		fanout bool // the raw fan-out floor, for the fanout rows
	}
	floors := map[floorKey]benchResult{}
	rep := benchReport{Go: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH,
		GOMAXPROCS: runtime.GOMAXPROCS(0), Duration: o.dur.String(), Quick: *quick, Procs: o.procs, Against: *against,
		Fanout: o.fanout, Rounds: *rounds, CopySends: o.copySends}
	// Rounds run the whole list again, so that every row sees the machine
	// in the same states; each row reports its medians.
	all := make([][]benchResult, len(jobs))
	nngs := make([][]benchResult, len(jobs))
	for round := range *rounds {
		for i, j := range jobs {
			if ctx.Err() != nil {
				break
			}
			what := j.pattern + " " + j.tr + " " + benchSize(j.size)
			pr.step(round*len(jobs)+i, what)
			all[i] = append(all[i], benchOne(ctx, o, j.pattern, j.tr, j.size))
			if *against == "nng" && benchNNGHas(j.pattern, j.tr) {
				pr.step(round*len(jobs)+i, what+" (nng)")
				nngs[i] = append(nngs[i], benchNNG(ctx, o, j.pattern, j.tr, j.size))
			}
		}
	}
	for i := range jobs {
		if ctx.Err() != nil {
			break
		}
		r := benchMedian(all[i])
		if len(nngs[i]) > 0 {
			nr := benchMedian(nngs[i])
			r.NNG = &nr
			if r.P50ns > 0 && nr.P50ns > 0 {
				r.LatXNNG = float64(r.P50ns) / float64(nr.P50ns)
			}
			if r.MsgsPerS > 0 && nr.MsgsPerS > 0 {
				r.TputXNNG = r.MsgsPerS / nr.MsgsPerS
			}
		}
		fan := r.Pattern == "fanout" || r.Pattern == benchRawFanout
		if r.Floor {
			floors[floorKey{r.Transport, r.Size, fan}] = r
		} else if f, ok := floors[floorKey{r.Transport, r.Size, fan}]; ok && r.ErrString == "" {
			if f.P50ns > 0 && r.P50ns > 0 {
				r.LatXF = float64(r.P50ns) / float64(f.P50ns)
			}
			if f.MsgsPerS > 0 {
				r.TputXF = r.MsgsPerS / f.MsgsPerS
			}
		}
		rep.Results = append(rep.Results, r)
	}
	if *idle > 0 && ctx.Err() == nil {
		pr.step(len(jobs), fmt.Sprintf("%d idle pipes", *idle))
		ir := benchIdlePipes(ctx, *idle, pr)
		rep.Idle = &ir
	}
	pr.done()
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printBench(out, rep)
	}
	failed, total := 0, len(rep.Results)
	for _, r := range rep.Results {
		if r.ErrString != "" {
			failed++
		}
		if r.NNG != nil {
			total++
			if r.NNG.ErrString != "" {
				failed++
			}
		}
	}
	if rep.Idle != nil {
		total++
		if rep.Idle.ErrString != "" {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d measurements failed", failed, total)
	}
	return nil
}

// benchGapNote: a row whose longest gap is this much of its window gets
// a note under the table.
const benchGapNote = 0.25

// benchMedian folds the rounds of one row into one: the median of each
// figure (p50, p99, msg/s taken separately), sample and message counts
// summed; any failed round fails the row.
func benchMedian(rs []benchResult) benchResult {
	r := rs[0]
	if len(rs) == 1 {
		return r
	}
	med := func(f func(benchResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, x := range rs {
			v[i] = f(x)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	r.P50ns = int64(med(func(x benchResult) float64 { return float64(x.P50ns) }))
	r.P99ns = int64(med(func(x benchResult) float64 { return float64(x.P99ns) }))
	r.MinNs = int64(med(func(x benchResult) float64 { return float64(x.MinNs) }))
	r.MaxNs = int64(med(func(x benchResult) float64 { return float64(x.MaxNs) }))
	r.MsgsPerS = med(func(x benchResult) float64 { return x.MsgsPerS })
	r.MBPerS = med(func(x benchResult) float64 { return x.MBPerS })
	r.Samples, r.Msgs, r.Seconds = 0, 0, 0
	for _, x := range rs {
		r.Gap = max(r.Gap, x.Gap) // the worst round's
		r.Samples += x.Samples
		r.Msgs += x.Msgs
		r.Seconds += x.Seconds
		if x.ErrString != "" && r.ErrString == "" {
			r.ErrString = x.ErrString
		}
	}
	return r
}

// benchProgress draws "bench i/n  what" on stderr once a run has taken a
// second, at most ten times a second.
type benchProgressLine struct {
	n           int
	start, last time.Time
	drawn       bool
}

func benchNewProgress(n int) *benchProgressLine {
	return &benchProgressLine{n: n, start: time.Now()}
}

func (p *benchProgressLine) step(i int, what string) {
	if now := time.Now(); now.Sub(p.start) > time.Second && now.Sub(p.last) > 100*time.Millisecond {
		p.last, p.drawn = now, true
		fmt.Fprintf(benchProgress, "\r\033[Kbench %d/%d  %s", min(i+1, p.n), p.n, what)
	}
}

func (p *benchProgressLine) done() {
	if p.drawn {
		fmt.Fprint(benchProgress, "\r\033[K")
	}
}

// benchLatCap sizes the latency slice: enough for 1 µs round trips over
// the whole duration, at most 4M samples (32 MiB).
func benchLatCap(d time.Duration) int {
	n := int(d / time.Microsecond)
	return max(1024, min(n, 4<<20))
}

func benchList(flagName, s string, known []string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		f = strings.ReplaceAll(f, "/", "")
		if f == "" {
			continue
		}
		if !slices.Contains(known, f) {
			return nil, fmt.Errorf("%s: unknown %q (have %s)", flagName, f, strings.Join(known, ", "))
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: empty list", flagName)
	}
	return out, nil
}

func benchParseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		if f == "" {
			continue
		}
		mul := 1
		num := strings.TrimSuffix(strings.TrimSuffix(f, "ib"), "b")
		switch {
		case strings.HasSuffix(num, "k"):
			mul, num = 1<<10, strings.TrimSuffix(num, "k")
		case strings.HasSuffix(num, "m"):
			mul, num = 1<<20, strings.TrimSuffix(num, "m")
		}
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 || n*mul > benchMaxSize {
			return nil, fmt.Errorf("--sizes: bad size %q (want 1..64m bytes)", f)
		}
		if !slices.Contains(out, n*mul) {
			out = append(out, n*mul)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("--sizes: empty list")
	}
	return out, nil
}

func benchSize(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

func benchDur(ns int64) string {
	d := time.Duration(ns)
	switch {
	case d < 10*time.Microsecond:
		return fmt.Sprintf("%.2fµs", float64(ns)/1e3)
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fµs", float64(ns)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(ns)/1e6)
	}
	return d.Round(time.Millisecond).String()
}

func benchRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func benchRatio(v float64) string {
	if v < 0.1 {
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func printBench(out io.Writer, rep benchReport) {
	where := "far side in this process"
	if rep.Procs == 2 {
		where = "far side in a second process (inproc: this one)"
	}
	sends := "streams lend their payload (SetBodyShared)"
	if rep.CopySends {
		sends = "streams copy each payload (SetBody, --copy)"
	}
	fmt.Fprintf(out, "%s %s/%s GOMAXPROCS=%d, %s per measurement, %s, %s\n\n", rep.Go, rep.GOOS, rep.GOARCH, rep.GOMAXPROCS, rep.Duration, where, sends)
	nng := rep.Against == "nng"
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "pattern\ttransport\tsize\tp50\tp99\tmsg/s\tMB/s\tlat x floor\ttput x floor\t"
	if nng {
		head += "nng p50\tnng msg/s\tlat x nng\ttput x nng\t"
	}
	fmt.Fprintln(tw, head)
	dash := func(ok bool, s string) string {
		if !ok {
			return "-"
		}
		return s
	}
	ratio := func(v float64) string { return dash(v > 0, benchRatio(v)) }
	for _, r := range rep.Results {
		name := r.Pattern
		switch r.Pattern {
		case "fanout":
			name = fmt.Sprintf("fanout/%d", rep.Fanout)
		case benchRawFanout:
			name = fmt.Sprintf("raw/%d", rep.Fanout)
		}
		line := fmt.Sprintf("%s\t%s\t%s\t", name, r.Transport, benchSize(r.Size))
		if r.ErrString != "" {
			line += "FAIL\t\t\t\t\t\t"
		} else {
			lx, tx := ratio(r.LatXF), ratio(r.TputXF)
			if r.Floor {
				lx, tx = dash(r.P50ns > 0, "1"), "1"
			}
			line += fmt.Sprintf("%s\t%s\t%s\t%.1f\t%s\t%s\t", dash(r.P50ns > 0, benchDur(r.P50ns)), dash(r.P99ns > 0, benchDur(r.P99ns)),
				benchRate(r.MsgsPerS), r.MBPerS, lx, tx)
		}
		if nng {
			switch n := r.NNG; {
			case n == nil:
				line += "\t\t\t\t"
			case n.ErrString != "":
				line += "FAIL\t\t\t\t"
			default:
				line += fmt.Sprintf("%s\t%s\t%s\t%s\t", dash(n.P50ns > 0, benchDur(n.P50ns)), dash(n.MsgsPerS > 0, benchRate(n.MsgsPerS)),
					ratio(r.LatXNNG), ratio(r.TputXNNG))
			}
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	for _, r := range rep.Results {
		if r.ErrString != "" {
			fmt.Fprintf(out, "FAIL %s %s %s: %s\n", r.Pattern, r.Transport, benchSize(r.Size), r.ErrString)
		}
		if r.Gap >= benchGapNote {
			fmt.Fprintf(out, "note %s %s %s: nothing arrived for %.0f%% of a measured window in a row: a stall, not a steady rate\n",
				r.Pattern, r.Transport, benchSize(r.Size), 100*r.Gap)
		}
		if r.NNG != nil && r.NNG.ErrString != "" {
			fmt.Fprintf(out, "FAIL nng %s %s %s: %s\n", r.Pattern, r.Transport, benchSize(r.Size), r.NNG.ErrString)
		}
	}
	if i := rep.Idle; i != nil {
		if i.ErrString != "" {
			fmt.Fprintf(out, "\nFAIL idle pipes: %s\n", i.ErrString)
		} else {
			fmt.Fprintf(out, "\nidle pipes: %d tcp pipes on one listener: RSS +%.1f MiB, %.1f KiB per pipe (heap %.1f KiB, %.1f goroutines per pipe)\n",
				i.Pipes, float64(i.RSSDelta)/(1<<20), i.RSSPerPipe/1024, i.HeapPerPipe/1024, i.GoroutinesPerPipe)
		}
	}
}

// benchOne runs the latency and the throughput measurement of one row
// (fanout has no latency measurement).
func benchOne(ctx context.Context, o *benchOpts, pattern, tr string, size int) benchResult {
	r := benchResult{Pattern: pattern, Transport: tr, Size: size, Floor: pattern == "raw" || pattern == "chan" || pattern == benchRawFanout, Procs: 1}
	if pattern == "chan" {
		err := benchChanLatency(ctx, o, size, &r)
		if err == nil {
			err = benchChanThroughput(ctx, o, size, &r)
		}
		if err != nil && ctx.Err() == nil {
			r.ErrString = err.Error()
		}
		return r
	}
	if o.twoProcs(tr) {
		r.Procs = 2
	}
	payload := make([]byte, size)
	var err error
	if pattern != "fanout" && pattern != benchRawFanout {
		err = benchLatency(ctx, o, pattern, tr, payload, &r)
	}
	if err == nil {
		err = benchThroughput(ctx, o, pattern, tr, payload, &r)
	}
	if err != nil && ctx.Err() == nil {
		r.ErrString = err.Error()
	}
	return r
}

var benchSeq atomic.Int64

func benchAddr(o *benchOpts, tr string) string {
	n := benchSeq.Add(1)
	switch tr {
	case "inproc":
		return fmt.Sprintf("inproc://ferry-bench-%d-%d", os.Getpid(), n)
	case "ipc":
		return "ipc://" + filepath.Join(o.tmpDir, fmt.Sprintf("b%d.sock", n))
	case "ws", "wss":
		return fmt.Sprintf("%s://127.0.0.1:0/bench%d", tr, n)
	case "tls+tcp", "quic":
		return tr + "://127.0.0.1:0"
	}
	return "tcp://127.0.0.1:0"
}

// benchCfg keeps queued bytes bounded for big messages: at most
// benchQueueBytes a queue (but 4 messages), so 8 at 64 KiB. Deeper queues
// of large messages cost throughput: each holds its own block, and 128
// of 64 KiB (8 MiB) no longer stay in the cache, so every copy into one
// and out of one misses (64 KiB PAIR1 and PUSH/PULL: 34-42 k msg/s at 128
// deep, 42-54 k at 8, 37-42 k at 4; 3 interleaved runs each, 2 procs).
func benchCfg(size int, queue int) ferry.SocketConfig {
	q := max(4, min(queue, benchQueueBytes/size))
	return ferry.SocketConfig{SendQueueLen: q, RecvQueueLen: q, RecvMaxSize: max(ferry.DefaultRecvMaxSize, size+1024)}
}

const benchQueueBytes = 512 << 10

type benchLink struct {
	sockets []*ferry.Socket
}

func (b *benchLink) close() {
	for _, s := range b.sockets {
		s.Close()
	}
}

// explain adds the near sockets' counters to a stall, so that a failed
// run says where the messages stopped.
func (b *benchLink) explain(err error) error {
	if err == nil || !strings.HasPrefix(err.Error(), "stalled") {
		return err
	}
	var sb strings.Builder
	for i, s := range b.sockets {
		st := s.Stats()
		fmt.Fprintf(&sb, "; socket %d: %d pipes open, %d closed %v, msgs in %d out %d, dropped %d",
			i, st.PipesOpen, st.PipesClosed, st.CloseReasons, st.MsgsIn, st.MsgsOut, st.Dropped)
	}
	return fmt.Errorf("%v%s", err, sb.String())
}

// dial makes a near socket with mk and connects it to the far side's
// URL number i; it returns once the pipe is up.
func (b *benchLink) dial(ctx context.Context, far *benchFar, i int, mk func(ferry.SocketConfig) (*ferry.Socket, error), cfg ferry.SocketConfig) (*ferry.Socket, error) {
	if i >= len(far.urls) {
		return nil, fmt.Errorf("far side has %d addresses, want %d", len(far.urls), i+1)
	}
	s, err := mk(cfg)
	if err != nil {
		return nil, err
	}
	b.sockets = append(b.sockets, s)
	var dc ferry.DialerConfig
	if far.cert != nil {
		if dc.TLS, err = selfsigned.Client(far.cert); err != nil {
			return nil, err
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d, err := s.NewDialer(far.urls[i], dc)
	if err != nil {
		return nil, err
	}
	if err := d.Start(dctx); err != nil {
		return nil, fmt.Errorf("dial %s: %v", far.urls[i], err)
	}
	return s, nil
}

// startFar starts the far side: in a child process with --procs 2
// (inproc cannot leave the process), here otherwise.
func (o *benchOpts) startFar(ctx context.Context, pattern, role, tr string, size int) (*benchFar, error) {
	if o.twoProcs(tr) {
		var extra []string
		if o.copySends {
			extra = append(extra, "--copy")
		}
		return benchStartPeer(ctx, pattern, role, tr, size, extra...)
	}
	return benchStartFar(ctx, o, pattern, role, tr, size)
}

func (o *benchOpts) twoProcs(tr string) bool { return o.procs == 2 && tr != "inproc" }

// percentiles sorts lat and fills in the latency fields of r.
func benchPercentiles(lat []int64, r *benchResult) {
	slices.Sort(lat)
	r.Samples = len(lat)
	if len(lat) == 0 {
		return
	}
	at := func(p float64) int64 { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	r.P50ns, r.P99ns, r.MinNs, r.MaxNs = at(0.50), at(0.99), lat[0], lat[len(lat)-1]
}

// benchStall is how long a round trip may take before the measurement
// fails as stalled (instead of hanging).
var benchStall = 10 * time.Second

// benchRoundTrips calls rt until the duration has passed (after warm-up)
// or the sample slice is full, and records each round trip. With lossy
// (PUB/SUB, whose first messages go nowhere until the publisher has the
// pipe) a warm-up round trip that times out is sent again. A watchdog
// fails the run when no round trip completes for benchStall.
func benchRoundTrips(ctx context.Context, o *benchOpts, lossy bool, rt func(context.Context) error, r *benchResult) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var done atomic.Int64
	defer benchWatchdog(ctx, cancel, &done, benchStall)()
	fail := func(err error) error {
		if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
			return c
		}
		return err
	}
	for end := time.Now().Add(o.warm); time.Now().Before(end) || done.Load() == 0; {
		if lossy {
			tctx, tcancel := context.WithTimeout(ctx, 200*time.Millisecond)
			err := rt(tctx)
			tcancel()
			if errors.Is(err, ferry.ErrTimeout) && ctx.Err() == nil {
				continue
			}
			if err != nil {
				return fail(err)
			}
		} else if err := rt(ctx); err != nil {
			return fail(err)
		}
		done.Add(1)
	}
	lat := o.lat[:0]
	// The monotonic clock alone (time.Since reads it once; time.Now reads
	// the wall clock too, ~50 ns more on a VM): two reads per round trip.
	base := time.Now()
	end := o.dur
	for len(lat) < cap(lat) && ctx.Err() == nil {
		t0 := time.Since(base)
		if err := rt(ctx); err != nil {
			return fail(err)
		}
		t1 := time.Since(base)
		done.Add(1)
		lat = append(lat, int64(t1-t0))
		if t1 > end && len(lat) >= int(o.minMsgs) {
			break
		}
	}
	benchPercentiles(lat, r)
	return fail(nil)
}

// benchWatchdog cancels ctx when done has not moved for limit; the
// returned function stops it.
func benchWatchdog(ctx context.Context, cancel context.CancelCauseFunc, done *atomic.Int64, limit time.Duration) func() {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(limit / 20)
		defer t.Stop()
		last, since := done.Load(), time.Now()
		for {
			select {
			case <-quit:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if n := done.Load(); n != last {
				last, since = n, time.Now()
			} else if time.Since(since) > limit {
				cancel(fmt.Errorf("stalled: no round trip completed for %v", limit))
				return
			}
		}
	})
	return func() { close(quit); wg.Wait() }
}

// benchEcho receives on in and sends the same message on out until either
// fails.
func benchEcho(ctx context.Context, in, out *ferry.Socket) {
	var m ferry.Msg
	defer m.Free()
	for in.RecvMsg(ctx, &m) == nil && out.Send(ctx, &m) == nil {
	}
}

func benchLatency(ctx context.Context, o *benchOpts, pattern, tr string, payload []byte, r *benchResult) error {
	far, err := o.startFar(ctx, pattern, "echo", tr, len(payload))
	if err != nil {
		return err
	}
	defer far.stop()
	if pattern == "raw" {
		return benchRawLatency(ctx, o, far.urls[0], payload, r)
	}
	var links benchLink
	defer links.close()
	cfg := benchCfg(len(payload), ferry.DefaultSendQueueLen)
	m := ferry.NewMsg(len(payload))
	defer m.Free()
	var out, in *ferry.Socket
	var send, recv func(context.Context, *ferry.Msg) error
	switch pattern {
	case "pair":
		if out, err = links.dial(ctx, far, 0, pair1.New, cfg); err != nil {
			return err
		}
		in = out
	case "pushpull", "pubsub":
		mkOut, mkIn := push.New, pull.New
		if pattern == "pubsub" {
			mkOut, mkIn = pub.New, benchNewSub
		}
		if out, err = links.dial(ctx, far, 0, mkOut, cfg); err != nil {
			return err
		}
		if in, err = links.dial(ctx, far, 1, mkIn, cfg); err != nil {
			return err
		}
	case "reqrep":
		rq, err := links.dial(ctx, far, 0, req.New, cfg)
		if err != nil {
			return err
		}
		c, err := rq.OpenContext()
		if err != nil {
			return err
		}
		defer c.Close()
		send, recv = c.Send, c.RecvMsg
	default:
		return fmt.Errorf("no latency measurement for %s", pattern)
	}
	if send == nil {
		send, recv = out.Send, in.RecvMsg
	}
	return links.explain(benchRoundTrips(ctx, o, pattern == "pubsub", func(ctx context.Context) error {
		m.SetBody(payload)
		if err := send(ctx, m); err != nil {
			return err
		}
		if err := recv(ctx, m); err != nil {
			return err
		}
		return benchCheckLen(m, len(payload))
	}, r))
}

// benchProfile writes a CPU profile to path until stop is called.
func benchProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func benchCheckLen(m *ferry.Msg, n int) error {
	if len(m.Body) != n {
		return fmt.Errorf("echo of %d bytes came back with %d", n, len(m.Body))
	}
	return nil
}

// benchServe echoes requests on rp until ctx ends or rp closes. The
// reply takes the request's body (SwapBody), as NNG's echo sends back
// the message it received: neither copies.
func benchServe(ctx context.Context, rp *ferry.Socket, workers int) {
	rp.Serve(ctx, func(_ context.Context, q, a *ferry.Msg) error {
		a.SwapBody(q)
		return nil
	}, ferry.ServeConfig{Workers: workers})
}

// benchCount measures a running stream: it waits for the first message,
// lets the warm-up pass, and counts what arrives over the duration (longer
// if fewer than minMsgs arrived).
func benchCount(ctx context.Context, o *benchOpts, got *atomic.Int64, size int, r *benchResult) error {
	limit := time.Now().Add(30 * time.Second)
	for got.Load() == 0 {
		if time.Now().After(limit) || ctx.Err() != nil {
			return errors.New("no message arrived")
		}
		time.Sleep(100 * time.Microsecond)
	}
	time.Sleep(o.warm)
	if o.window != nil {
		o.window(false)
	}
	c0, t0 := got.Load(), time.Now()
	r.Gap = benchWatch(got, t0, o.dur)
	for got.Load()-c0 < o.minMsgs && time.Since(t0) < 30*time.Second && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	c1, t1 := got.Load(), time.Now()
	if o.window != nil {
		o.window(true)
	}
	if c1-c0 < o.minMsgs {
		return fmt.Errorf("stalled: %d messages in %v", c1-c0, t1.Sub(t0).Round(time.Millisecond))
	}
	r.Msgs, r.Seconds = c1-c0, t1.Sub(t0).Seconds()
	r.MsgsPerS = float64(r.Msgs) / r.Seconds
	r.MBPerS = r.MsgsPerS * float64(size) / 1e6
	return nil
}

// benchWatch waits until d has passed since t0, looking at got every
// d/30, and returns the longest stretch in which got did not move, as a
// fraction of d.
func benchWatch(got *atomic.Int64, t0 time.Time, d time.Duration) float64 {
	step := max(d/30, time.Millisecond)
	last, since := got.Load(), t0
	var gap time.Duration
	for now := t0; now.Sub(t0) < d; now = time.Now() {
		if c := got.Load(); c != last {
			last, since = c, now
		}
		gap = max(gap, now.Sub(since))
		time.Sleep(min(step, d-now.Sub(t0)))
	}
	if got.Load() == last {
		gap = max(gap, time.Since(since))
	}
	return min(1, gap.Seconds()/d.Seconds())
}

// benchThroughput: the far side streams (reqrep: serves), the near side
// counts what arrives. PUB sends flat out and drops what a subscriber's
// queue cannot take, so pubsub and fanout count deliveries.
func benchThroughput(ctx context.Context, o *benchOpts, pattern, tr string, payload []byte, r *benchResult) error {
	role := "source"
	if pattern == "reqrep" {
		role = "echo"
	}
	size := len(payload)
	farPattern, streams := pattern, 1
	if pattern == benchRawFanout {
		farPattern, streams = "raw", o.fanout
	}
	far, err := o.startFar(ctx, farPattern, role, tr, size)
	if err != nil {
		return err
	}
	defer far.stop()
	if farPattern == "raw" {
		return benchRawThroughput(ctx, o, far.urls[0], size, streams, r)
	}
	ctx, cancel := context.WithCancel(ctx)
	var links benchLink
	var wg sync.WaitGroup
	defer func() { cancel(); links.close(); wg.Wait() }()
	var got atomic.Int64
	receive := func(s *ferry.Socket) {
		var m ferry.Msg
		defer m.Free()
		for s.RecvMsg(ctx, &m) == nil {
			got.Add(1)
		}
	}
	cfg := benchCfg(size, ferry.DefaultSendQueueLen)
	mks := map[string]func(ferry.SocketConfig) (*ferry.Socket, error){
		"pair": pair1.New, "pushpull": pull.New, "pubsub": benchNewSub, "fanout": benchNewSub, "reqrep": req.New}
	n := 1
	if pattern == "fanout" {
		n = o.fanout
	}
	for range n {
		s, err := links.dial(ctx, far, 0, mks[pattern], cfg)
		if err != nil {
			return err
		}
		if pattern != "reqrep" {
			wg.Go(func() { receive(s) })
			continue
		}
		for range benchReqrepWorkers {
			c, err := s.OpenContext()
			if err != nil {
				return err
			}
			wg.Go(func() {
				defer c.Close()
				m := ferry.NewMsg(size)
				defer m.Free()
				for {
					m.SetBody(payload)
					if c.Send(ctx, m) != nil || c.RecvMsg(ctx, m) != nil {
						return
					}
					got.Add(1)
				}
			})
		}
	}
	return links.explain(benchCount(ctx, o, &got, size, r))
}

// The inproc floor: two goroutines and bare channels, no library. A round
// trip is a slice sent one way and back over two unbuffered channels;
// throughput is one goroutine sending into a channel of 128 that another
// drains.

func benchChanLatency(ctx context.Context, o *benchOpts, size int, r *benchResult) error {
	ping, pong := make(chan []byte), make(chan []byte)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case b := <-ping:
				pong <- b
			case <-done:
				return
			}
		}
	}()
	buf := make([]byte, size)
	return benchRoundTrips(ctx, o, false, func(ctx context.Context) error {
		ping <- buf
		select {
		case buf = <-pong:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, r)
}

func benchChanThroughput(ctx context.Context, o *benchOpts, size int, r *benchResult) error {
	q := make(chan []byte, ferry.DefaultRecvQueueLen)
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(done); wg.Wait() }()
	var got atomic.Int64
	buf := make([]byte, size)
	wg.Go(func() {
		for {
			select {
			case q <- buf:
			case <-done:
				return
			}
		}
	})
	wg.Go(func() {
		for {
			select {
			case <-q:
				got.Add(1)
			case <-done:
				return
			}
		}
	})
	return benchCount(ctx, o, &got, size, r)
}

// The raw-TCP floor: 8-byte big-endian length, then the payload, over a
// plain TCP connection on loopback with 64 KiB bufio buffers each way.

func benchRawDial(ctx context.Context, url string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", strings.TrimPrefix(url, "tcp://"))
}

func benchRawWrite(w *bufio.Writer, p []byte) error {
	var h [8]byte
	binary.BigEndian.PutUint64(h[:], uint64(len(p)))
	w.Write(h[:])
	_, err := w.Write(p)
	return err
}

// benchRawRead reads one frame into buf (grown if needed) and returns it.
func benchRawRead(rd *bufio.Reader, buf []byte) ([]byte, error) {
	var h [8]byte
	if _, err := io.ReadFull(rd, h[:]); err != nil {
		return buf, err
	}
	n := binary.BigEndian.Uint64(h[:])
	if n > benchMaxSize {
		return buf, fmt.Errorf("raw frame of %d bytes", n)
	}
	if uint64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	_, err := io.ReadFull(rd, buf)
	return buf, err
}

func benchRawLatency(ctx context.Context, o *benchOpts, url string, payload []byte, r *benchResult) error {
	c, err := benchRawDial(ctx, url)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	closed := make(chan struct{})
	go func() { <-ctx.Done(); c.Close(); close(closed) }() // a stall ends the reads
	defer func() { cancel(); <-closed }()
	rd, w := bufio.NewReaderSize(c, 64<<10), bufio.NewWriterSize(c, 64<<10)
	buf := make([]byte, len(payload))
	return benchRoundTrips(ctx, o, false, func(context.Context) error {
		if err := benchRawWrite(w, payload); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
		var err error
		buf, err = benchRawRead(rd, buf)
		return err
	}, r)
}

// benchRawFanout is the raw fan-out floor's pattern: benchRawThroughput
// over --fanout streams at once.
const benchRawFanout = "rawfanout"

// benchRawThroughput counts what arrives on streams raw connections to
// the far side, each written flat out by a goroutine of its own there.
func benchRawThroughput(ctx context.Context, o *benchOpts, url string, size, streams int, r *benchResult) error {
	var wg sync.WaitGroup
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	}()
	var got atomic.Int64
	for range streams {
		c, err := benchRawDial(ctx, url)
		if err != nil {
			return err
		}
		conns = append(conns, c)
		wg.Go(func() { benchRawCount(c, size, &got) })
	}
	return benchCount(ctx, o, &got, size, r)
}

// benchRawCount reads size-byte frames from c until it fails, counting
// them in got.
func benchRawCount(c net.Conn, size int, got *atomic.Int64) {
	rsize := 64 << 10
	if size >= benchRawVecMin {
		// Large frames: a small buffer, so the payload is read
		// straight into buf (as ferry reads it), not copied through.
		rsize = 8 << 10
	}
	rd := bufio.NewReaderSize(c, rsize)
	buf := make([]byte, size)
	for {
		var err error
		if buf, err = benchRawRead(rd, buf); err != nil {
			return
		}
		got.Add(1)
	}
}
