package pool

import (
	"context"
	"fmt"
	"time"
)

// DefaultIdleTimeout is how long a worker waits for a task before it
// exits, when Config.IdleTimeout is zero.
const DefaultIdleTimeout = time.Second

// Config configures a Pool. The zero value is ready to use; every field
// states its default and range. New checks them all in one place and
// returns an error naming the first field out of range.
type Config struct {
	// Context, when it ends, stops the pool: no new tasks are taken
	// (ErrStopped), tasks still queued are discarded without running
	// (their handles report an error matching both ErrStopped and the
	// context's cause; Metrics().Cancelled counts them), and workers exit
	// once their running task returns. Default nil: the pool runs until
	// Stop or StopAndWait.
	Context context.Context

	// QueueSize bounds the number of tasks waiting for a worker. A
	// submission that finds the queue full waits for room, or fails with
	// ErrQueueFull if NonBlocking is set (TrySubmit never waits).
	// Default 0: unbounded. Range >= 0.
	QueueSize int

	// NonBlocking makes submissions to a full bounded queue fail at once
	// with ErrQueueFull instead of waiting. Default false. It needs
	// QueueSize > 0: an unbounded queue is never full.
	NonBlocking bool

	// IdleTimeout is how long a worker with nothing to do waits before
	// it exits: it exits after more than IdleTimeout and at most
	// 1.25 × IdleTimeout idle (5 ns at the least), so a pool idle for
	// that long holds no goroutines. One timer per pool, ticking every
	// IdleTimeout/4 only while workers are parked, keeps the time.
	// Default 0: DefaultIdleTimeout (1 s). Range >= 0.
	IdleTimeout time.Duration

	// ErrorHandler, if set, is called on the worker goroutine with the
	// error of each task submitted by Pool.Go that panics (a *PanicError
	// matching ErrPanic). It must not panic. Default nil: the error is
	// only counted in Metrics().Failed. Tasks with a handle (Submit,
	// SubmitErr, SubmitValue, groups) report their errors through it
	// instead.
	ErrorHandler func(error)
}

// withDefaults validates c and fills in the defaults.
func (c Config) withDefaults() (Config, error) {
	switch {
	case c.QueueSize < 0:
		return c, fmt.Errorf("pool: Config.QueueSize = %d: must be >= 0", c.QueueSize)
	case c.NonBlocking && c.QueueSize == 0:
		return c, fmt.Errorf("pool: Config.NonBlocking = true: needs Config.QueueSize > 0")
	case c.IdleTimeout < 0:
		return c, fmt.Errorf("pool: Config.IdleTimeout = %v: must be >= 0", c.IdleTimeout)
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	return c, nil
}

// checkWorkers validates a maxWorkers argument.
func checkWorkers(n int) error {
	if n < 1 {
		return fmt.Errorf("pool: maxWorkers = %d: must be >= 1", n)
	}
	return nil
}
