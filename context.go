package ferry

import "context"

// ContextProtocol is implemented by protocols that offer contexts
// (REQ, REP, SUB, SURVEYOR, RESPONDENT).
type ContextProtocol interface {
	Protocol
	// OpenContext returns new, independent protocol state. It must not
	// start a goroutine or a timer.
	OpenContext() (ProtoContext, error)
}

// ProtoContext is a protocol's per-context state. Send takes ownership of
// m on success only; Recv hands a message over. Close ends pending calls
// with ErrClosed and releases what the context holds; it is idempotent.
type ProtoContext interface {
	Send(ctx context.Context, m *Msg) error
	Recv(ctx context.Context) (*Msg, error)
	Close()
}

// Context is independent protocol state on a socket: a REQ context has
// its own request id and resend schedule, a REP context the backtrace of
// the request it received. Contexts are cheap (no goroutine and no timer
// each), may be opened and closed at any rate from any goroutine, and are
// safe for concurrent use, though each is meant to carry one conversation
// at a time. Closing a context, or its socket, ends its pending
// operations with ErrClosed. Close every context you open; one dropped
// without Close is collected all the same (REQ, REP and RESPONDENT list
// their open contexts, to close them with the socket, by weak pointer),
// but a REQ context dropped with a request outstanding resends it until
// the socket closes, as an NNG context does until nng_ctx_close.
type Context struct {
	s  *Socket
	pc ProtoContext
}

// OpenContext opens a context, or fails with ErrNotSupported for
// protocols without contexts and ErrClosed on a closed socket.
func (s *Socket) OpenContext() (*Context, error) {
	cp, ok := s.proto.(ContextProtocol)
	if !ok {
		return nil, ErrNotSupported
	}
	select {
	case <-s.closed:
		return nil, ErrClosed
	default:
	}
	pc, err := cp.OpenContext()
	if err != nil {
		return nil, err
	}
	return &Context{s: s, pc: pc}, nil
}

// Send sends m on this context, with the ownership rules of Socket.Send.
func (c *Context) Send(ctx context.Context, m *Msg) error {
	return c.s.send(ctx, m, c.pc.Send)
}

// SendBytes sends a copy of b on this context.
func (c *Context) SendBytes(ctx context.Context, b []byte) error {
	return c.s.sendBytes(ctx, b, c.pc.Send)
}

// Recv receives on this context; the caller owns the message.
func (c *Context) Recv(ctx context.Context) (*Msg, error) {
	return c.s.recv(ctx, c.pc.Recv)
}

// RecvMsg receives into m, as Socket.RecvMsg.
func (c *Context) RecvMsg(ctx context.Context, m *Msg) error {
	return c.s.recvMsg(ctx, m, c.pc.Recv)
}

// RecvBytes receives and appends the body to dst, as Socket.RecvBytes.
func (c *Context) RecvBytes(ctx context.Context, dst []byte) ([]byte, error) {
	return c.s.recvBytes(ctx, dst, c.pc.Recv)
}

// Proto returns the context's protocol state, for a protocol package's
// typed helpers (sub.Subscribe on a context). Users have no need for it.
func (c *Context) Proto() any { return c.pc }

// Close closes the context: pending calls on it return ErrClosed and an
// unsent message stays with its caller. It is idempotent.
func (c *Context) Close() error {
	c.pc.Close()
	return nil
}

// Request sends body on a fresh context and waits for the answer (a REQ
// reply, a SURVEYOR's first response), then closes the context. The reply
// is a new slice.
func (s *Socket) Request(ctx context.Context, body []byte) ([]byte, error) {
	c, err := s.OpenContext()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.SendBytes(ctx, body); err != nil {
		return nil, err
	}
	return c.RecvBytes(ctx, nil)
}
