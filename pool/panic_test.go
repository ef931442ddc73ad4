package pool

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
)

var errInPanic = errors.New("error passed to panic")

// TestPanic: a task that panics (or calls runtime.Goexit) fails with a
// *PanicError matching ErrPanic, carrying the value and the stack; the
// pool counts it and keeps working with its full set of workers.
func TestPanic(t *testing.T) {
	panics := []struct {
		name    string
		f       func()
		matches error // besides ErrPanic
		value   func(any) bool
	}{
		{"string", func() { panic("boom") }, nil, func(v any) bool { return v == "boom" }},
		{"error", func() { panic(errInPanic) }, errInPanic, func(v any) bool { return v == errInPanic }},
		{"nil", func() { panic(nil) }, nil, func(v any) bool { _, ok := v.(*runtime.PanicNilError); return ok }},
		{"Goexit", func() { runtime.Goexit() }, nil, func(v any) bool { return v == nil }},
	}
	ways := []struct {
		name   string
		submit func(p *Pool, f func(), handler chan error) error
	}{
		{"Submit", func(p *Pool, f func(), _ chan error) error {
			return p.Submit(f).Wait(context.Background())
		}},
		{"SubmitErr", func(p *Pool, f func(), _ chan error) error {
			return p.SubmitErr(func() error { f(); return nil }).Wait(context.Background())
		}},
		{"SubmitValue", func(p *Pool, f func(), _ chan error) error {
			v, err := SubmitValue(p, func() (int, error) { f(); return 1, nil }).Wait(context.Background())
			if v != 0 {
				return errors.New("value of a panicked task is not zero")
			}
			return err
		}},
		{"Go", func(p *Pool, f func(), handler chan error) error {
			if err := p.Go(f); err != nil {
				return err
			}
			return <-handler
		}},
		{"Group", func(p *Pool, f func(), _ chan error) error {
			g, ctx := p.Group(context.Background())
			g.Go(func(context.Context) error { f(); return nil })
			err := g.Wait()
			if context.Cause(ctx) != err {
				return errors.New("group context not cancelled with the panic")
			}
			return err
		}},
		{"ResultGroup", func(p *Pool, f func(), _ chan error) error {
			g, _ := NewResultGroup[int](p, context.Background())
			g.Go(func(context.Context) (int, error) { return 1, nil })
			g.Go(func(context.Context) (int, error) { f(); return 2, nil })
			vals, err := g.Wait()
			if len(vals) != 2 || vals[1] != 0 {
				return errors.New("bad values")
			}
			return err
		}},
	}
	for _, w := range ways {
		for _, pc := range panics {
			t.Run(w.name+"/"+pc.name, func(t *testing.T) {
				handler := make(chan error, 1)
				const workers = 2
				p := newPool(t, workers, Config{ErrorHandler: func(err error) { handler <- err }})
				err := w.submit(p, pc.f, handler)
				var pe *PanicError
				if !errors.Is(err, ErrPanic) || !errors.As(err, &pe) {
					t.Fatalf("err = %v, want a *PanicError matching ErrPanic", err)
				}
				if pc.matches != nil && !errors.Is(err, pc.matches) {
					t.Errorf("err = %v, does not match %v", err, pc.matches)
				}
				if !pc.value(pe.Value) {
					t.Errorf("Value = %#v", pe.Value)
				}
				if !strings.Contains(string(pe.Stack), "pool.TestPanic") {
					t.Errorf("stack does not show the task:\n%s", pe.Stack)
				}
				if !strings.Contains(err.Error(), "pool.TestPanic") {
					t.Errorf("Error() does not include the stack:\n%s", err)
				}
				if m := p.Metrics(); m.Failed != 1 {
					t.Errorf("Metrics = %+v, want Failed 1", m)
				}
				// The pool goes on, with all its workers.
				var wg sync.WaitGroup
				start := make(chan struct{})
				var running sync.WaitGroup
				running.Add(workers)
				for range workers {
					wg.Add(1)
					if err := p.Go(func() { running.Done(); <-start; wg.Done() }); err != nil {
						t.Fatal(err)
					}
				}
				running.Wait() // both workers busy at once
				close(start)
				wg.Wait()
				if m := p.Metrics(); m.RunningWorkers > workers {
					t.Errorf("%d workers > %d", m.RunningWorkers, workers)
				}
			})
		}
	}
}

// TestGoexitDrainsQueue: tasks that end their worker with
// runtime.Goexit do not strand the tasks queued behind them.
func TestGoexitDrainsQueue(t *testing.T) {
	p := newPool(t, 1, Config{})
	gate := make(chan struct{})
	first := p.Submit(func() { <-gate; runtime.Goexit() })
	var tasks []*Task
	for i := range 10 {
		if i%3 == 0 {
			tasks = append(tasks, p.Submit(func() { runtime.Goexit() }))
		} else {
			tasks = append(tasks, p.Submit(func() {}))
		}
	}
	close(gate)
	if err := first.Wait(context.Background()); !errors.Is(err, ErrPanic) {
		t.Fatalf("first: %v", err)
	}
	for i, task := range tasks {
		err := task.Wait(context.Background())
		if i%3 == 0 && !errors.Is(err, ErrPanic) || i%3 != 0 && err != nil {
			t.Fatalf("task %d: %v", i, err)
		}
	}
	if m := p.Metrics(); m.Failed != 5 || m.Succeeded != 6 || m.Waiting != 0 {
		t.Fatalf("Metrics = %+v", m)
	}
}
