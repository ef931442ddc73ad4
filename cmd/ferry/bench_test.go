package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrymq/ferry/internal/testutil"
)

// TestBenchQuick runs `ferry bench --quick` on every pattern over inproc,
// ipc and tcp at two sizes: the table and the JSON document must hold a
// row for each, with positive figures, and the tcp rows a ratio to the
// raw-TCP floor.
func TestBenchQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	defer func(w io.Writer) { benchProgress = w }(benchProgress)
	benchProgress = io.Discard
	args := []string{"bench", "--quick", "--patterns", "pair,pushpull,reqrep,pubsub",
		"--transports", "inproc,ipc,tcp", "--sizes", "64,64k", "--duration", "20ms"}

	var out, errOut bytes.Buffer
	if code := run(args, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut.String(), out.String())
	}
	table := out.String()
	rows := map[string][]string{}
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) >= 8 {
			rows[f[0]+"/"+f[1]+"/"+f[2]+f[3]] = f
		}
	}
	want := func(pattern, tr, size string) {
		t.Helper()
		f, ok := rows[pattern+"/"+tr+"/"+strings.ReplaceAll(size, " ", "")]
		if !ok {
			t.Errorf("table lacks %s %s %s:\n%s", pattern, tr, size, table)
			return
		}
		if f[6] == "0" || strings.HasPrefix(f[6], "0.0") || strings.HasPrefix(f[7], "0.0") {
			t.Errorf("%s %s %s: no throughput: %v", pattern, tr, size, f)
		}
		if (tr == "tcp" || tr == "inproc") && len(f) < 10 {
			t.Errorf("%s %s %s: no x floor figures: %v", pattern, tr, size, f)
		}
	}
	for _, size := range []string{"64 B", "64 KiB"} {
		want("raw", "tcp", size)
		want("chan", "inproc", size)
		for _, p := range benchDefPatterns {
			for _, tr := range []string{"inproc", "ipc", "tcp"} {
				want(p, tr, size)
			}
		}
	}

	out.Reset()
	if code := run(append(args, "--json"), &out, &errOut); code != 0 {
		t.Fatalf("--json: exit %d: %s", code, errOut.String())
	}
	var rep benchReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("--json does not parse: %v\n%s", err, out.String())
	}
	got := map[string]bool{}
	for _, r := range rep.Results {
		key := fmt.Sprintf("%s/%s/%d", r.Pattern, r.Transport, r.Size)
		got[key] = true
		if r.ErrString != "" || r.Samples < 1 || r.P50ns <= 0 || r.P99ns < r.P50ns || r.Msgs < 1 || r.MsgsPerS <= 0 || r.MBPerS <= 0 {
			t.Errorf("%s: bad figures: %+v", key, r)
		}
		if (r.Transport == "tcp" || r.Transport == "inproc") && !r.Floor && (r.LatXF <= 0 || r.TputXF <= 0) {
			t.Errorf("%s: no ratio to the floor: %+v", key, r)
		}
	}
	if len(rep.Results) != 2+2+2*4*3 || len(got) != len(rep.Results) {
		t.Errorf("--json has %d results (%d distinct), want %d", len(rep.Results), len(got), 2+2+2*4*3)
	}
}

func TestBenchErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"bench", "--bogus"}, "flag provided but not defined"},
		{[]string{"bench", "--patterns", "bus"}, `--patterns: unknown "bus"`},
		{[]string{"bench", "--transports", "udp"}, `--transports: unknown "udp"`},
		{[]string{"bench", "--sizes", "0"}, `--sizes: bad size "0"`},
		{[]string{"bench", "--sizes", "12x"}, `--sizes: bad size "12x"`},
		{[]string{"bench", "--sizes", "65m"}, `--sizes: bad size "65m"`},
		{[]string{"bench", "--duration", "0s"}, "--duration 0s: must be > 0"},
		{[]string{"bench", "--duration", "soon"}, "invalid value"},
		{[]string{"bench", "extra"}, `unexpected argument "extra"`},
		{[]string{"bench", "--procs", "3"}, "--procs 3: must be 1 or 2"},
		{[]string{"bench", "--against", "zmq"}, `--against "zmq": the only peer is nng`},
		{[]string{"bench", "--fanout", "0"}, "--fanout 0: must be 1..1000"},
		{[]string{"bench", "--idle-pipes", "-1"}, "--idle-pipes -1: must be 0..100000"},
		{[]string{"bench", "--rounds", "0"}, "--rounds 0: must be 1..100"},
		{[]string{"bench", "--against", "nng", "--nng-peer", "/nonexistent/ferry-nngpeer"}, "--nng-peer: stat /nonexistent"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		code := run(tt.args, &out, &errOut)
		if code != 1 || !strings.Contains(errOut.String(), tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want 1, %q", tt.args, code, errOut.String(), tt.want)
		}
		if lines := strings.Count(errOut.String(), "\n"); lines != 1 {
			t.Errorf("%v: error is not one line: %q", tt.args, errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"help", "bench"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "ferry bench --quick") || !strings.Contains(out.String(), "--against nng") {
		t.Errorf("help bench: exit %d\n%s", code, out.String())
	}
}

// TestBenchAllocs: the throughput loops reuse one Msg per side, so a
// stream of messages allocates (next to) nothing per message. Only the
// measured window counts: setup (sockets, dials, goroutines: a few
// hundred allocations) would otherwise weigh on a slow machine's few
// thousand round trips.
func TestBenchAllocs(t *testing.T) {
	if testing.Short() || testutil.Race {
		t.Skip("short or race")
	}
	for _, tc := range []struct {
		pattern, tr string
		limit       float64
	}{ // streams: one allocation per 128 messages (a full receive queue's wait) fails
		{"pair", "inproc", 0.005}, {"pair", "tcp", 0.005}, {"pushpull", "tcp", 0.005}, {"pubsub", "tcp", 0.005},
		{"reqrep", "tcp", 0.05}, // a few thousand round trips: background allocations weigh more
	} {
		var before, after runtime.MemStats
		o := &benchOpts{dur: 200 * time.Millisecond, warm: 20 * time.Millisecond, minMsgs: 2,
			window: func(end bool) {
				if end {
					runtime.ReadMemStats(&after)
				} else {
					runtime.ReadMemStats(&before)
				}
			}}
		var r benchResult
		if err := benchThroughput(context.Background(), o, tc.pattern, tc.tr, make([]byte, 64), &r); err != nil {
			t.Fatal(err)
		}
		if after.Mallocs == 0 {
			t.Fatal("the measured window was never reported")
		}
		per := float64(after.Mallocs-before.Mallocs) / float64(r.Msgs)
		t.Logf("%s/%s: %d msgs, %.4f allocs/msg", tc.pattern, tc.tr, r.Msgs, per)
		if per > tc.limit {
			t.Errorf("%s/%s: %.3f allocs per message", tc.pattern, tc.tr, per)
		}
	}
}

// TestBenchMoreTransports: ws, and tls+tcp, wss and quic with the
// in-memory certificate, give figures too.
func TestBenchMoreTransports(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	defer func(w io.Writer) { benchProgress = w }(benchProgress)
	benchProgress = io.Discard
	var out, errOut bytes.Buffer
	args := []string{"bench", "--quick", "--json", "--patterns", "pair,reqrep", "--transports", "ws,tls+tcp,wss,quic", "--sizes", "64", "--duration", "20ms"}
	if code := run(args, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut.String(), out.String())
	}
	var rep benchReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 8 {
		t.Fatalf("%d results, want 8", len(rep.Results))
	}
	for _, r := range rep.Results {
		if r.P50ns <= 0 || r.MsgsPerS <= 0 {
			t.Errorf("%s/%s: bad figures: %+v", r.Pattern, r.Transport, r)
		}
	}
}

// TestBenchStall: a measurement whose messages stop coming back fails
// with "stalled" after benchStall instead of hanging.
func TestBenchStall(t *testing.T) {
	defer func(d time.Duration) { benchStall = d }(benchStall)
	benchStall = 200 * time.Millisecond
	o := &benchOpts{dur: time.Second, warm: time.Millisecond, minMsgs: 2, lat: make([]int64, 1024)}
	n := 0
	var r benchResult
	err := benchRoundTrips(context.Background(), o, false, func(ctx context.Context) error {
		if n++; n < 5 {
			return nil
		}
		<-ctx.Done() // the echo never comes
		return ctx.Err()
	}, &r)
	if err == nil || !strings.HasPrefix(err.Error(), "stalled") {
		t.Fatalf("got %v, want a stall", err)
	}
}

// TestBenchTwoProcs runs the far side of every pattern in a second
// process (this test binary, as `ferry bench-peer`) and measures the
// memory of idle pipes opened from a second process.
func TestBenchTwoProcs(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	defer func(w io.Writer) { benchProgress = w }(benchProgress)
	benchProgress = io.Discard
	var out, errOut bytes.Buffer
	args := []string{"bench", "--quick", "--json", "--procs", "2", "--rounds", "3", "--patterns", "pair,pushpull,reqrep,pubsub,fanout", "--fanout", "5",
		"--transports", "tcp", "--sizes", "64", "--duration", "20ms", "--idle-pipes", "200"}
	if code := run(args, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut.String(), out.String())
	}
	var rep benchReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	// The raw floor, the raw fan-out floor (fanout is among the
	// patterns) and the five patterns.
	if len(rep.Results) != 2+5 || rep.Procs != 2 || rep.Rounds != 3 {
		t.Fatalf("%d results (procs %d, rounds %d), want %d, 2, 3", len(rep.Results), rep.Procs, rep.Rounds, 2+5)
	}
	byPattern := map[string]benchResult{}
	for _, r := range rep.Results {
		byPattern[r.Pattern] = r
		fan := r.Pattern == "fanout" || r.Pattern == benchRawFanout
		if r.Procs != 2 || r.MsgsPerS <= 0 || (!fan && r.P50ns <= 0) || r.ErrString != "" {
			t.Errorf("%s/%s: bad figures: %+v", r.Pattern, r.Transport, r)
		}
		if !fan && r.Samples < 3*2 { // three rounds, at least two samples each
			t.Errorf("%s/%s: %d samples over 3 rounds", r.Pattern, r.Transport, r.Samples)
		}
	}
	// fanout's ratio is to the raw fan-out floor, the others' to the raw
	// floor.
	raw, rawFan, fan, pair := byPattern["raw"], byPattern[benchRawFanout], byPattern["fanout"], byPattern["pair"]
	if !rawFan.Floor || rawFan.P50ns != 0 || fan.TputXF <= 0 || pair.TputXF <= 0 ||
		math.Abs(fan.TputXF-fan.MsgsPerS/rawFan.MsgsPerS) > 1e-9 || math.Abs(pair.TputXF-pair.MsgsPerS/raw.MsgsPerS) > 1e-9 {
		t.Errorf("ratios to the floors: raw %+v\nraw fan-out %+v\nfanout %+v\npair %+v", raw, rawFan, fan, pair)
	}
	var table strings.Builder
	printBench(&table, rep)
	for _, line := range strings.Split(table.String(), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "raw/5" && (len(f) < 10 || f[4] != "-" || f[8] != "-" || f[9] != "1") {
			t.Errorf("raw fan-out row: want no latency and a ratio of 1: %q", line)
		}
	}
	if !strings.Contains(table.String(), "raw/5 ") || !strings.Contains(table.String(), "fanout/5 ") {
		t.Errorf("table lacks the raw/5 or fanout/5 row:\n%s", table.String())
	}
	if i := rep.Idle; i == nil || i.ErrString != "" || i.Pipes != 200 || i.RSSPerPipe <= 0 || i.GoroutinesPerPipe < 1 {
		t.Errorf("idle pipes: %+v", rep.Idle)
	}
}

// buildNNGPeer builds bench/nngpeer (cgo, libnng-dev) into a temporary
// directory. Without libnng it skips, or fails when CI is set.
func buildNNGPeer(t *testing.T) string {
	t.Helper()
	const msg = "ferry-nngpeer does not build: install Debian's libnng-dev (apt-get install -y libnng-dev) and gcc"
	if _, err := os.Stat("/usr/include/nng/nng.h"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(msg + "; CI is set, so the NNG comparison may not be skipped")
		}
		t.Skip(msg)
	}
	bin := filepath.Join(t.TempDir(), benchNNGPeerName)
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(gobin, "build", "-o", bin, ".")
	cmd.Dir = filepath.Join("..", "..", "bench", "nngpeer")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", msg, err, out)
	}
	return bin
}

// TestBenchAgainstNNG runs `ferry bench --against nng --quick`: every
// pattern over tcp and ipc, ferry and NNG each between two processes;
// every row must carry NNG's figures and the ratios.
func TestBenchAgainstNNG(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	peer := buildNNGPeer(t)
	defer func(w io.Writer) { benchProgress = w }(benchProgress)
	benchProgress = io.Discard
	args := []string{"bench", "--against", "nng", "--quick", "--nng-peer", peer, "--transports", "tcp,ipc",
		"--sizes", "64", "--fanout", "10", "--duration", "20ms"}
	var out, errOut bytes.Buffer
	if code := run(args, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut.String(), out.String())
	}
	t.Logf("\n%s", out.String())
	if !strings.Contains(out.String(), "lat x nng") || !strings.Contains(out.String(), "tput x nng") {
		t.Errorf("no ratio columns:\n%s", out.String())
	}
	out.Reset()
	if code := run(append(args, "--json"), &out, &errOut); code != 0 {
		t.Fatalf("--json: exit %d: %s", code, errOut.String())
	}
	var rep benchReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 2+5*2 { // the raw and raw fan-out floors, five patterns over two transports
		t.Fatalf("%d results, want %d", len(rep.Results), 2+5*2)
	}
	for _, r := range rep.Results {
		if r.Floor {
			if r.NNG != nil {
				t.Errorf("%s floor: NNG figures %+v", r.Pattern, r.NNG)
			}
			continue
		}
		n := r.NNG
		if n == nil || n.ErrString != "" || r.ErrString != "" {
			t.Errorf("%s/%s: %+v (nng %+v)", r.Pattern, r.Transport, r, n)
			continue
		}
		if r.Pattern != "fanout" && (n.P50ns <= 0 || r.LatXNNG <= 0) {
			t.Errorf("%s/%s: no latency ratio: %+v", r.Pattern, r.Transport, n)
		}
		if r.Pattern != "reqrep" && (n.MsgsPerS <= 0 || r.TputXNNG <= 0) {
			t.Errorf("%s/%s: no throughput ratio: %+v", r.Pattern, r.Transport, n)
		}
	}
}

// TestBenchMedian: a row over rounds takes each figure's median and
// fails if any round failed.
func TestBenchMedian(t *testing.T) {
	rs := []benchResult{
		{P50ns: 30, P99ns: 90, MsgsPerS: 5, Samples: 2, Msgs: 10},
		{P50ns: 10, P99ns: 300, MsgsPerS: 9, Samples: 3, Msgs: 20},
		{P50ns: 20, P99ns: 100, MsgsPerS: 7, Samples: 4, Msgs: 30},
	}
	r := benchMedian(rs)
	if r.P50ns != 20 || r.P99ns != 100 || r.MsgsPerS != 7 || r.Samples != 9 || r.Msgs != 60 || r.ErrString != "" {
		t.Errorf("median = %+v", r)
	}
	rs[1].ErrString = "stalled"
	if r := benchMedian(rs); r.ErrString != "stalled" {
		t.Errorf("a failed round did not fail the row: %+v", r)
	}
}

// TestBenchGap: a window in which messages stop is reported as a gap,
// and a row with a large one gets a note under the table.
func TestBenchGap(t *testing.T) {
	var got atomic.Int64
	if g := benchWatch(&got, time.Now(), 30*time.Millisecond); g < 0.9 {
		t.Errorf("nothing arrived, gap %.2f, want ~1", g)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // messages for the first ~10 ms of a 60 ms window
		defer close(done)
		end := time.Now().Add(10 * time.Millisecond)
		for time.Now().Before(end) {
			got.Add(1)
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Microsecond):
			}
		}
	}()
	g := benchWatch(&got, time.Now(), 60*time.Millisecond)
	close(stop)
	<-done
	if g < 0.5 || g > 1 {
		t.Errorf("messages stopped after ~10 ms of 60: gap %.2f, want 0.5..1", g)
	}
	rs := []benchResult{{Pattern: "pushpull", Transport: "tcp", Size: 64, MsgsPerS: 9, Gap: 0.1}, {Pattern: "pushpull", Transport: "tcp", Size: 64, MsgsPerS: 1, Gap: 0.9}}
	if r := benchMedian(rs); r.Gap != 0.9 {
		t.Errorf("median row's gap %.2f, want the worst round's 0.9", r.Gap)
	}
	var out strings.Builder
	printBench(&out, benchReport{Results: []benchResult{rs[0], benchMedian(rs)}})
	if n := strings.Count(out.String(), "note pushpull tcp 64 B: nothing arrived for 90%"); n != 1 {
		t.Errorf("want one note, for the row with the gap:\n%s", out.String())
	}
}
