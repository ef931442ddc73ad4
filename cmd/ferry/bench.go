package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/protocol/pair1"
	"github.com/ferrymq/ferry/protocol/pub"
	"github.com/ferrymq/ferry/protocol/pull"
	"github.com/ferrymq/ferry/protocol/push"
	"github.com/ferrymq/ferry/protocol/rep"
	"github.com/ferrymq/ferry/protocol/req"
	"github.com/ferrymq/ferry/protocol/sub"
)

const benchUsage = `Usage: ferry bench [--quick] [--json] [--patterns list] [--transports list]
                   [--sizes list] [--duration D]

Measures, in this process, for each pattern, transport and message size:

  latency     round trips, one message in flight: p50 and p99
  throughput  one sender streaming (a reused message), one receiver
              counting: msg/s and MB/s (10^6 bytes) over the measured time

Patterns: pair (PAIR1), pushpull, reqrep, pubsub (one subscriber).
  pair      latency: the peer echoes; throughput: one way
  pushpull  latency: PUSH->PULL, then back over a second PUSH->PULL link
  reqrep    latency: one context, a Serve echo; throughput: replies/s with
            8 contexts in flight
  pubsub    latency: PUB->SUB, back over a second PUB->SUB link;
            throughput: the publisher stays a bounded window ahead of the
            subscriber, so nothing is dropped (drops are counted in --json)

With tcp among the transports, a raw-TCP floor is measured in the same run
for each size: length-prefixed frames over a plain net.TCPConn on loopback
with bufio, no library (pattern "raw"). Each tcp row then shows
"lat x floor" (its p50 / the floor's p50) and "tput x floor" (its msg/s /
the floor's msg/s).

Flags:
  --quick          tiny durations, as run in CI (whole run in seconds)
  --json           print one JSON document with every result
  --patterns P     comma-separated subset of pair,pushpull,reqrep,pubsub
                   (default all)
  --transports T   comma-separated subset of inproc,ipc,tcp,ws,tls+tcp,
                   wss,quic (default inproc,ipc,tcp; tls+tcp, wss and quic
                   use a self-signed certificate made in memory)
  --sizes S        comma-separated message sizes in bytes; k and m suffixes
                   (KiB, MiB) are allowed (default 64,1024,65536,1048576)
  --duration D     time per measurement (default 1s; 30ms with --quick)

A progress line is drawn on stderr once a run passes one second.

Examples:
  ferry bench
  ferry bench --quick
  ferry bench --patterns pair,reqrep --transports tcp --sizes 64,64k
  ferry bench --duration 3s --json > bench.json

To come: --against nng (an NNG peer through cgo), two-process mode (peer
in a separate process or host).
`

// benchProgress is where the progress line goes.
var benchProgress io.Writer = os.Stderr

var (
	benchPatterns   = []string{"pair", "pushpull", "reqrep", "pubsub"}
	benchTransports = []string{"inproc", "ipc", "tcp", "ws", "tls+tcp", "wss", "quic"}
	benchDefaultTr  = []string{"inproc", "ipc", "tcp"}
	benchDefSizes   = []int{64, 1024, 65536, 1048576}
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
	Msgs      int64   `json:"msgs"`
	Seconds   float64 `json:"seconds"`
	MsgsPerS  float64 `json:"msgs_per_sec"`
	MBPerS    float64 `json:"mb_per_sec"`
	TputXF    float64 `json:"tput_x_floor,omitempty"`
	Dropped   uint64  `json:"dropped,omitempty"`
	Floor     bool    `json:"floor,omitempty"`
	ErrString string  `json:"error,omitempty"`
}

type benchReport struct {
	Go         string        `json:"go"`
	GOOS       string        `json:"goos"`
	GOARCH     string        `json:"goarch"`
	GOMAXPROCS int           `json:"gomaxprocs"`
	Duration   string        `json:"duration"`
	Quick      bool          `json:"quick"`
	Results    []benchResult `json:"results"`
}

type benchOpts struct {
	dur, warm time.Duration
	minMsgs   int64
	tmpDir    string
	lat       []int64 // preallocated latency samples, reused
}

func runBench(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	quick := fs.Bool("quick", false, "")
	asJSON := fs.Bool("json", false, "")
	patterns := fs.String("patterns", strings.Join(benchPatterns, ","), "")
	transports := fs.String("transports", strings.Join(benchDefaultTr, ","), "")
	sizes := fs.String("sizes", "64,1024,65536,1048576", "")
	duration := fs.Duration("duration", time.Second, "")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%v (see: ferry help bench)", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see: ferry help bench)", fs.Arg(0))
	}
	durSet := false
	fs.Visit(func(f *flag.Flag) { durSet = durSet || f.Name == "duration" })
	if *duration <= 0 {
		return fmt.Errorf("--duration %v: must be > 0", *duration)
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
	o := &benchOpts{dur: *duration, minMsgs: 8}
	if *quick && !durSet {
		o.dur = 30 * time.Millisecond
		o.minMsgs = 2
	}
	o.warm = min(o.dur/10, 100*time.Millisecond)
	o.lat = make([]int64, benchLatCap(o.dur))
	if slices.Contains(trs, "ipc") {
		d, err := os.MkdirTemp("", "ferrybench")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		o.tmpDir = d
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
	}
	for _, p := range pats {
		for _, tr := range trs {
			for _, sz := range szs {
				jobs = append(jobs, job{p, tr, sz})
			}
		}
	}
	start := time.Now()
	var last time.Time
	floors := map[int]benchResult{}
	rep := benchReport{Go: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH,
		GOMAXPROCS: runtime.GOMAXPROCS(0), Duration: o.dur.String(), Quick: *quick}
	drawn := false
	for i, j := range jobs {
		if now := time.Now(); now.Sub(start) > time.Second && now.Sub(last) > 100*time.Millisecond {
			last, drawn = now, true
			fmt.Fprintf(benchProgress, "\r\033[Kbench %d/%d  %s %s %s", i+1, len(jobs), j.pattern, j.tr, benchSize(j.size))
		}
		r := benchOne(ctx, o, j.pattern, j.tr, j.size)
		if ctx.Err() != nil {
			break
		}
		if r.Floor {
			floors[r.Size] = r
		} else if f, ok := floors[r.Size]; ok && r.Transport == "tcp" && r.ErrString == "" {
			if f.P50ns > 0 {
				r.LatXF = float64(r.P50ns) / float64(f.P50ns)
			}
			if f.MsgsPerS > 0 {
				r.TputXF = r.MsgsPerS / f.MsgsPerS
			}
		}
		rep.Results = append(rep.Results, r)
	}
	if drawn {
		fmt.Fprint(benchProgress, "\r\033[K")
	}
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
	failed := 0
	for _, r := range rep.Results {
		if r.ErrString != "" {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d measurements failed", failed, len(rep.Results))
	}
	return nil
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
	fmt.Fprintf(out, "%s %s/%s GOMAXPROCS=%d, %s per measurement\n\n", rep.Go, rep.GOOS, rep.GOARCH, rep.GOMAXPROCS, rep.Duration)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pattern\ttransport\tsize\tp50\tp99\tmsg/s\tMB/s\tlat x floor\ttput x floor\t")
	for _, r := range rep.Results {
		if r.ErrString != "" {
			fmt.Fprintf(tw, "%s\t%s\t%s\tFAIL\t\t\t\t\t\t\n", r.Pattern, r.Transport, benchSize(r.Size))
			continue
		}
		lx, tx := "", ""
		if r.LatXF > 0 {
			lx = benchRatio(r.LatXF)
		}
		if r.TputXF > 0 {
			tx = benchRatio(r.TputXF)
		}
		if r.Floor {
			lx, tx = "1", "1"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.1f\t%s\t%s\t\n", r.Pattern, r.Transport, benchSize(r.Size),
			benchDur(r.P50ns), benchDur(r.P99ns), benchRate(r.MsgsPerS), r.MBPerS, lx, tx)
	}
	tw.Flush()
	for _, r := range rep.Results {
		if r.ErrString != "" {
			fmt.Fprintf(out, "FAIL %s %s %s: %s\n", r.Pattern, r.Transport, benchSize(r.Size), r.ErrString)
		}
	}
}

// benchOne runs the latency and the throughput measurement of one row.
func benchOne(ctx context.Context, o *benchOpts, pattern, tr string, size int) benchResult {
	r := benchResult{Pattern: pattern, Transport: tr, Size: size, Floor: pattern == "raw"}
	payload := make([]byte, size)
	var err error
	if r.Floor {
		err = benchRawLatency(ctx, o, payload, &r)
		if err == nil {
			err = benchRawThroughput(ctx, o, payload, &r)
		}
	} else {
		err = benchLatency(ctx, o, pattern, tr, payload, &r)
		if err == nil {
			err = benchThroughput(ctx, o, pattern, tr, payload, &r)
		}
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

// benchCfg keeps queued bytes bounded for big messages.
func benchCfg(size int, queue int) ferry.SocketConfig {
	q := max(4, min(queue, (16<<20)/size))
	return ferry.SocketConfig{SendQueueLen: q, RecvQueueLen: q, RecvMaxSize: max(ferry.DefaultRecvMaxSize, size+1024)}
}

type benchLink struct {
	sockets []*ferry.Socket
}

func (b *benchLink) close() {
	for _, s := range b.sockets {
		s.Close()
	}
}

// join makes a listening socket with mkL and a dialing one with mkD over
// tr, and waits until the listener has the pipe.
func (b *benchLink) join(ctx context.Context, o *benchOpts, tr string, mkL, mkD func(ferry.SocketConfig) (*ferry.Socket, error), cfg ferry.SocketConfig) (ls, ds *ferry.Socket, err error) {
	if ls, err = mkL(cfg); err != nil {
		return nil, nil, err
	}
	b.sockets = append(b.sockets, ls)
	if ds, err = mkD(cfg); err != nil {
		return nil, nil, err
	}
	b.sockets = append(b.sockets, ds)
	var lc ferry.ListenerConfig
	var dc ferry.DialerConfig
	if tr == "tls+tcp" || tr == "wss" || tr == "quic" {
		if lc.TLS, dc.TLS, err = benchTLS(); err != nil {
			return nil, nil, err
		}
	}
	l, err := ls.NewListener(benchAddr(o, tr), lc)
	if err != nil {
		return nil, nil, err
	}
	if err := l.Start(); err != nil {
		return nil, nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d, err := ds.NewDialer(l.URL(), dc)
	if err != nil {
		return nil, nil, err
	}
	if err := d.Start(dctx); err != nil {
		return nil, nil, err
	}
	for ls.Stats().PipesOpen < 1 || ds.Stats().PipesOpen < 1 {
		if dctx.Err() != nil {
			return nil, nil, errors.New("no connection after 10s")
		}
		time.Sleep(time.Millisecond)
	}
	return ls, ds, nil
}

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

// roundTrips calls rt until the duration has passed (after warm-up) or
// the sample slice is full, and records each round trip.
func benchRoundTrips(ctx context.Context, o *benchOpts, rt func() error, r *benchResult) error {
	for end := time.Now().Add(o.warm); time.Now().Before(end); {
		if err := rt(); err != nil {
			return err
		}
	}
	lat := o.lat[:0]
	end := time.Now().Add(o.dur)
	for len(lat) < cap(lat) && ctx.Err() == nil {
		t0 := time.Now()
		if err := rt(); err != nil {
			return err
		}
		t1 := time.Now()
		lat = append(lat, int64(t1.Sub(t0)))
		if t1.After(end) && len(lat) >= int(o.minMsgs) {
			break
		}
	}
	benchPercentiles(lat, r)
	return nil
}

// echoLoop receives on in and sends the same message on out until either
// fails.
func benchEcho(ctx context.Context, in, out *ferry.Socket) {
	var m ferry.Msg
	defer m.Free()
	for in.RecvMsg(ctx, &m) == nil && out.Send(ctx, &m) == nil {
	}
}

func benchLatency(ctx context.Context, o *benchOpts, pattern, tr string, payload []byte, r *benchResult) error {
	ctx, cancel := context.WithCancel(ctx)
	var links benchLink
	var wg sync.WaitGroup
	defer func() { cancel(); links.close(); wg.Wait() }()
	cfg := benchCfg(len(payload), ferry.DefaultSendQueueLen)
	m := ferry.NewMsg(len(payload))
	defer m.Free()
	var send func() error
	var recv func() error
	switch pattern {
	case "pair":
		ls, ds, err := links.join(ctx, o, tr, pair1.New, pair1.New, cfg)
		if err != nil {
			return err
		}
		wg.Go(func() { benchEcho(ctx, ls, ls) })
		send = func() error { return ds.Send(ctx, m) }
		recv = func() error { return ds.RecvMsg(ctx, m) }
	case "pushpull", "pubsub":
		mkL, mkD := push.New, pull.New
		if pattern == "pubsub" {
			mkL = pub.New
			mkD = func(c ferry.SocketConfig) (*ferry.Socket, error) {
				s, err := sub.New(c)
				if err == nil {
					err = sub.Subscribe(s, []byte(""))
				}
				return s, err
			}
		}
		out, far, err := links.join(ctx, o, tr, mkL, mkD, cfg)
		if err != nil {
			return err
		}
		back, near, err := links.join(ctx, o, tr, mkL, mkD, cfg)
		if err != nil {
			return err
		}
		wg.Go(func() { benchEcho(ctx, far, back) })
		send = func() error { return out.Send(ctx, m) }
		recv = func() error { return near.RecvMsg(ctx, m) }
	case "reqrep":
		rp, rq, err := links.join(ctx, o, tr, rep.New, req.New, cfg)
		if err != nil {
			return err
		}
		wg.Go(func() { benchServe(ctx, rp, 1) })
		c, err := rq.OpenContext()
		if err != nil {
			return err
		}
		defer c.Close()
		send = func() error { return c.Send(ctx, m) }
		recv = func() error { return c.RecvMsg(ctx, m) }
	}
	return benchRoundTrips(ctx, o, func() error {
		m.SetBody(payload)
		if err := send(); err != nil {
			return err
		}
		if err := recv(); err != nil {
			return err
		}
		if len(m.Body) != len(payload) {
			return fmt.Errorf("echo of %d bytes came back with %d", len(payload), len(m.Body))
		}
		return nil
	}, r)
}

// benchServe echoes requests on rp until ctx ends or rp closes.
func benchServe(ctx context.Context, rp *ferry.Socket, workers int) {
	rp.Serve(ctx, func(_ context.Context, q, a *ferry.Msg) error {
		a.SetBody(q.Body)
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
	c0, t0 := got.Load(), time.Now()
	time.Sleep(o.dur)
	for got.Load()-c0 < o.minMsgs && time.Since(t0) < 30*time.Second && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	c1, t1 := got.Load(), time.Now()
	r.Msgs, r.Seconds = c1-c0, t1.Sub(t0).Seconds()
	r.MsgsPerS = float64(r.Msgs) / r.Seconds
	r.MBPerS = r.MsgsPerS * float64(size) / 1e6
	return nil
}

func benchThroughput(ctx context.Context, o *benchOpts, pattern, tr string, payload []byte, r *benchResult) error {
	ctx, cancel := context.WithCancel(ctx)
	var links benchLink
	var wg sync.WaitGroup
	defer func() { cancel(); links.close(); wg.Wait() }()
	size := len(payload)
	var got atomic.Int64
	receive := func(s *ferry.Socket, progress chan struct{}, every int64) {
		var m ferry.Msg
		defer m.Free()
		for s.RecvMsg(ctx, &m) == nil {
			if got.Add(1)%every == 0 && progress != nil {
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		}
	}
	stream := func(s *ferry.Socket, wait func(sent int64) bool) {
		m := ferry.NewMsg(size)
		defer m.Free()
		for sent := int64(1); ; sent++ {
			m.SetBody(payload)
			if s.Send(ctx, m) != nil {
				return
			}
			if wait != nil && !wait(sent) {
				return
			}
		}
	}
	switch pattern {
	case "pair", "pushpull":
		mkL, mkD := pair1.New, pair1.New
		if pattern == "pushpull" {
			mkL, mkD = pull.New, push.New
		}
		ls, ds, err := links.join(ctx, o, tr, mkL, mkD, benchCfg(size, ferry.DefaultSendQueueLen))
		if err != nil {
			return err
		}
		wg.Go(func() { receive(ls, nil, 1) })
		wg.Go(func() { stream(ds, nil) })
	case "pubsub":
		window := int64(max(4, min(2048, (16<<20)/size)))
		cfg := benchCfg(size, 8192)
		cfg.SendQueueLen = int(2*window + 16)
		cfg.RecvQueueLen = cfg.SendQueueLen
		mkSub := func(c ferry.SocketConfig) (*ferry.Socket, error) {
			s, err := sub.New(c)
			if err == nil {
				err = sub.Subscribe(s, []byte(""))
			}
			return s, err
		}
		ps, ss, err := links.join(ctx, o, tr, pub.New, mkSub, cfg)
		if err != nil {
			return err
		}
		progress := make(chan struct{}, 1)
		every := max(1, window/8)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		var dropped uint64
		wg.Go(func() { receive(ss, progress, every) })
		wg.Go(func() {
			stream(ps, func(sent int64) bool {
				for sent-int64(dropped)-got.Load() > window {
					select {
					case <-progress:
					case <-tick.C:
						dropped = ps.Stats().Dropped
					case <-ctx.Done():
						return false
					}
				}
				return true
			})
		})
		defer func() { r.Dropped = ps.Stats().Dropped }()
	case "reqrep":
		rp, rq, err := links.join(ctx, o, tr, rep.New, req.New, benchCfg(size, ferry.DefaultSendQueueLen))
		if err != nil {
			return err
		}
		const inFlight = 8
		wg.Go(func() { benchServe(ctx, rp, inFlight) })
		for range inFlight {
			c, err := rq.OpenContext()
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
	return benchCount(ctx, o, &got, size, r)
}

// The raw-TCP floor: 8-byte big-endian length, then the payload, over a
// plain TCP connection on loopback with 64 KiB bufio buffers each way.

func benchRawPair(ctx context.Context) (a, b net.Conn, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	var d net.Dialer
	a, err = d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		ln.Close() // ends the Accept
	}
	rs := <-ch
	if err != nil {
		if rs.c != nil {
			rs.c.Close()
		}
		return nil, nil, err
	}
	if rs.err != nil {
		a.Close()
		return nil, nil, rs.err
	}
	return a, rs.c, nil
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

func benchRawLatency(ctx context.Context, o *benchOpts, payload []byte, r *benchResult) error {
	a, b, err := benchRawPair(ctx)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer func() { a.Close(); b.Close(); wg.Wait() }()
	wg.Go(func() {
		rd, w := bufio.NewReaderSize(b, 64<<10), bufio.NewWriterSize(b, 64<<10)
		buf := make([]byte, len(payload))
		for {
			var err error
			if buf, err = benchRawRead(rd, buf); err != nil {
				return
			}
			if benchRawWrite(w, buf) != nil || w.Flush() != nil {
				return
			}
		}
	})
	rd, w := bufio.NewReaderSize(a, 64<<10), bufio.NewWriterSize(a, 64<<10)
	buf := make([]byte, len(payload))
	return benchRoundTrips(ctx, o, func() error {
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

func benchRawThroughput(ctx context.Context, o *benchOpts, payload []byte, r *benchResult) error {
	a, b, err := benchRawPair(ctx)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer func() { a.Close(); b.Close(); wg.Wait() }()
	var got atomic.Int64
	wg.Go(func() {
		rd := bufio.NewReaderSize(b, 64<<10)
		buf := make([]byte, len(payload))
		for {
			var err error
			if buf, err = benchRawRead(rd, buf); err != nil {
				return
			}
			got.Add(1)
		}
	})
	wg.Go(func() {
		w := bufio.NewWriterSize(a, 64<<10)
		for benchRawWrite(w, payload) == nil {
		}
	})
	return benchCount(ctx, o, &got, len(payload), r)
}

// benchTLS returns a server and a client configuration around a
// self-signed certificate for 127.0.0.1, made once, in memory.
func benchTLS() (srv, cli *tls.Config, err error) {
	benchTLSOnce.Do(func() { benchTLSSrv, benchTLSCli, benchTLSErr = benchMakeTLS() })
	return benchTLSSrv, benchTLSCli, benchTLSErr
}

var (
	benchTLSOnce             sync.Once
	benchTLSSrv, benchTLSCli *tls.Config
	benchTLSErr              error
)

func benchMakeTLS() (*tls.Config, *tls.Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		DNSNames:              []string{"localhost", "127.0.0.1"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	srv := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	cli := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	return srv, cli, nil
}
