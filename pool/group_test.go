package pool

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

var errBoom = errors.New("boom")

// TestGroupFailFast: the first error cancels the group's context (with
// the error as its cause) so running tasks stop early, tasks still
// queued are not run, and Wait returns that first error.
func TestGroupFailFast(t *testing.T) {
	p := newPool(t, 4, Config{})
	g, ctx := p.Group(context.Background())
	var sawCancel, ran atomic.Int32
	started := make(chan struct{}, 3)
	for range 3 { // occupy three workers until the group fails
		g.Go(func(ctx context.Context) error {
			ran.Add(1)
			started <- struct{}{}
			<-ctx.Done()
			sawCancel.Add(1)
			return ctx.Err()
		})
	}
	for range 3 {
		<-started
	}
	g.Go(func(context.Context) error { ran.Add(1); return errBoom })
	err := g.Wait()
	if err != errBoom {
		t.Fatalf("Wait = %v, want errBoom", err)
	}
	if got := context.Cause(ctx); got != errBoom {
		t.Fatalf("context cause = %v, want errBoom", got)
	}
	if sawCancel.Load() != 3 || ran.Load() != 4 {
		t.Fatalf("saw cancel %d, ran %d", sawCancel.Load(), ran.Load())
	}
}

// TestGroupSkipsQueuedAfterFailure: with one worker, a failing task
// stops the tasks queued behind it from running at all.
func TestGroupSkipsQueuedAfterFailure(t *testing.T) {
	p := newPool(t, 1, Config{})
	g, _ := p.Group(context.Background())
	gate := make(chan struct{})
	var ran atomic.Int32
	g.Go(func(context.Context) error { <-gate; return errBoom })
	for range 9 {
		g.Go(func(context.Context) error { ran.Add(1); return nil })
	}
	close(gate)
	if err := g.Wait(); err != errBoom {
		t.Fatalf("Wait = %v", err)
	}
	if ran.Load() != 0 {
		t.Fatalf("%d queued tasks ran after the failure", ran.Load())
	}
	if m := p.Metrics(); m.Cancelled != 9 || m.Failed != 1 || m.Waiting != 0 {
		t.Fatalf("Metrics = %+v", m)
	}
}

// TestGroupErrors: what Wait returns in each case.
func TestGroupErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, p *Pool) error
		want func(error) bool
	}{
		{"all succeed", func(t *testing.T, p *Pool) error {
			g, _ := p.Group(context.Background())
			for range 20 {
				g.Go(func(context.Context) error { return nil })
			}
			return g.Wait()
		}, func(err error) bool { return err == nil }},
		{"empty", func(t *testing.T, p *Pool) error {
			g, _ := p.Group(context.Background())
			return g.Wait()
		}, func(err error) bool { return err == nil }},
		{"first error wins", func(t *testing.T, p *Pool) error {
			g, _ := p.Group(context.Background())
			g.Go(func(context.Context) error { return errBoom })
			err := g.Wait()
			return err
		}, func(err error) bool { return err == errBoom }},
		{"parent cancelled", func(t *testing.T, p *Pool) error {
			parent, cancel := context.WithCancelCause(context.Background())
			cancel(errBoom)
			g, _ := p.Group(parent)
			g.Go(func(context.Context) error { t.Error("ran"); return nil })
			return g.Wait()
		}, func(err error) bool { return err == errBoom }},
		{"pool stopped", func(t *testing.T, p *Pool) error {
			p.Stop()
			g, _ := p.Group(context.Background())
			g.Go(func(context.Context) error { t.Error("ran"); return nil })
			return g.Wait()
		}, func(err error) bool { return errors.Is(err, ErrStopped) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPool(t, 2, Config{})
			if err := tc.run(t, p); !tc.want(err) {
				t.Fatalf("Wait = %v", err)
			}
		})
	}
}

// TestGroupContextCancelledByWait: like errgroup, Wait cancels the
// group's context.
func TestGroupContextCancelledByWait(t *testing.T) {
	p := newPool(t, 2, Config{})
	g, ctx := p.Group(context.Background())
	g.Go(func(context.Context) error { return nil })
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() == nil {
		t.Fatal("group context not cancelled after Wait")
	}
}

// TestResultGroupOrder: values come back in the order of the Go calls,
// whatever order the tasks finish in (fake time makes them finish in
// reverse).
func TestResultGroupOrder(t *testing.T) {
	for _, workers := range []int{1, 3, 64} {
		t.Run(fmt.Sprint(workers, "workers"), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p, err := New(workers, Config{})
				if err != nil {
					t.Fatal(err)
				}
				defer p.StopAndWait(context.Background())
				const n = 100
				g, _ := NewResultGroup[string](p, context.Background())
				for i := range n {
					g.Go(func(context.Context) (string, error) {
						time.Sleep(time.Duration(n-i) * time.Millisecond)
						return fmt.Sprint(i), nil
					})
				}
				vals, err := g.Wait()
				if err != nil {
					t.Fatal(err)
				}
				if len(vals) != n {
					t.Fatalf("%d values, want %d", len(vals), n)
				}
				for i, v := range vals {
					if v != fmt.Sprint(i) {
						t.Fatalf("vals[%d] = %q", i, v)
					}
				}
			})
		})
	}
}

// TestResultGroupFailure: the first error is returned, the context is
// cancelled with it, and failed or skipped tasks leave zero values.
func TestResultGroupFailure(t *testing.T) {
	p := newPool(t, 1, Config{})
	g, ctx := NewResultGroup[int](p, context.Background())
	g.Go(func(context.Context) (int, error) { return 1, nil })
	g.Go(func(context.Context) (int, error) { return 2, errBoom })
	g.Go(func(context.Context) (int, error) { return 3, nil }) // queued: skipped
	vals, err := g.Wait()
	if err != errBoom || context.Cause(ctx) != errBoom {
		t.Fatalf("Wait = %v, cause %v", err, context.Cause(ctx))
	}
	if want := []int{1, 2, 0}; fmt.Sprint(vals) != fmt.Sprint(want) {
		t.Fatalf("vals = %v, want %v", vals, want)
	}
}
