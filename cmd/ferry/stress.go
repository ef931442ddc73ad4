package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ferrymq/ferry/internal/stress"
)

const stressUsage = `Usage: ferry stress [--quick] [--duration D] [--only names]

Runs the five failure classes ferry is built to survive, at scale, and
prints goroutines, heap and time before and after each, then PASS or FAIL:

  churn      context churn (NNG #2111): 100,000 requests, a fresh context each
  close      close deadlock (NNG #1813): 100,000 closes racing a blocked receive
  release    double release (nbio #445): 10,000,000 messages with double frees,
             concurrent frees and stale handles; every checksum must hold
  retention  retained references (pond #110): 1 GiB through a slow peer;
             the heap must come back
  streams    half-closed stream churn (quic-go #3322): 100,000 pipe cycles
             over tcp; no pipe may stay open

Exit status 1 if any scenario fails.

Flags:
  --quick        small scale (seconds), as run in CI
  --duration D   soak: repeat the scenarios until D has passed (e.g. 30m)
  --only names   comma-separated subset, e.g. churn,close

Examples:
  ferry stress --quick
  ferry stress --only release
  ferry stress --duration 1h
`

// stressProgress is where the progress bar goes.
var stressProgress io.Writer = os.Stderr

func runStress(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("stress", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	quick := fs.Bool("quick", false, "")
	duration := fs.Duration("duration", 0, "")
	only := fs.String("only", "", "")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%v (see: ferry help stress)", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see: ferry help stress)", fs.Arg(0))
	}
	if *duration < 0 {
		return fmt.Errorf("--duration %v: must be >= 0", *duration)
	}
	scale := stress.Full
	if *quick {
		scale = stress.Quick
	}
	var todo []stress.Scenario
	want := map[string]bool{}
	for _, n := range strings.Split(*only, ",") {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	all := len(want) == 0
	for _, s := range stress.Scenarios() {
		if all || want[s.Name] {
			todo = append(todo, s)
			delete(want, s.Name)
		}
	}
	for n := range want {
		return fmt.Errorf("--only: no scenario %q (have churn, close, release, retention, streams)", n)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	end := time.Now().Add(*duration)
	var results []stress.Result
	for round := 1; ; round++ {
		for _, s := range todo {
			r := stress.Run(ctx, s, scale, progressBar(stressProgress, s.Name, round))
			fmt.Fprint(stressProgress, "\r\033[K")
			results = append(results, r)
		}
		if *duration == 0 || time.Now().After(end) || ctx.Err() != nil {
			break
		}
	}
	failed := printStress(out, results)
	if failed > 0 {
		return fmt.Errorf("%d of %d scenario runs failed", failed, len(results))
	}
	return nil
}

// progressBar returns a progress callback drawing one line on w, at most
// ten times a second.
func progressBar(w io.Writer, name string, round int) func(done, total int) {
	var last time.Time
	return func(done, total int) {
		if now := time.Now(); now.Sub(last) < 100*time.Millisecond && done < total {
			return
		} else {
			last = now
		}
		const width = 30
		fill := 0
		if total > 0 {
			fill = done * width / total
		}
		fmt.Fprintf(w, "\r\033[K%-9s round %d [%s%s] %d/%d", name, round,
			strings.Repeat("=", fill), strings.Repeat(" ", width-fill), done, total)
	}
}

func printStress(out io.Writer, results []stress.Result) (failed int) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tclass\ttime\tgoroutines\theap KiB\tresult")
	for _, r := range results {
		verdict := "PASS"
		if !r.Passed() {
			verdict = "FAIL: " + r.Err.Error()
			failed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%d -> %d\t%d -> %d\t%s\n", r.Scenario.Name, r.Scenario.Class,
			r.Duration.Round(time.Millisecond), r.GoroutinesBefore, r.GoroutinesAfter,
			r.HeapBefore>>10, r.HeapAfter>>10, verdict)
	}
	tw.Flush()
	return failed
}
