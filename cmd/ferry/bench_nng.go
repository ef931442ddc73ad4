package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/protocol/rep"
)

// --against nng: each workload also runs between two NNG processes,
// ferry-nngpeer (bench/nngpeer, a small cgo program against Debian's
// libnng-dev): `serve` is the far side, `run` the near side, which
// measures and prints its figures as JSON. Ratios are ferry / NNG.

const benchNNGPeerName = "ferry-nngpeer"

// benchFindNNGPeer: --nng-peer, else ferry-nngpeer on PATH, else next to
// this executable.
func benchFindNNGPeer(flagPath string) (string, error) {
	if flagPath != "" {
		if _, err := os.Stat(flagPath); err != nil {
			return "", fmt.Errorf("--nng-peer: %v", err)
		}
		return flagPath, nil
	}
	if p, err := exec.LookPath(benchNNGPeerName); err == nil {
		return p, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), benchNNGPeerName)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("--against nng: %s not found on PATH; build it with "+
		"`apt-get install libnng-dev && (cd bench/nngpeer && go build -o %s .)` and put it on PATH or pass --nng-peer", benchNNGPeerName, benchNNGPeerName)
}

// benchNNGHas says whether the NNG peer runs this workload: tcp and ipc,
// and every pattern (reqrep: latency only).
func benchNNGHas(pattern, tr string) bool {
	return (tr == "tcp" || tr == "ipc") && pattern != "raw" && pattern != benchRawFanout
}

// benchNNGFigures is what `ferry-nngpeer run` prints.
type benchNNGFigures struct {
	Samples  int     `json:"samples"`
	P50ns    int64   `json:"p50ns"`
	P99ns    int64   `json:"p99ns"`
	MinNs    int64   `json:"minns"`
	MaxNs    int64   `json:"maxns"`
	Msgs     int64   `json:"msgs"`
	Seconds  float64 `json:"seconds"`
	MsgsPerS float64 `json:"msgs_per_s"`
}

func benchNNG(ctx context.Context, o *benchOpts, pattern, tr string, size int) benchResult {
	r := benchResult{Pattern: pattern, Transport: tr, Size: size, Procs: 2}
	err := func() error {
		if pattern != "fanout" {
			f, err := benchNNGRun(ctx, o, pattern, "echo", "lat", tr, size)
			if err != nil {
				return fmt.Errorf("latency: %v", err)
			}
			r.Samples, r.P50ns, r.P99ns, r.MinNs, r.MaxNs = f.Samples, f.P50ns, f.P99ns, f.MinNs, f.MaxNs
		}
		if pattern != "reqrep" {
			f, err := benchNNGRun(ctx, o, pattern, "source", "tput", tr, size)
			if err != nil {
				return fmt.Errorf("throughput: %v", err)
			}
			r.Msgs, r.Seconds, r.MsgsPerS = f.Msgs, f.Seconds, f.MsgsPerS
			r.MBPerS = r.MsgsPerS * float64(size) / 1e6
		}
		return nil
	}()
	if err != nil {
		r.ErrString = err.Error()
	}
	return r
}

// benchNNGRun starts `ferry-nngpeer serve` and runs `ferry-nngpeer run`
// against it.
func benchNNGRun(ctx context.Context, o *benchOpts, pattern, role, mode, tr string, size int) (benchNNGFigures, error) {
	var f benchNNGFigures
	n := 1
	if mode == "lat" && (pattern == "pushpull" || pattern == "pubsub") {
		n = 2
	}
	var urls []string
	for range n {
		u, err := benchNNGURL(o, tr)
		if err != nil {
			return f, err
		}
		urls = append(urls, u)
	}
	common := []string{"--pattern", pattern, "--size", strconv.Itoa(size), "--url", urls[0],
		"--queue", strconv.Itoa(benchCfg(size, ferry.DefaultSendQueueLen).SendQueueLen)}
	if n == 2 {
		common = append(common, "--url2", urls[1])
	}
	line, stop, err := benchStartChild(ctx, o.nngPeer, append([]string{"serve", "--role", role}, common...), nil)
	if err != nil {
		return f, err
	}
	defer stop()
	if line != "ready" {
		return f, fmt.Errorf("nngpeer serve said %q", line)
	}
	rctx, cancel := context.WithTimeout(ctx, o.warm+o.dur+90*time.Second)
	defer cancel()
	args := append([]string{"run", "--mode", mode, "--duration", o.dur.String(), "--warm", o.warm.String(),
		"--subs", strconv.Itoa(o.fanout), "--max-samples", strconv.Itoa(len(o.lat))}, common...)
	cmd := exec.CommandContext(rctx, o.nngPeer, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return f, fmt.Errorf("nngpeer run: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal(stdout.Bytes(), &f); err != nil {
		return f, fmt.Errorf("nngpeer run printed %q: %v", stdout.String(), err)
	}
	return f, nil
}

// benchNNGURL picks an address NNG will listen on: NNG cannot report a
// port it chose, so a tcp port that was free a moment ago.
func benchNNGURL(o *benchOpts, tr string) (string, error) {
	if tr == "ipc" {
		return "ipc://" + filepath.Join(o.tmpDir, fmt.Sprintf("nng%d.sock", benchSeq.Add(1))), nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return "tcp://" + l.Addr().String(), nil
}

// benchIdle is the idle-pipe memory measurement (--idle-pipes N): N tcp
// pipes from a second process (REQ) to one REP listener here, sending
// nothing: each has a reader and a writer goroutine.
type benchIdle struct {
	Pipes             int     `json:"pipes"`
	RSSDelta          int64   `json:"rss_delta_bytes"`
	RSSPerPipe        float64 `json:"rss_per_pipe_bytes"`
	HeapPerPipe       float64 `json:"heap_per_pipe_bytes"`
	GoroutinesPerPipe float64 `json:"goroutines_per_pipe"`
	Seconds           float64 `json:"seconds_to_open"`
	ErrString         string  `json:"error,omitempty"`
}

func benchIdlePipes(ctx context.Context, n int, pr *benchProgressLine) benchIdle {
	r := benchIdle{Pipes: n}
	if err := benchIdleRun(ctx, n, pr, &r); err != nil {
		r.ErrString = err.Error()
	}
	return r
}

func benchIdleRun(ctx context.Context, n int, pr *benchProgressLine, r *benchIdle) error {
	s, err := rep.New(ferry.SocketConfig{})
	if err != nil {
		return err
	}
	defer s.Close()
	l, err := s.Listen("tcp://127.0.0.1:0")
	if err != nil {
		return err
	}
	rss0, heap0, g0, err := benchMemNow()
	if err != nil {
		return err
	}
	start := time.Now()
	far, err := benchStartPeer(ctx, "pushpull", "dialers", "tcp", 64, "--n", strconv.Itoa(n), "--url", l.URL())
	if err != nil {
		return err
	}
	defer far.stop()
	limit := time.Now().Add(2 * time.Minute)
	for {
		open := s.Stats().PipesOpen
		if open >= n {
			break
		}
		if time.Now().After(limit) || ctx.Err() != nil {
			return fmt.Errorf("%d of %d pipes open after %v", open, n, time.Since(start).Round(time.Second))
		}
		pr.step(pr.n, fmt.Sprintf("idle pipes %d/%d", open, n))
		time.Sleep(50 * time.Millisecond)
	}
	r.Seconds = time.Since(start).Seconds()
	time.Sleep(200 * time.Millisecond) // let every reader reach its blocking read
	rss1, heap1, g1, err := benchMemNow()
	if err != nil {
		return err
	}
	r.RSSDelta = rss1 - rss0
	r.RSSPerPipe = float64(r.RSSDelta) / float64(n)
	r.HeapPerPipe = float64(int64(heap1)-int64(heap0)) / float64(n)
	r.GoroutinesPerPipe = float64(g1-g0) / float64(n)
	return nil
}

// benchMemNow returns resident memory (after a GC that hands freed memory
// back to the OS), heap in use and goroutines.
func benchMemNow() (rss int64, heap uint64, goroutines int, err error) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, 0, 0, errors.New("idle pipes: resident memory is read from /proc/self/statm (Linux only)")
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, 0, 0, fmt.Errorf("/proc/self/statm: %q", b)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, 0, 0, err
	}
	return pages * int64(os.Getpagesize()), ms.HeapAlloc, runtime.NumGoroutine(), nil
}
