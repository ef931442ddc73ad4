package pool

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestStopNeverHangs stops pools, over and over, while tasks are queued
// and submitters are blocked on a full bounded queue: every call
// returns, blocked submitters get ErrStopped, accepted tasks run (or,
// when the pool's Context ends, are discarded with ErrStopped), and no
// goroutine remains.
func TestStopNeverHangs(t *testing.T) {
	defer goleak.VerifyNone(t)
	const (
		iterations = 10_000
		workers    = 2
		queueSize  = 2
		blocked    = 2 // submitters blocked on the full queue
	)
	type mode struct {
		name string
		// stop stops p while its workers are held by gate; cancel is
		// the cancel func of p's Config.Context.
		stop func(t *testing.T, p *Pool, gate chan struct{}, cancel context.CancelFunc)
		// dropsQueued: queued tasks are discarded, not run.
		dropsQueued bool
	}
	modes := []mode{
		{"Stop-then-release", func(t *testing.T, p *Pool, gate chan struct{}, _ context.CancelFunc) {
			p.Stop()
			close(gate)
			stopWithin(t, p, 10*time.Second)
		}, false},
		{"StopAndWait-while-held", func(t *testing.T, p *Pool, gate chan struct{}, _ context.CancelFunc) {
			go func() {
				for !p.Stopped() {
					runtime.Gosched()
				}
				close(gate)
			}()
			stopWithin(t, p, 10*time.Second)
		}, false},
		{"Context-cancelled", func(t *testing.T, p *Pool, gate chan struct{}, cancel context.CancelFunc) {
			cancel()
			for !p.Stopped() {
				runtime.Gosched()
			}
			close(gate)
			stopWithin(t, p, 10*time.Second)
		}, true},
	}
	errUnexpected := errors.New("unexpected")
	for i := range iterations {
		m := modes[i%len(modes)]
		ctx, cancel := context.WithCancel(context.Background())
		p, err := New(workers, Config{QueueSize: queueSize, Context: ctx})
		if err != nil {
			t.Fatal(err)
		}
		gate := make(chan struct{})
		var ran atomic.Int32
		held := make([]*Task, workers+queueSize)
		for j := range held {
			held[j] = p.Submit(func() { <-gate; ran.Add(1) })
		}
		var wg sync.WaitGroup
		errs := make(chan error, blocked)
		for range blocked {
			wg.Go(func() {
				if err := p.Go(func() { ran.Add(1) }); err != nil {
					errs <- err
				} else {
					errs <- errUnexpected
				}
			})
		}
		for p.waitersNow() < blocked {
			runtime.Gosched()
		}
		m.stop(t, p, gate, cancel)
		wg.Wait()
		for range blocked {
			if err := <-errs; !errors.Is(err, ErrStopped) {
				t.Fatalf("iteration %d (%s): blocked submitter got %v, want ErrStopped", i, m.name, err)
			}
		}
		wantRan := int32(workers + queueSize)
		if m.dropsQueued {
			wantRan = workers
		}
		if got := ran.Load(); got != wantRan {
			t.Fatalf("iteration %d (%s): %d tasks ran, want %d", i, m.name, got, wantRan)
		}
		for j, task := range held {
			err := task.Wait(context.Background())
			if dropped := m.dropsQueued && j >= workers; dropped {
				if !errors.Is(err, ErrStopped) || !errors.Is(err, context.Canceled) {
					t.Fatalf("iteration %d (%s): discarded task: %v, want ErrStopped and context.Canceled", i, m.name, err)
				}
			} else if err != nil {
				t.Fatalf("iteration %d (%s): task %d: %v", i, m.name, j, err)
			}
		}
		if err := p.Go(func() {}); !errors.Is(err, ErrStopped) {
			t.Fatalf("iteration %d (%s): Go after stop: %v, want ErrStopped", i, m.name, err)
		}
		if got := p.Metrics().RunningWorkers; got != 0 {
			t.Fatalf("iteration %d (%s): %d workers after StopAndWait", i, m.name, got)
		}
		cancel()
	}
}
