package pool

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

var sink atomic.Uint64

func tiny() { sink.Add(1) }

func tinyErr() error { sink.Add(1); return nil }

// newBenchPool makes a pool whose queue is bounded, so that submitters
// are held back to the pace of the workers: the time per operation is
// then the cost of a task from submission to completion, not of an
// ever-growing queue.
func newBenchPool(b *testing.B, workers int) *Pool {
	b.Helper()
	p, err := New(workers, Config{QueueSize: 1024})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := p.StopAndWait(context.Background()); err != nil {
			b.Error(err)
		}
	})
	return p
}

// BenchmarkGo: fire-and-forget tiny tasks. 0 allocs/op.
func BenchmarkGo(b *testing.B) {
	for _, workers := range []int{1, 2, 8, 100} {
		b.Run("workers="+strconv.Itoa(workers), func(b *testing.B) {
			p := newBenchPool(b, workers)
			b.ReportAllocs()
			for b.Loop() {
				if err := p.Go(tiny); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGoParallel: tiny tasks from many goroutines at once.
func BenchmarkGoParallel(b *testing.B) {
	p := newBenchPool(b, 8)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := p.Go(tiny); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkSubmit: tiny tasks with a handle, not waited for. 1 alloc/op:
// the handle.
func BenchmarkSubmit(b *testing.B) {
	p := newBenchPool(b, 2)
	b.ReportAllocs()
	for b.Loop() {
		p.Submit(tiny)
	}
}

// BenchmarkSubmitValue: tiny tasks with a value handle. 1 alloc/op.
func BenchmarkSubmitValue(b *testing.B) {
	p := newBenchPool(b, 2)
	f := func() (int, error) { return 1, nil }
	b.ReportAllocs()
	for b.Loop() {
		SubmitValue(p, f)
	}
}

// BenchmarkSubmitWait: one task at a time, submitted and waited for:
// the round trip through a parked worker.
func BenchmarkSubmitWait(b *testing.B) {
	p := newBenchPool(b, 2)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := p.SubmitErr(tinyErr).Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGroup: a group of 100 tiny tasks per operation, waited for.
func BenchmarkGroup(b *testing.B) {
	p := newBenchPool(b, 2)
	f := func(context.Context) error { sink.Add(1); return nil }
	b.ReportAllocs()
	for b.Loop() {
		g, _ := p.Group(context.Background())
		for range 100 {
			g.Go(f)
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResultGroup: a result group of 100 tiny tasks per operation.
func BenchmarkResultGroup(b *testing.B) {
	p := newBenchPool(b, 2)
	f := func(context.Context) (int, error) { return 1, nil }
	b.ReportAllocs()
	for b.Loop() {
		g, _ := NewResultGroup[int](p, context.Background())
		for range 100 {
			g.Go(f)
		}
		if _, err := g.Wait(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGoroutineBaseline: the same tiny tasks on a goroutine each,
// for comparison.
func BenchmarkGoroutineBaseline(b *testing.B) {
	var wg sync.WaitGroup
	b.ReportAllocs()
	for b.Loop() {
		wg.Go(tiny)
	}
	wg.Wait()
}
