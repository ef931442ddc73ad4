package pool

import (
	"context"
	"sync"
)

// group is what Group and ResultGroup share: the tasks in flight, the
// first error and the context it cancels.
type group struct {
	p      *Pool
	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup
	once   sync.Once
	err    error // the first error; written once, read after wg.Wait
}

func (g *group) init(p *Pool, parent context.Context) context.Context {
	g.p = p
	g.ctx, g.cancel = context.WithCancelCause(parent)
	return g.ctx
}

// fail records err if it is the first and cancels the group's context.
func (g *group) fail(err error) {
	g.once.Do(func() {
		g.err = err
		g.cancel(err)
	})
}

// submit queues r, counted in wg; a refusal fails the group.
func (g *group) submit(r runner) {
	g.wg.Add(1)
	if err := g.p.submit(r, false); err != nil {
		g.fail(err)
		g.wg.Done()
	}
}

func (g *group) wait() error {
	g.wg.Wait()
	g.cancel(g.err)
	return g.err
}

// start reports whether a group task should run; if the group's context
// is already done it counts the task cancelled and fails the group with
// the context's cause.
func (g *group) start(p *Pool) bool {
	if g.ctx.Err() == nil {
		return true
	}
	p.m.cancelled.Add(1)
	g.fail(context.Cause(g.ctx))
	return false
}

// Group runs related tasks on a pool, waits for them all and fails fast,
// in the manner of errgroup: the first error cancels the group's
// context and is what Wait returns. Tasks still queued when the context
// is done are not run at all.
//
// Create one with Pool.Group. Go may be called from several goroutines;
// do not call Go after Wait has begun.
type Group struct {
	g group
}

// Group returns a new group of tasks run on p and its context, derived
// from parent and cancelled by the group's first error or by Wait.
func (p *Pool) Group(parent context.Context) (*Group, context.Context) {
	g := &Group{}
	return g, g.g.init(p, parent)
}

// Go runs f on the pool with the group's context. If the pool refuses
// it (ErrStopped, or ErrQueueFull when NonBlocking), that error fails
// the group. Go waits for room in a full bounded queue.
func (g *Group) Go(f func(ctx context.Context) error) {
	g.g.submit(&groupTask[struct{}]{g: &g.g, fe: f})
}

// Wait waits for every task given to Go, cancels the group's context and
// returns the first error: a task's error, a *PanicError, the pool's
// refusal, or the cause of the group's context if it ended before a task
// could start.
func (g *Group) Wait() error { return g.g.wait() }

// ResultGroup is a Group whose tasks return values: Wait returns them in
// the order the tasks were given to Go, whatever order they ran in.
//
// Create one with NewResultGroup. Go may be called from several
// goroutines (the order is then the order the calls took effect); do not
// call Go after Wait has begun.
type ResultGroup[T any] struct {
	g     group
	mu    sync.Mutex
	tasks []*groupTask[T]
}

// NewResultGroup returns a new result group of tasks run on p and its
// context, derived from parent and cancelled by the group's first error
// or by Wait. (Go methods cannot have type parameters, hence a
// function.)
func NewResultGroup[T any](p *Pool, parent context.Context) (*ResultGroup[T], context.Context) {
	g := &ResultGroup[T]{}
	return g, g.g.init(p, parent)
}

// Go runs f on the pool with the group's context; its value takes the
// next place in Wait's result. Refusals fail the group as in Group.Go.
func (g *ResultGroup[T]) Go(f func(ctx context.Context) (T, error)) {
	t := &groupTask[T]{g: &g.g, f: f}
	g.mu.Lock()
	g.tasks = append(g.tasks, t)
	g.mu.Unlock()
	g.g.submit(t)
}

// Wait waits for every task given to Go, cancels the group's context and
// returns their values in the order of the Go calls, with the first
// error as Group.Wait does. A task that returned an error leaves the
// value it returned; one that panicked or did not run leaves the zero T.
func (g *ResultGroup[T]) Wait() ([]T, error) {
	err := g.g.wait()
	g.mu.Lock()
	tasks := g.tasks
	g.tasks = nil
	g.mu.Unlock()
	out := make([]T, len(tasks))
	for i, t := range tasks {
		out[i] = t.v
	}
	return out, err
}

// groupTask is a task of a Group (fe set, T unused) or of a
// ResultGroup (f set; its value lands in v).
type groupTask[T any] struct {
	g  *group
	f  func(context.Context) (T, error)
	fe func(context.Context) error
	v  T
}

func (t *groupTask[T]) run(p *Pool) {
	g, f, fe := t.g, t.f, t.fe
	t.f, t.fe = nil, nil // the queue and the handle keep no closure
	ok := false
	defer func() {
		if !ok {
			err := panicError(recover())
			p.m.failed.Add(1)
			g.fail(err)
			g.wg.Done()
		}
	}()
	if !g.start(p) {
		ok = true
		g.wg.Done()
		return
	}
	var err error
	if fe != nil {
		err = fe(g.ctx)
	} else {
		t.v, err = f(g.ctx)
	}
	ok = true
	p.count(err)
	if err != nil {
		g.fail(err)
	}
	g.wg.Done()
}

func (t *groupTask[T]) cancel(err error) {
	t.f, t.fe = nil, nil
	t.g.fail(err)
	t.g.wg.Done()
}
