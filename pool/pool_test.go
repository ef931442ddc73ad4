package pool

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestNewValidation: bad arguments are refused with an error naming the
// argument or field and its allowed range; the zero Config is valid.
func TestNewValidation(t *testing.T) {
	for _, tc := range []struct {
		workers int
		cfg     Config
		err     string // "" for none
	}{
		{1, Config{}, ""},
		{8, Config{QueueSize: 10, NonBlocking: true, IdleTimeout: time.Minute}, ""},
		{0, Config{}, "pool: maxWorkers = 0: must be >= 1"},
		{-1, Config{}, "pool: maxWorkers = -1: must be >= 1"},
		{1, Config{QueueSize: -3}, "pool: Config.QueueSize = -3: must be >= 0"},
		{1, Config{NonBlocking: true}, "pool: Config.NonBlocking = true: needs Config.QueueSize > 0"},
		{1, Config{IdleTimeout: -time.Second}, "pool: Config.IdleTimeout = -1s: must be >= 0"},
	} {
		t.Run(fmt.Sprintf("%d/%+v", tc.workers, tc.cfg), func(t *testing.T) {
			p, err := New(tc.workers, tc.cfg)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				stopWithin(t, p, time.Second)
				return
			}
			if err == nil || err.Error() != tc.err {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
			if p != nil {
				t.Fatal("pool returned with an error")
			}
		})
	}
	p := newPool(t, 1, Config{})
	for _, n := range []int{0, -5} {
		if err := p.Resize(n); err == nil || !strings.Contains(err.Error(), "maxWorkers") {
			t.Errorf("Resize(%d) = %v", n, err)
		}
	}
}

// TestSubmitKinds: every way of submitting runs the task and reports
// its outcome, and the metrics add up.
func TestSubmitKinds(t *testing.T) {
	p := newPool(t, 3, Config{})
	ctx := context.Background()
	var ran atomic.Int32
	if err := p.Submit(func() { ran.Add(1) }).Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.SubmitErr(func() error { ran.Add(1); return errBoom }).Wait(ctx); err != errBoom {
		t.Fatalf("SubmitErr: %v", err)
	}
	if v, err := SubmitValue(p, func() (string, error) { ran.Add(1); return "v", nil }).Wait(ctx); v != "v" || err != nil {
		t.Fatalf("SubmitValue: %q, %v", v, err)
	}
	task, err := p.TrySubmit(func() error { ran.Add(1); return nil })
	if err != nil {
		t.Fatal(err)
	}
	<-task.Done()
	done := make(chan struct{})
	if err := p.Go(func() { ran.Add(1); close(done) }); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := task.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	stopWithin(t, p, time.Second)
	want := Metrics{Submitted: 5, Succeeded: 4, Failed: 1}
	if m := p.Metrics(); ran.Load() != 5 || m != want {
		t.Fatalf("ran %d, Metrics = %+v, want %+v", ran.Load(), m, want)
	}
}

// TestHandleWaitAndDone: Wait honours its ctx; Done channels close on
// completion, including for handles completed before Done is called.
func TestHandleWaitAndDone(t *testing.T) {
	p := newPool(t, 1, Config{})
	gate := make(chan struct{})
	task := p.Submit(func() { <-gate })
	res := SubmitValue(p, func() (int, error) { return 7, nil })

	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errBoom)
	if err := task.Wait(ctx); err != errBoom {
		t.Fatalf("Wait with a cancelled ctx = %v, want its cause", err)
	}
	if v, err := res.Wait(ctx); v != 0 || err != errBoom {
		t.Fatalf("Result.Wait with a cancelled ctx = %v, %v", v, err)
	}
	select {
	case <-task.Done():
		t.Fatal("Done closed before the task ran")
	default:
	}
	close(gate)
	<-task.Done()
	<-res.Done()
	if v, err := res.Wait(context.Background()); v != 7 || err != nil {
		t.Fatalf("Result.Wait = %v, %v", v, err)
	}
	<-task.Done() // again: the same closed channel
	stopped := newPool(t, 1, Config{})
	stopped.Stop()
	refused := stopped.Submit(func() {})
	<-refused.Done()
	if err := refused.Wait(ctx); !errors.Is(err, ErrStopped) {
		t.Fatalf("refused task: %v", err)
	}
}

// TestBoundedQueue: TrySubmit and NonBlocking pools refuse work when the
// bounded queue is full, counting it as dropped; blocking submitters
// wait for room.
func TestBoundedQueue(t *testing.T) {
	for _, nonBlocking := range []bool{false, true} {
		t.Run(fmt.Sprint("NonBlocking=", nonBlocking), func(t *testing.T) {
			p := newPool(t, 1, Config{QueueSize: 2, NonBlocking: nonBlocking})
			gate := make(chan struct{})
			started := make(chan struct{})
			if err := p.Go(func() { close(started); <-gate }); err != nil {
				t.Fatal(err)
			}
			<-started
			closeGate := sync.OnceFunc(func() { close(gate) })
			defer closeGate()
			for range 2 { // queued
				if err := p.Go(func() { <-gate }); err != nil {
					t.Fatal(err)
				}
			}
			if task, err := p.TrySubmit(func() error { return nil }); task != nil || err != ErrQueueFull {
				t.Fatalf("TrySubmit on a full queue = %v, %v", task, err)
			}
			if nonBlocking {
				if err := p.Go(func() {}); err != ErrQueueFull {
					t.Fatalf("Go = %v", err)
				}
				if err := p.Submit(func() {}).Wait(context.Background()); err != ErrQueueFull {
					t.Fatalf("Submit = %v", err)
				}
				if m := p.Metrics(); m.Dropped != 3 || m.Waiting != 2 || m.Submitted != 3 {
					t.Fatalf("Metrics = %+v", m)
				}
				return
			}
			done := make(chan error)
			go func() { done <- p.Go(func() {}) }()
			for p.waitersNow() == 0 {
				time.Sleep(time.Millisecond)
			}
			closeGate()
			if err := <-done; err != nil {
				t.Fatalf("blocked Go = %v", err)
			}
		})
	}
}

// TestStopSemantics: Stop returns at once, queued tasks still run, new
// ones are refused; StopAndWait honours its ctx and may be repeated.
func TestStopSemantics(t *testing.T) {
	p := newPool(t, 1, Config{})
	gate := make(chan struct{})
	var ran atomic.Int32
	for range 5 {
		p.Go(func() { <-gate; ran.Add(1) })
	}
	p.Stop()
	p.Stop()
	if !p.Stopped() {
		t.Fatal("not Stopped")
	}
	if err := p.Go(func() {}); err != ErrStopped {
		t.Fatalf("Go after Stop = %v", err)
	}
	if _, err := p.TrySubmit(func() error { return nil }); err != ErrStopped {
		t.Fatalf("TrySubmit after Stop = %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.StopAndWait(ctx); err != context.DeadlineExceeded {
		t.Fatalf("StopAndWait with tasks held = %v", err)
	}
	close(gate)
	stopWithin(t, p, 10*time.Second)
	stopWithin(t, p, 10*time.Second)
	if ran.Load() != 5 {
		t.Fatalf("%d queued tasks ran, want 5", ran.Load())
	}
	if m := p.Metrics(); m.Dropped != 2 || m.Succeeded != 5 || m.RunningWorkers != 0 {
		t.Fatalf("Metrics = %+v", m)
	}
}

// TestContextStopsPool: when Config.Context ends the pool stops, queued
// tasks are discarded with an error matching ErrStopped and the cause,
// and running ones finish.
func TestContextStopsPool(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	p := newPool(t, 1, Config{Context: ctx})
	gate := make(chan struct{})
	running := p.Submit(func() { <-gate })
	queued := []*Task{p.Submit(func() {}), p.Submit(func() {})}
	value := SubmitValue(p, func() (int, error) { return 1, nil })
	g, _ := p.Group(context.Background())
	g.Go(func(context.Context) error { return nil })
	cancel(errBoom)
	for _, task := range queued {
		if err := task.Wait(context.Background()); !errors.Is(err, ErrStopped) || !errors.Is(err, errBoom) {
			t.Fatalf("queued task: %v", err)
		}
	}
	if _, err := value.Wait(context.Background()); !errors.Is(err, ErrStopped) {
		t.Fatalf("queued value: %v", err)
	}
	if err := g.Wait(); !errors.Is(err, ErrStopped) {
		t.Fatalf("queued group: %v", err)
	}
	if err := p.Go(func() {}); !errors.Is(err, ErrStopped) || !errors.Is(err, errBoom) {
		t.Fatalf("Go after the Context ended = %v", err)
	}
	close(gate)
	if err := running.Wait(context.Background()); err != nil {
		t.Fatalf("running task: %v", err)
	}
	stopWithin(t, p, 10*time.Second)
	if m := p.Metrics(); m.Cancelled != 4 || m.Succeeded != 1 || m.Waiting != 0 {
		t.Fatalf("Metrics = %+v", m)
	}
}

// TestMaxWorkers: no more than maxWorkers tasks ever run at once, and
// with enough blocking work exactly that many do.
func TestMaxWorkers(t *testing.T) {
	for _, workers := range []int{1, 3, 16} {
		t.Run(fmt.Sprint(workers), func(t *testing.T) {
			p := newPool(t, workers, Config{})
			var cur, peak atomic.Int32
			var wg sync.WaitGroup
			release := make(chan struct{})
			for range 10 * workers {
				wg.Add(1)
				p.Go(func() {
					defer wg.Done()
					n := cur.Add(1)
					for {
						old := peak.Load()
						if n <= old || peak.CompareAndSwap(old, n) {
							break
						}
					}
					<-release
					cur.Add(-1)
				})
			}
			for peak.Load() < int32(workers) {
				time.Sleep(time.Millisecond)
			}
			close(release)
			wg.Wait()
			if peak.Load() != int32(workers) {
				t.Fatalf("peak concurrency %d, want %d", peak.Load(), workers)
			}
			if got := p.MaxWorkers(); got != workers {
				t.Fatalf("MaxWorkers = %d", got)
			}
		})
	}
}

// TestFIFO: with one worker, tasks run in submission order.
func TestFIFO(t *testing.T) {
	p := newPool(t, 1, Config{})
	var got []int
	var tasks []*Task
	for i := range 1000 {
		tasks = append(tasks, p.Submit(func() { got = append(got, i) }))
	}
	for _, task := range tasks {
		task.Wait(context.Background())
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("task %d ran at position %d", v, i)
		}
	}
}

// TestResize: growing starts workers for queued tasks at once;
// shrinking sends parked workers away at once and busy ones after their
// task.
func TestResize(t *testing.T) {
	p := newPool(t, 1, Config{IdleTimeout: time.Hour})
	gate := make(chan struct{})
	var running sync.WaitGroup
	running.Add(5)
	var done sync.WaitGroup
	done.Add(5)
	for range 5 {
		p.Go(func() { running.Done(); <-gate; done.Done() })
	}
	if err := p.Resize(5); err != nil {
		t.Fatal(err)
	}
	running.Wait() // all five at once
	if err := p.Resize(2); err != nil {
		t.Fatal(err)
	}
	close(gate)
	done.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for p.Metrics().RunningWorkers != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers after shrinking to 2", p.Metrics().RunningWorkers)
		}
		time.Sleep(time.Millisecond)
	}
	if err := p.Resize(1); err != nil { // both parked: one goes at once
		t.Fatal(err)
	}
	for p.Metrics().RunningWorkers != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers after shrinking to 1", p.Metrics().RunningWorkers)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestContextAlreadyDone: a pool whose Context has already ended is
// stopped as soon as New returns.
func TestContextAlreadyDone(t *testing.T) {
	for range 200 {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(errBoom)
		p := newPool(t, 2, Config{Context: ctx})
		if err := p.Go(func() {}); !errors.Is(err, ErrStopped) || !errors.Is(err, errBoom) {
			t.Fatalf("Go = %v", err)
		}
		if err := p.Submit(func() {}).Wait(context.Background()); !errors.Is(err, ErrStopped) {
			t.Fatalf("Submit = %v", err)
		}
	}
}
