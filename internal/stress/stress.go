// Package stress reproduces ferry's five failure classes at scale (see the
// design notes): context churn, close races, double release of pooled
// messages, retained references, and stream churn. Each scenario reports
// goroutines, heap and time before and after; `ferry stress` runs them at
// full scale and the test suite runs a short version.
package stress

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
)

// Scale sets how much each scenario does.
type Scale struct {
	Contexts       int // context churn: requests, each on a fresh context
	CloseIters     int // close races: sockets closed under a blocked Recv
	Messages       int // double release: messages with injected misuse
	RetentionBytes int // retention: bytes pushed through a slow peer
	PoolRounds     int // retention: pool rounds of 14 tasks holding 1 MiB each
	StreamCycles   int // stream churn: pipes opened, used and closed, over tcp and again over quic
}

// Full is the scale `ferry stress` runs by default.
var Full = Scale{Contexts: 100000, CloseIters: 100000, Messages: 10000000, RetentionBytes: 1 << 30, PoolRounds: 2000, StreamCycles: 100000}

// Quick is the scale the test suite and `ferry stress --quick` run.
var Quick = Scale{Contexts: 4000, CloseIters: 2000, Messages: 200000, RetentionBytes: 128 << 20, PoolRounds: 200, StreamCycles: 500}

// Scenario is one failure class, reproduced.
type Scenario struct {
	Name  string // short name for --only
	Class string // the incident it reproduces
	// Run does the work, calling progress now and then. It returns an
	// error describing the first broken promise.
	Run func(ctx context.Context, sc Scale, progress func(done, total int)) error
}

// Result is what one run of a scenario measured.
type Result struct {
	Scenario                          Scenario
	Duration                          time.Duration
	GoroutinesBefore, GoroutinesAfter int
	HeapBefore, HeapAfter             uint64
	Err                               error
}

// Passed reports whether the scenario kept every promise.
func (r Result) Passed() bool { return r.Err == nil }

// Scenarios lists every scenario, in the order of the design notes.
func Scenarios() []Scenario {
	return []Scenario{
		{"churn", "context churn (NNG #2111)", contextChurn},
		{"close", "close deadlock (NNG #1813)", closeRaces},
		{"release", "double release (nbio #445)", doubleRelease},
		{"retention", "retained references (pond #110)", retention},
		{"streams", "half-closed stream churn (quic-go #3322)", streamChurn},
	}
}

// Run runs s and checks that goroutines return to where they were and the
// heap to within 10% (plus 1 MiB of slack) of its size before.
func Run(ctx context.Context, s Scenario, sc Scale, progress func(done, total int)) Result {
	r := Result{Scenario: s, GoroutinesBefore: runtime.NumGoroutine(), HeapBefore: heapInUse()}
	start := time.Now()
	r.Err = runWatched(ctx, s, sc, progress, StallLimit)
	r.Duration = time.Since(start)
	// Goroutines a scenario started may take a moment to be reaped.
	deadline := time.Now().Add(5 * time.Second)
	for r.GoroutinesAfter = runtime.NumGoroutine(); r.GoroutinesAfter > r.GoroutinesBefore && time.Now().Before(deadline); r.GoroutinesAfter = runtime.NumGoroutine() {
		time.Sleep(10 * time.Millisecond)
	}
	r.HeapAfter = heapInUse()
	if r.Err == nil && r.GoroutinesAfter > r.GoroutinesBefore {
		r.Err = fmt.Errorf("%d goroutines before, %d after", r.GoroutinesBefore, r.GoroutinesAfter)
	}
	if r.Err == nil && r.HeapAfter > r.HeapBefore+r.HeapBefore/10+1<<20 {
		r.Err = fmt.Errorf("heap %d KiB before, %d KiB after", r.HeapBefore>>10, r.HeapAfter>>10)
	}
	if r.Err == nil && ctx.Err() != nil {
		r.Err = errors.New("interrupted")
	}
	return r
}

// StallLimit is how long a scenario may go without reporting progress
// before it is failed as stalled (rather than left to hang).
var StallLimit = 2 * time.Minute

// runWatched runs s with a watchdog that cancels its ctx, and fails it,
// when progress stops for limit.
func runWatched(ctx context.Context, s Scenario, sc Scale, progress func(done, total int), limit time.Duration) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var beat atomic.Int64
	beat.Store(time.Now().UnixNano())
	quit := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		t := time.NewTicker(limit / 20)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			if idle := time.Since(time.Unix(0, beat.Load())); idle > limit {
				cancel(fmt.Errorf("stalled: no progress for %v", idle.Round(time.Second)))
				return
			}
		}
	}()
	err := s.Run(ctx, sc, func(done, total int) {
		beat.Store(time.Now().UnixNano())
		progress(done, total)
	})
	close(quit)
	<-watched
	if c := context.Cause(ctx); c != nil && ctx.Err() != nil && !errors.Is(c, context.Canceled) {
		return c
	}
	return err
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
