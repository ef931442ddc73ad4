// Package poolbench compares github.com/ferrymq/ferry/pool with plain
// goroutines, pond v2 and ants v2 on two workloads: 1,000,000 tiny
// tasks, and 10,000 tasks that each sleep 10 ms.
//
// Each pool runs every task through its fire-and-forget call (ferry
// Pool.Go, pond Pool.Go, ants Pool.Submit), so no pool allocates a
// handle; a sync.WaitGroup shared by the tasks says when they are done.
//
//   - cold: a new pool per operation; the time covers its start, every
//     submission and run, and its stop (ferry StopAndWait, pond
//     StopAndWait, ants ReleaseTimeout), which waits for its goroutines.
//   - warm: one pool for all operations, stopped after the timing; its
//     workers may still be parked from the previous operation.
package poolbench

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alitto/pond/v2"
	"github.com/ferrymq/ferry/pool"
	"github.com/panjf2000/ants/v2"
)

// A peer is a pool implementation under test.
type peer struct {
	name string
	// start builds a pool of the given size and returns its submit func
	// and its stop func.
	start func(b *testing.B, workers int) (submit func(func()), stop func())
}

var peers = []peer{
	{"ferry", func(b *testing.B, workers int) (func(func()), func()) {
		p, err := pool.New(workers, pool.Config{})
		if err != nil {
			b.Fatal(err)
		}
		return func(f func()) {
				if err := p.Go(f); err != nil {
					b.Fatal(err)
				}
			}, func() {
				if err := p.StopAndWait(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
	}},
	{"pond", func(b *testing.B, workers int) (func(func()), func()) {
		p := pond.NewPool(workers)
		return func(f func()) {
			if err := p.Go(f); err != nil {
				b.Fatal(err)
			}
		}, p.StopAndWait
	}},
	{"ants", func(b *testing.B, workers int) (func(func()), func()) {
		p, err := ants.NewPool(workers)
		if err != nil {
			b.Fatal(err)
		}
		return func(f func()) {
				if err := p.Submit(f); err != nil {
					b.Fatal(err)
				}
			}, func() {
				if err := p.ReleaseTimeout(10 * time.Second); err != nil {
					b.Fatal(err)
				}
			}
	}},
}

var counter atomic.Uint64

func tiny() { counter.Add(1) }

func nap() { time.Sleep(10 * time.Millisecond) }

// BenchmarkTiny: 1,000,000 tasks that each add to a counter.
func BenchmarkTiny(b *testing.B) {
	workload(b, 1_000_000, tiny, []int{2, 100, 10_000})
}

// BenchmarkSleep: 10,000 tasks that each sleep 10 ms.
func BenchmarkSleep(b *testing.B) {
	workload(b, 10_000, nap, []int{100, 1000, 10_000})
}

func workload(b *testing.B, tasks int, work func(), sizes []int) {
	var wg sync.WaitGroup
	task := func() { work(); wg.Done() }
	perTask := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*tasks), "ns/task")
	}
	b.Run("goroutines", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			wg.Add(tasks)
			for range tasks {
				go task()
			}
			wg.Wait()
		}
		perTask(b)
	})
	for _, workers := range sizes {
		for _, p := range peers {
			b.Run("cold/workers="+itoa(workers)+"/"+p.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					submit, stop := p.start(b, workers)
					wg.Add(tasks)
					for range tasks {
						submit(task)
					}
					wg.Wait()
					stop()
				}
				perTask(b)
			})
			b.Run("warm/workers="+itoa(workers)+"/"+p.name, func(b *testing.B) {
				submit, stop := p.start(b, workers)
				defer stop()
				b.ReportAllocs()
				for b.Loop() {
					wg.Add(tasks)
					for range tasks {
						submit(task)
					}
					wg.Wait()
				}
				perTask(b)
			})
		}
	}
}

func itoa(n int) string {
	s := ""
	for {
		s = string(rune('0'+n%10)) + s
		n /= 10
		if n == 0 {
			return s
		}
	}
}
