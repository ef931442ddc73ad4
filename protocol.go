package ferry

import "context"

// ProtocolInfo names a protocol and the peer it expects.
type ProtocolInfo struct {
	Self, Peer         uint16 // SP protocol numbers (16*major + minor)
	SelfName, PeerName string // "pair1", "req", ...
}

// Protocol is the state machine behind a socket. Protocol packages
// (protocol/pair, protocol/req ...) implement it; users never call it.
//
// The socket calls AddPipe and RemovePipe from the pipe's own goroutine,
// Receive from the pipe's reader goroutine, and Send and Recv from the
// caller's goroutine. Every method that can wait must return when the
// socket closes (Socket.Closed) or, for Receive, when the pipe closes
// (Pipe.Closing).
type Protocol interface {
	// Info names the protocol.
	Info() ProtocolInfo
	// Init is called once, before anything else, with the socket the
	// protocol serves.
	Init(s *Socket)
	// AddPipe admits a pipe whose handshake succeeded. To send on it, the
	// protocol gives it a queue with Pipe.SetSendQueue before returning.
	// An error refuses the pipe, which is then closed.
	AddPipe(p *Pipe) error
	// RemovePipe is called once for every admitted pipe, after it closed
	// and its writer stopped.
	RemovePipe(p *Pipe)
	// Receive takes ownership of a message that arrived on p. It runs on
	// p's reader or, over inproc, on the sending peer's goroutine (never
	// two at once for one pipe), so it must not wait except in Deliver.
	Receive(p *Pipe, m *Msg)
	// Send takes ownership of m on success only.
	Send(ctx context.Context, m *Msg) error
	// Recv hands over the next message.
	Recv(ctx context.Context) (*Msg, error)
	// Close is called after the socket's goroutines have all stopped, to
	// release whatever the protocol still holds.
	Close()
}

// ClosingProtocol is implemented by protocols whose receivers wait on a
// context's own close channel alone (RecvWait's done), not also on the
// socket's: one channel fewer in every wait. Socket.Close calls Closing as
// soon as the socket is marked closed, before it closes its pipes, and
// Closing must close every context the protocol has (its default one
// too), ending their waits with ErrClosed. It must not wait.
type ClosingProtocol interface {
	Closing()
}

// A QueueWatcher is a protocol whose receivers may wait somewhere other
// than the queue Deliver fills: each idle receiver on a channel of its
// own, which the protocol's Receive hands a message to directly (a plain
// channel receive is the cheapest wait there is). Deliver calls Queued
// after it put a message in q by any path the protocol's Receive did
// not see through (a full queue's wait, or a delivery deferred to a
// pipe's reader), so that the protocol can pass what is in q to
// receivers that went idle meanwhile.
type QueueWatcher interface {
	Queued(q chan<- *Msg)
}

// CopySender is implemented by protocols that can send a small message by
// copying it into a pipe's copy buffer (Pipe.SendCopy) when that keeps
// order and waits for nothing. Socket.Send and SendBytes (not contexts)
// try it first for messages of at most CopySendMax bytes and fall back to
// Send when it reports false. PAIR and PUSH implement it.
type CopySender interface {
	// SendCopy sends a copy of a message with header hdr and body body
	// (the protocol may write its own header instead, as cooked PAIR1
	// does) and reports whether it did. hdr and body stay the caller's.
	SendCopy(hdr, body []byte) bool
}

// Proto returns the socket's protocol state, for a protocol package's
// typed helpers (sub.Subscribe asserts it to its own type). Users have no
// need for it: calling its methods bypasses the socket's bookkeeping.
func (s *Socket) Proto() any { return s.proto }

// Deliver queues m, which arrived on p, for the socket's receivers. It
// waits while q is full (holding back the pipe's reader) and frees m if p
// or the socket closes first. For Protocol.Receive.
func Deliver(p *Pipe, q chan<- *Msg, m *Msg) {
	select { // fast path: one channel, no select locking
	case q <- m:
		p.s.queued(q)
		return
	default:
	}
	if p.directIn { // an inproc sender is delivering: it must not wait
		p.ic.deferDelivery(q, m)
		return
	}
	if p.inlineIn { // a receiver reading inline must not wait for itself
		p.deferInline(q, m)
		return
	}
	select {
	case q <- m:
		p.s.queued(q)
	case <-p.closing:
		recycle(m)
	case <-p.s.closed:
		recycle(m)
	}
}

// queued tells a QueueWatcher protocol that Deliver put a message in q.
func (s *Socket) queued(q chan<- *Msg) {
	if s.qwatch != nil {
		s.qwatch.Queued(q)
	}
}

// DrainQueue hands every message left in q to f, never waiting: a Recv
// racing the drain may take some first, and the drain must not then block
// (that was a Close that hung forever). For Protocol.Close and RemovePipe.
func DrainQueue(q chan *Msg, f func(*Msg)) {
	for {
		select {
		case m := <-q:
			if m != nil { // a CopyQueue's kick (kickPlain)
				f(m)
			}
		default:
			return
		}
	}
}

// Take returns the next message from q. A message already queued wins over
// a ctx that has ended. It fails with ErrClosed when the socket closes or
// done (a context's own close; nil for none) is closed. For Protocol.Recv.
func Take(ctx context.Context, s *Socket, q <-chan *Msg, done <-chan struct{}) (*Msg, error) {
	select {
	case m := <-q:
		return m, nil
	default:
	}
	select {
	case m := <-q:
		return m, nil
	case <-ctx.Done():
		return nil, ctxErr(ctx)
	case <-done:
		return nil, ErrClosed
	case <-s.closed:
		return nil, ErrClosed
	}
}
