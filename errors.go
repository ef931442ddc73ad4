package ferry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
)

// sentinel is an error value that also matches the standard errors it
// stands for, so callers can test with either.
type sentinel struct {
	msg     string
	wraps   []error
	timeout bool
}

func (e *sentinel) Error() string   { return e.msg }
func (e *sentinel) Unwrap() []error { return e.wraps }

// Timeout reports whether the error is a timeout, as net.Error does.
func (e *sentinel) Timeout() bool { return e.timeout }

// Temporary is false: nothing here heals by retrying the same call.
func (e *sentinel) Temporary() bool { return false }

// The errors ferry returns. Test for them with errors.Is.
var (
	// ErrClosed: the socket, context, dialer or listener is closed. It
	// matches net.ErrClosed.
	ErrClosed error = &sentinel{msg: "ferry: closed", wraps: []error{net.ErrClosed}}
	// ErrTimeout: a deadline passed. It matches os.ErrDeadlineExceeded
	// and context.DeadlineExceeded.
	ErrTimeout error = &sentinel{msg: "ferry: timed out", wraps: []error{os.ErrDeadlineExceeded, context.DeadlineExceeded}, timeout: true}
	// ErrCanceled: the caller's context was canceled. It matches
	// context.Canceled.
	ErrCanceled error = &sentinel{msg: "ferry: canceled", wraps: []error{context.Canceled}}
	// ErrState: the operation is not valid in the current protocol state
	// (a REP reply with no request pending, a send of a freed message).
	ErrState error = &sentinel{msg: "ferry: operation not valid in this state"}
	// ErrProtocol: a peer broke the SP protocol. The pipe it came on is
	// closed; the socket goes on.
	ErrProtocol error = &sentinel{msg: "ferry: protocol error"}
	// ErrMsgSize: a message is larger than the receive limit.
	ErrMsgSize error = &sentinel{msg: "ferry: message too large"}
	// ErrBadOption: a configuration value is out of range. The error is an
	// *OptionError naming the field.
	ErrBadOption error = &sentinel{msg: "ferry: invalid option"}
	// ErrBadAddr: a URL is malformed or names an unknown scheme.
	ErrBadAddr error = &sentinel{msg: "ferry: invalid address"}
	// ErrNotSupported: the protocol does not offer the operation (Send on
	// a SUB socket, contexts on PAIR).
	ErrNotSupported error = &sentinel{msg: "ferry: not supported by this protocol"}
	// ErrPeerRefused: the protocol refused a new pipe (PAIR already has
	// its peer).
	ErrPeerRefused error = &sentinel{msg: "ferry: peer refused by protocol"}
)

// ctxErr maps a finished context to ferry's errors.
func ctxErr(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ErrTimeout
	}
	return ErrCanceled
}

// CtxErr is ctxErr for protocol packages.
func CtxErr(ctx context.Context) error { return ctxErr(ctx) }

// OptionError reports a configuration field whose value is out of range.
type OptionError struct {
	Field string // for example "SocketConfig.MaxTTL"
	Value any    // the value given
	Range string // the values allowed, for example "1..15"
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("ferry: %s = %v: must be %s", e.Field, e.Value, e.Range)
}

// Is makes an OptionError match ErrBadOption.
func (e *OptionError) Is(target error) bool { return target == ErrBadOption }

var osErrDeadline = os.ErrDeadlineExceeded
