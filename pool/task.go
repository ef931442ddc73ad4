package pool

import (
	"context"
	"sync"
)

// closedChan is the Done channel of handles completed before anyone
// asked for one.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// state is the completion state of a handle. Its Done channel is made
// only when asked for, so a handle costs one allocation.
type state struct {
	wg   sync.WaitGroup // Done when complete: Wait without a ctx parks on it
	mu   sync.Mutex
	done bool
	ch   chan struct{} // nil until Done is called
	err  error         // written once, before done is set
}

func (s *state) init() { s.wg.Add(1) }

func (s *state) complete(err error) {
	s.mu.Lock()
	s.err = err
	s.done = true
	if s.ch != nil {
		close(s.ch)
	}
	s.mu.Unlock()
	s.wg.Done()
}

func (s *state) doneChan() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		if s.done {
			s.ch = closedChan
		} else {
			s.ch = make(chan struct{})
		}
	}
	return s.ch
}

// wait waits for completion, or for ctx to end and returns its cause.
// After a nil return, err may be read.
func (s *state) wait(ctx context.Context) error {
	if ctx.Done() == nil {
		s.wg.Wait()
		return nil
	}
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done {
		return nil
	}
	select {
	case <-s.doneChan():
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Task is the handle of a task submitted by Submit, SubmitErr or
// TrySubmit. It drops its reference to the task's function once the
// task has run.
type Task struct {
	s  state
	f  func()
	fe func() error
}

func newTask() *Task {
	t := &Task{}
	t.s.init()
	return t
}

// Wait waits for the task to finish and returns its error: the
// function's error, a *PanicError matching ErrPanic, or why the pool
// refused or discarded it (matching ErrStopped or ErrQueueFull). If ctx
// ends first it returns ctx's cause; the task is not affected.
func (t *Task) Wait(ctx context.Context) error {
	if err := t.s.wait(ctx); err != nil {
		return err
	}
	return t.s.err
}

// Done returns a channel closed when the task has finished (or was
// refused or discarded).
func (t *Task) Done() <-chan struct{} { return t.s.doneChan() }

func (t *Task) run(p *Pool) {
	f, fe := t.f, t.fe
	t.f, t.fe = nil, nil
	ok := false
	defer func() {
		if !ok {
			err := panicError(recover())
			p.m.failed.Add(1)
			t.s.complete(err)
		}
	}()
	var err error
	if f != nil {
		f()
	} else {
		err = fe()
	}
	ok = true
	p.count(err)
	t.s.complete(err)
}

func (t *Task) cancel(err error) {
	t.f, t.fe = nil, nil
	t.s.complete(err)
}

// Result is the handle of a task submitted by SubmitValue: a Task that
// also carries the function's value. It drops its reference to the
// function once the task has run.
type Result[T any] struct {
	s state
	f func() (T, error)
	v T
}

// Wait waits for the task to finish and returns its value and error, as
// Task.Wait does. The value is the zero T unless the function returned.
// If ctx ends first it returns the zero T and ctx's cause.
func (r *Result[T]) Wait(ctx context.Context) (T, error) {
	if err := r.s.wait(ctx); err != nil {
		var zero T
		return zero, err
	}
	return r.v, r.s.err
}

// Done returns a channel closed when the task has finished (or was
// refused or discarded).
func (r *Result[T]) Done() <-chan struct{} { return r.s.doneChan() }

func (r *Result[T]) run(p *Pool) {
	f := r.f
	r.f = nil
	ok := false
	defer func() {
		if !ok {
			err := panicError(recover())
			p.m.failed.Add(1)
			r.s.complete(err)
		}
	}()
	v, err := f()
	ok = true
	r.v = v
	p.count(err)
	r.s.complete(err)
}

func (r *Result[T]) cancel(err error) {
	r.f = nil
	r.s.complete(err)
}
