package pool

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Pool runs tasks on at most a fixed number of worker goroutines.
//
// Workers are started on demand, one per submission that finds no
// worker free, until the limit is reached; a worker left without work
// spins briefly (one at a time), then parks, and exits after
// Config.IdleTimeout parked: an idle pool holds no goroutines. Parked
// workers are reused most recently parked first. Tasks beyond the
// workers wait in a FIFO queue, unbounded unless Config.QueueSize is
// set. No goroutine or timer is created per task; a submission
// allocates at most its handle.
//
// Nothing the pool holds outlives its use: queue slots, parked workers'
// hand-off slots and task handles drop their reference to a task's
// function as soon as it is handed out or has run.
//
// A Pool is safe for concurrent use. Its zero value is not usable: call
// New.
type Pool struct {
	mu      sync.Mutex
	q       queue     // tasks waiting for a worker
	idle    []*worker // parked workers, oldest first
	maxW    int       // worker limit (Resize)
	running int       // workers counted against maxW: not told to exit
	waiters int       // submitters waiting for room in a bounded queue
	spinner bool      // a worker spins, due to look at the queue shortly: the next task is for it
	spinGen uint64    // counts spinners, so that each knows if spinner is still its own
	notFull sync.Cond // signalled when a bounded queue gets room, or on stop
	stopped bool
	stopErr error // what submissions get once stopped

	// pending counts what StopAndWait waits for: worker goroutines, an
	// armed reaper (whose callback runs on a goroutine of its own), and
	// one for the pool not being stopped yet. Whoever takes it to zero
	// closes done. Workers leave without taking mu.
	pending atomic.Int64
	done    chan struct{}

	reaper      *time.Timer // ticks every idleTimeout/reapTicks while workers are parked
	reaperArmed bool        // reaper is set, or its callback has yet to take mu
	epoch       uint64      // reaper ticks so far

	queueSize   int
	nonBlocking bool
	idleTimeout time.Duration
	onError     func(error)

	unwatch     func() bool   // stops watching Config.Context; nil if none
	unwatchOnce sync.Once     // unwatch is called once
	watchGone   bool          // unwatch returned true: the callback never runs
	watchDone   chan struct{} // closed when the Context callback has run

	m counters
}

// counters are the pool's metrics; the submitters' and the workers'
// are kept on separate cache lines.
type counters struct {
	submitted atomic.Uint64
	dropped   atomic.Uint64
	workers   atomic.Int64
	_         [40]byte
	dequeued  atomic.Uint64 // started or cancelled
	succeeded atomic.Uint64
	failed    atomic.Uint64
	cancelled atomic.Uint64
	_         [32]byte
}

// worker is the hand-off point of a parked worker goroutine.
type worker struct {
	wake      sync.WaitGroup // 1 while parked; Done wakes it
	next      runner         // set before wake.Done; nil means exit
	parkEpoch uint64         // Pool.epoch when it was last parked; guarded by Pool.mu
}

// Metrics is a snapshot of a pool's counters. Each field is read
// atomically, but the fields are not read at one instant together.
type Metrics struct {
	// RunningWorkers is the number of worker goroutines that exist,
	// busy or parked.
	RunningWorkers int
	// Submitted counts tasks the pool accepted.
	Submitted uint64
	// Waiting is the number of accepted tasks not yet started nor
	// discarded.
	Waiting uint64
	// Succeeded counts tasks that returned without error.
	Succeeded uint64
	// Failed counts tasks that returned an error or panicked.
	Failed uint64
	// Dropped counts submissions refused with ErrStopped or
	// ErrQueueFull; they are not in Submitted.
	Dropped uint64
	// Cancelled counts accepted tasks discarded without running: queued
	// when Config.Context ended, or group tasks whose group context was
	// already done when their turn came.
	Cancelled uint64
}

// New returns a pool of at most maxWorkers workers (>= 1) configured by
// cfg, or an error naming the argument or the Config field out of
// range.
func New(maxWorkers int, cfg Config) (*Pool, error) {
	if err := checkWorkers(maxWorkers); err != nil {
		return nil, err
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Pool{
		maxW:        maxWorkers,
		done:        make(chan struct{}),
		queueSize:   cfg.QueueSize,
		nonBlocking: cfg.NonBlocking,
		idleTimeout: cfg.IdleTimeout,
		onError:     cfg.ErrorHandler,
	}
	p.notFull.L = &p.mu
	p.pending.Store(1) // until stopped
	if ctx := cfg.Context; ctx != nil {
		stopped := func() error { return fmt.Errorf("%w: %w", ErrStopped, context.Cause(ctx)) }
		p.watchDone = make(chan struct{})
		// The callback starts with p.stop, which takes mu: holding mu
		// here orders the store of unwatch before its use.
		p.mu.Lock()
		p.unwatch = context.AfterFunc(ctx, func() {
			defer close(p.watchDone)
			p.stop(stopped(), true)
		})
		p.mu.Unlock()
		if ctx.Err() != nil { // stopped from the start, not some time later
			p.stop(stopped(), true)
		}
	}
	return p, nil
}

// Go runs f on the pool and forgets it: no handle is allocated. It
// returns ErrStopped if the pool is stopped, or ErrQueueFull if the
// bounded queue is full and the pool is NonBlocking; otherwise it waits
// for room in a full bounded queue. A panic in f is counted as a
// failure and passed to Config.ErrorHandler.
func (p *Pool) Go(f func()) error {
	return p.submit(funcTask(f), false)
}

// Submit runs f on the pool and returns its handle. It never returns
// nil: if the pool refuses f (ErrStopped, or ErrQueueFull when
// NonBlocking), the handle is already done with that error. It waits
// for room in a full bounded queue otherwise.
func (p *Pool) Submit(f func()) *Task {
	t := newTask()
	t.f = f
	if err := p.submit(t, false); err != nil {
		t.s.complete(err)
	}
	return t
}

// SubmitErr is Submit for a function that returns an error, which the
// handle's Wait reports.
func (p *Pool) SubmitErr(f func() error) *Task {
	t := newTask()
	t.fe = f
	if err := p.submit(t, false); err != nil {
		t.s.complete(err)
	}
	return t
}

// TrySubmit is SubmitErr that never waits: if the bounded queue is full
// it returns nil and ErrQueueFull, and if the pool is stopped, nil and
// ErrStopped.
func (p *Pool) TrySubmit(f func() error) (*Task, error) {
	t := newTask()
	t.fe = f
	if err := p.submit(t, true); err != nil {
		return nil, err
	}
	return t, nil
}

// SubmitValue runs f on p and returns a handle to its value and error.
// Like Submit, it never returns nil. (Go methods cannot have type
// parameters, hence a function.)
func SubmitValue[T any](p *Pool, f func() (T, error)) *Result[T] {
	r := &Result[T]{f: f}
	r.s.init()
	if err := p.submit(r, false); err != nil {
		r.s.complete(err)
	}
	return r
}

// submit hands r to a parked worker, to a new worker, or to the queue.
// If the bounded queue is full it fails with ErrQueueFull when try is
// set or the pool is NonBlocking, and waits for room otherwise.
func (p *Pool) submit(r runner, try bool) error {
	p.mu.Lock()
	for {
		if p.stopped {
			err := p.stopErr
			p.mu.Unlock()
			p.m.dropped.Add(1)
			return err
		}
		if n := len(p.idle); n > 0 && !p.spinner { // the most recently parked
			w := p.idle[n-1]
			p.idle[n-1] = nil
			p.idle = p.idle[:n-1]
			w.next = r
			p.m.submitted.Add(1)
			p.mu.Unlock()
			w.wake.Done()
			return nil
		}
		if p.running < p.maxW && !p.spinner {
			p.spawnLocked(r)
			p.m.submitted.Add(1)
			p.mu.Unlock()
			return nil
		}
		if p.queueSize == 0 || p.q.len() < p.queueSize {
			p.q.push(r)
			p.spinner = false // if one spins, r is its: the next task goes elsewhere
			p.m.submitted.Add(1)
			p.mu.Unlock()
			return nil
		}
		if try || p.nonBlocking {
			p.mu.Unlock()
			p.m.dropped.Add(1)
			return ErrQueueFull
		}
		p.waiters++
		p.notFull.Wait()
		p.waiters--
	}
}

// spawnLocked starts a worker whose first task is r.
func (p *Pool) spawnLocked(r runner) {
	p.running++
	p.pending.Add(1)
	p.m.workers.Add(1)
	go p.work(r)
}

// work is a worker goroutine: it runs r, then queued tasks, then parks
// until handed a task or told to exit (by Stop, Resize or the reaper).
func (p *Pool) work(r runner) {
	var w *worker // made at the first park
	clean := false
	defer func() {
		if !clean { // a task called runtime.Goexit: this goroutine ends
			p.goexited()
		}
	}()
	for {
		p.exec(r)
		r = nil

		p.mu.Lock()
		spun := false
	look:
		if p.q.len() > 0 && p.running <= p.maxW {
			r = p.q.pop()
			if p.waiters > 0 {
				p.notFull.Signal()
			}
			p.mu.Unlock()
			continue
		}
		if p.stopped || p.running > p.maxW { // drained, or shrunk by Resize
			p.running--
			p.kickLocked()
			p.mu.Unlock()
			p.exited()
			clean = true
			return
		}
		if !spun && !p.spinner {
			// Before parking, spin a little: when submitters are about
			// as fast as the workers, the next task comes soon, and
			// waking a parked worker costs more than the task.
			p.spinner, spun = true, true
			p.spinGen++
			gen := p.spinGen
			seen := p.m.submitted.Load()
			p.mu.Unlock()
			for range spinTries {
				runtime.Gosched()
				if p.m.submitted.Load() != seen {
					break
				}
			}
			p.mu.Lock()
			if p.spinGen == gen {
				p.spinner = false
			}
			goto look
		}
		if w == nil {
			w = new(worker)
		}
		p.parkLocked(w)
		p.mu.Unlock()

		w.wake.Wait()
		r, w.next = w.next, nil
		if r == nil { // told to exit; the waker uncounted w from running
			p.exited()
			clean = true
			return
		}
	}
}

// spinTries is how many times a worker yields, looking for a new task,
// before it parks. Only one worker spins at a time.
const spinTries = 50

// kickLocked hands queued tasks to parked workers when no other worker
// may come for them: tasks can be queued while workers are parked when
// a spinner was due to take them, and the spinner may exit instead
// (stopped, or shrunk by Resize). Once stopped, it also tells the
// remaining parked workers to exit.
func (p *Pool) kickLocked() {
	for p.q.len() > 0 && len(p.idle) > 0 && !p.spinner && p.running <= p.maxW {
		n := len(p.idle) - 1
		w := p.idle[n]
		p.idle[n] = nil
		p.idle = p.idle[:n]
		w.next = p.q.pop()
		w.wake.Done()
		if p.waiters > 0 {
			p.notFull.Signal()
		}
	}
	if p.stopped && p.q.len() == 0 {
		p.releaseIdleLocked(len(p.idle))
	}
}

// exited accounts for the end of a worker goroutine, already uncounted
// from running.
func (p *Pool) exited() {
	p.m.workers.Add(-1)
	p.release()
}

// release drops one count from pending; the last closes done.
func (p *Pool) release() {
	if p.pending.Add(-1) == 0 {
		close(p.done)
		p.stopWatching()
	}
}

// exec runs one task.
func (p *Pool) exec(r runner) {
	p.m.dequeued.Add(1)
	r.run(p)
}

// funcTask is a task submitted by Pool.Go. A func is pointer-shaped, so
// making it a runner allocates nothing.
type funcTask func()

func (f funcTask) run(p *Pool) {
	ok := false
	defer func() {
		if !ok {
			p.m.failed.Add(1)
			err := panicError(recover())
			if p.onError != nil {
				p.onError(err)
			}
		}
	}()
	f()
	ok = true
	p.m.succeeded.Add(1)
}

func (f funcTask) cancel(error) {}

// count records the outcome of a task that returned.
func (p *Pool) count(err error) {
	if err != nil {
		p.m.failed.Add(1)
	} else {
		p.m.succeeded.Add(1)
	}
}

// panicError makes the error of a task that panicked with v (nil for
// runtime.Goexit). It must be called from the deferred function.
func panicError(v any) *PanicError {
	return &PanicError{Value: v, Stack: debug.Stack()}
}

// goexited accounts for a worker ended by a task's runtime.Goexit and,
// if queued tasks now lack a worker, starts a replacement.
func (p *Pool) goexited() {
	// This goroutine no longer counts as a worker before any replacement
	// starts: Metrics never shows more workers than the limit.
	p.m.workers.Add(-1)
	p.mu.Lock()
	p.running--
	if p.q.len() > 0 && p.running < p.maxW {
		p.spawnLocked(p.q.pop())
		if p.waiters > 0 {
			p.notFull.Signal()
		}
	}
	p.mu.Unlock()
	p.release()
}

// reapTicks is the number of reaper ticks per idle timeout. A worker
// exits at the first tick after it has been parked for more than the
// timeout: after between 1 and 1+1/reapTicks timeouts. Ticks spare
// parking the cost of reading the clock.
const reapTicks = 4

// parkLocked puts w on top of the idle stack and makes sure the reaper
// ticks.
func (p *Pool) parkLocked(w *worker) {
	w.parkEpoch = p.epoch
	w.wake.Add(1)
	p.idle = append(p.idle, w)
	if !p.reaperArmed {
		p.reaperArmed = true
		p.pending.Add(1)
		if p.reaper == nil {
			p.reaper = time.AfterFunc(p.reapTick(), p.reap)
		} else {
			p.reaper.Reset(p.reapTick())
		}
	}
}

func (p *Pool) reapTick() time.Duration {
	return max(p.idleTimeout/reapTicks, 1)
}

// reap is a reaper tick: it tells the workers parked for more than
// idleTimeout to exit. The idle stack is ordered by park time, oldest
// first, so they are at its bottom. It runs on the timer's goroutine.
func (p *Pool) reap() {
	p.mu.Lock()
	p.epoch++
	k := 0
	for k < len(p.idle) && p.epoch-p.idle[k].parkEpoch > reapTicks {
		p.idle[k].wake.Done() // next is nil: exit
		p.running--
		k++
	}
	n := copy(p.idle, p.idle[k:])
	clear(p.idle[n:])
	p.idle = p.idle[:n]
	if n > 0 {
		p.reaper.Reset(p.reapTick()) // stays armed
		p.mu.Unlock()
		return
	}
	p.reaperArmed = false
	p.mu.Unlock()
	p.release()
}

// releaseIdleLocked tells up to n parked workers to exit, the most
// recently parked first.
func (p *Pool) releaseIdleLocked(n int) {
	for ; n > 0 && len(p.idle) > 0; n-- {
		k := len(p.idle) - 1
		p.idle[k].wake.Done() // next is nil: exit
		p.idle[k] = nil
		p.idle = p.idle[:k]
		p.running--
	}
}

// stopWatching stops watching Config.Context and reports whether its
// callback will never run (or there is none).
func (p *Pool) stopWatching() bool {
	p.unwatchOnce.Do(func() {
		p.watchGone = p.unwatch == nil || p.unwatch()
	})
	return p.watchGone
}

// Stop stops the pool and returns at once. New submissions fail with
// ErrStopped, and so do submitters waiting for room in a full bounded
// queue. Tasks already accepted still run; workers exit when the queue
// is empty. Stop may be called more than once.
func (p *Pool) Stop() {
	p.stop(ErrStopped, false)
}

// stop stops the pool; submissions get err. If drop is set, queued
// tasks are discarded with err.
func (p *Pool) stop(err error, drop bool) {
	var dropped queue
	p.mu.Lock()
	first := !p.stopped
	if first {
		p.stopped = true
		p.stopErr = err
	}
	if drop {
		dropped, p.q = p.q, queue{}
	}
	if p.q.len() == 0 {
		p.releaseIdleLocked(len(p.idle))
	}
	// Workers never park once stopped: the reaper has nothing left to
	// do. If its callback is already due, it releases its own count.
	disarmed := p.reaperArmed && len(p.idle) == 0 && p.reaper.Stop()
	if disarmed {
		p.reaperArmed = false
	}
	p.notFull.Broadcast()
	p.mu.Unlock()
	for dropped.len() > 0 {
		r := dropped.pop()
		p.m.dequeued.Add(1)
		p.m.cancelled.Add(1)
		r.cancel(err)
	}
	if disarmed {
		p.release()
	}
	if first {
		p.release()
	}
}

// StopAndWait stops the pool as Stop does, then waits until every
// accepted task has finished (or been discarded) and every goroutine the
// pool started has ended, or until ctx ends, returning its cause.
func (p *Pool) StopAndWait(ctx context.Context) error {
	p.Stop()
	select {
	case <-p.done:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	if !p.stopWatching() { // the Context callback has started: let it end
		select {
		case <-p.watchDone:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return nil
}

// Stopped reports whether the pool has been stopped.
func (p *Pool) Stopped() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopped
}

// Resize sets the worker limit to maxWorkers (>= 1) while the pool
// runs. Growing starts workers for queued tasks at once; shrinking
// tells parked workers to exit at once and busy ones when their task
// returns.
func (p *Pool) Resize(maxWorkers int) error {
	if err := checkWorkers(maxWorkers); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.maxW = maxWorkers
	if p.running > p.maxW {
		p.releaseIdleLocked(p.running - p.maxW)
	}
	spawned := false
	for p.q.len() > 0 && p.running < p.maxW {
		p.spawnLocked(p.q.pop())
		spawned = true
	}
	if spawned && p.waiters > 0 {
		p.notFull.Broadcast()
	}
	return nil
}

// MaxWorkers returns the worker limit.
func (p *Pool) MaxWorkers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maxW
}

// Metrics returns the pool's counters.
func (p *Pool) Metrics() Metrics {
	dequeued := p.m.dequeued.Load() // before submitted: Waiting >= 0
	submitted := p.m.submitted.Load()
	return Metrics{
		RunningWorkers: int(p.m.workers.Load()),
		Submitted:      submitted,
		Waiting:        submitted - dequeued,
		Succeeded:      p.m.succeeded.Load(),
		Failed:         p.m.failed.Load(),
		Dropped:        p.m.dropped.Load(),
		Cancelled:      p.m.cancelled.Load(),
	}
}
