package pool

import (
	"errors"
	"fmt"
)

// The errors the pool returns. Test for them with errors.Is: the pool
// may wrap them with more detail (the cause of a stop, a panic's value).
var (
	// ErrStopped: the pool is stopped (Stop, StopAndWait, or its
	// Config.Context ended) and takes no new tasks. Submitters blocked
	// on a full bounded queue when the pool stops get it too, and so do
	// queued tasks discarded because Config.Context ended; the error
	// then also matches the context's cause.
	ErrStopped = errors.New("pool: stopped")

	// ErrQueueFull: the bounded queue (Config.QueueSize) is full and the
	// submission could not wait, because it was a TrySubmit or the pool
	// is Config.NonBlocking.
	ErrQueueFull = errors.New("pool: queue full")

	// ErrPanic: a task panicked (or called runtime.Goexit). The error is
	// a *PanicError carrying the value and the stack.
	ErrPanic = errors.New("pool: task panicked")
)

// PanicError is the error of a task that panicked. It matches ErrPanic
// and, if the panic value was an error, that error too.
type PanicError struct {
	// Value is what the task passed to panic, or nil if it called
	// runtime.Goexit.
	Value any
	// Stack is the panicking goroutine's stack, as runtime/debug.Stack
	// formats it.
	Stack []byte
}

// Error returns the panic value and the stack.
func (e *PanicError) Error() string {
	if e.Value == nil {
		return fmt.Sprintf("pool: task called runtime.Goexit\n%s", e.Stack)
	}
	return fmt.Sprintf("pool: task panicked: %v\n%s", e.Value, e.Stack)
}

// Unwrap returns ErrPanic and, if the panic value is an error, it.
func (e *PanicError) Unwrap() []error {
	if err, ok := e.Value.(error); ok {
		return []error{ErrPanic, err}
	}
	return []error{ErrPanic}
}
