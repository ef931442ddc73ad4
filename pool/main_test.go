package pool

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the run if any goroutine outlives the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newPool makes a pool for a test and stops it, checking that it stops,
// when the test ends.
func newPool(t testing.TB, workers int, cfg Config) *Pool {
	t.Helper()
	p, err := New(workers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopWithin(t, p, 10*time.Second) })
	return p
}

// stopWithin calls StopAndWait and fails the test if it takes longer
// than d.
func stopWithin(t testing.TB, p *Pool, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := p.StopAndWait(ctx); err != nil {
		t.Fatalf("StopAndWait: %v", err)
	}
}

// waiters returns the number of submitters waiting for room.
func (p *Pool) waitersNow() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waiters
}

// workerGoroutines counts the goroutines running a pool worker.
func workerGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "pool.(*Pool).work(") {
			count++
		}
	}
	return count
}
