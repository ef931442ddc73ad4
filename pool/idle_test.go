package pool

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// TestIdleWorkersExit: workers exit after more than IdleTimeout (and at
// most 1.25 × IdleTimeout) idle, leaving no goroutine; the pool then
// starts new ones on demand. Fake time (synctest) makes it exact and
// instant.
func TestIdleWorkersExit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration // Config.IdleTimeout
		want    time.Duration // effective timeout
	}{
		{"default", 0, DefaultIdleTimeout},
		{"50ms", 50 * time.Millisecond, 50 * time.Millisecond},
		{"3s", 3 * time.Second, 3 * time.Second},
		{"4ns", 4, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p, err := New(4, Config{IdleTimeout: tc.timeout})
				if err != nil {
					t.Fatal(err)
				}
				burst(t, p, 8)
				// Every worker parked at the same (fake) instant: now.
				if got := p.Metrics().RunningWorkers; got != 4 {
					t.Fatalf("after a burst: %d workers, want 4", got)
				}
				time.Sleep(tc.want)
				synctest.Wait()
				{
					if got := p.Metrics().RunningWorkers; got != 4 {
						t.Fatalf("after exactly IdleTimeout: %d workers, want 4 still", got)
					}
				}
				time.Sleep(tc.want/4 + 1)
				synctest.Wait()
				if got := p.Metrics().RunningWorkers; got != 0 {
					t.Fatalf("after 1.25 × IdleTimeout: %d workers, want 0", got)
				}
				if got := workerGoroutines(); got != 0 {
					t.Fatalf("after 1.25 × IdleTimeout: %d worker goroutines, want 0", got)
				}
				// An idle pool still works.
				burst(t, p, 8)
				if err := p.StopAndWait(context.Background()); err != nil {
					t.Fatal(err)
				}
				// The last worker may still be returning from its
				// function (StopAndWait, like a WaitGroup, is told just
				// before): let it.
				synctest.Wait()
				if got := workerGoroutines(); got != 0 {
					t.Fatalf("after StopAndWait: %d worker goroutines", got)
				}
			})
		})
	}
}

// TestIdleLightLoadKeepsOneWorker: under a light steady load the most
// recently parked worker is reused (LIFO), so the others time out.
func TestIdleLightLoadKeepsOneWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := New(8, Config{IdleTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer p.StopAndWait(context.Background())
		burst(t, p, 8)
		for range 40 { // 4 s of one task every 100 ms
			time.Sleep(100 * time.Millisecond)
			if err := p.Submit(func() {}).Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		if got := p.Metrics().RunningWorkers; got != 1 {
			t.Fatalf("under light load: %d workers, want 1", got)
		}
		if got := workerGoroutines(); got != 1 {
			t.Fatalf("under light load: %d worker goroutines, want 1", got)
		}
	})
}

// TestIdlePoolHoldsNoGoroutine: a pool that never ran a task, and one
// that ran tasks then idled, hold no goroutine; synctest.Test itself
// fails if any goroutine of the bubble is left blocked.
func TestIdlePoolHoldsNoGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		p, err := New(3, Config{Context: ctx, IdleTimeout: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if got := workerGoroutines(); got != 0 {
			t.Fatalf("new pool: %d worker goroutines", got)
		}
		burst(t, p, 5)
		time.Sleep(time.Second)
		synctest.Wait()
		if m := p.Metrics(); m.RunningWorkers != 0 || m.Succeeded != 5 {
			t.Fatalf("idle pool: %+v", m)
		}
		// Never stopped: nothing of the pool may be left in the bubble.
	})
}

// burst runs n tasks that each sleep 10 ms, and waits for them.
func burst(t *testing.T, p *Pool, n int) {
	t.Helper()
	tasks := make([]*Task, n)
	for i := range tasks {
		tasks[i] = p.Submit(func() { time.Sleep(10 * time.Millisecond) })
	}
	for _, task := range tasks {
		if err := task.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	synctest.Wait() // the workers have parked
}
