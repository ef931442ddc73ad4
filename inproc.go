package ferry

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ferrymq/ferry/internal/wire"
)

// inproc:// passes messages between sockets of one process by reference:
// the sender's Msg struct itself reaches the receiver, nothing is
// serialised. It lives in the core because it moves *Msg values.

var inprocNames = struct {
	sync.Mutex
	m map[string]*inprocListener
}{m: make(map[string]*inprocListener)}

func inprocName(u *url.URL) string {
	return u.Host + u.Path + u.Opaque
}

type inprocListener struct {
	name      string
	conns     chan *inprocConn // unbuffered: a dial completes when accepted
	closed    chan struct{}
	closeOnce sync.Once
}

func (l *inprocListener) listen() error {
	inprocNames.Lock()
	defer inprocNames.Unlock()
	if _, dup := inprocNames.m[l.name]; dup {
		return fmt.Errorf("inproc://%s: %w", l.name, syscall.EADDRINUSE)
	}
	l.conns = make(chan *inprocConn)
	l.closed = make(chan struct{})
	inprocNames.m[l.name] = l
	return nil
}

func (l *inprocListener) close() {
	l.closeOnce.Do(func() {
		inprocNames.Lock()
		if inprocNames.m[l.name] == l {
			delete(inprocNames.m, l.name)
		}
		inprocNames.Unlock()
		close(l.closed)
	})
}

func (l *inprocListener) accept() (*inprocConn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func inprocDial(ctx context.Context, name string) (*inprocConn, error) {
	inprocNames.Lock()
	l := inprocNames.m[name]
	inprocNames.Unlock()
	if l == nil {
		return nil, fmt.Errorf("inproc://%s: %w", name, syscall.ECONNREFUSED)
	}
	a, b := newInprocPair(name)
	select {
	case l.conns <- b:
		return a, nil
	case <-l.closed:
		return nil, fmt.Errorf("inproc://%s: %w", name, syscall.ECONNREFUSED)
	case <-ctx.Done():
		return nil, ctxErr(ctx)
	}
}

// inprocConn is one end of an in-process pipe.
type inprocConn struct {
	name      string
	dialed    bool
	peer      *inprocConn
	in        chan *Msg   // messages for this end; the peer's writer fills it
	proto     chan uint16 // the peer's protocol number, sent at handshake
	closed    chan struct{}
	closeOnce sync.Once

	// Direct delivery (see deliverNow): the pipe this end belongs to;
	// dmu, held by this end's reader while its protocol takes a message
	// and by a peer's sender delivering straight into that protocol;
	// pending counts messages put in in (or deferred) and not yet taken
	// by the protocol; dead is set under dmu when the reader stops.
	pipe     atomic.Pointer[Pipe]
	dmu      sync.Mutex
	pending  atomic.Int64
	dead     bool
	deferred chan deferredMsg // capacity 1: a direct delivery that found q full
}

// deferredMsg is a message a protocol already took (its header handled)
// whose queue was full during a direct delivery: the reader queues it,
// waiting as usual.
type deferredMsg struct {
	q chan<- *Msg
	m *Msg
}

const inprocDepth = 16

func newInprocPair(name string) (*inprocConn, *inprocConn) {
	mk := func(dialed bool) *inprocConn {
		return &inprocConn{name: name, dialed: dialed,
			in: make(chan *Msg, inprocDepth), proto: make(chan uint16, 1), closed: make(chan struct{}),
			deferred: make(chan deferredMsg, 1)}
	}
	a, b := mk(true), mk(false)
	a.peer, b.peer = b, a
	return a, b
}

func (c *inprocConn) handshake(self uint16, timeout time.Duration) (uint16, error) {
	c.peer.proto <- self // capacity 1, sent once: never blocks
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case p := <-c.proto:
		return p, nil
	case <-c.closed:
		return 0, net.ErrClosed
	case <-c.peer.closed:
		return 0, io.EOF
	case <-t.C:
		return 0, fmt.Errorf("inproc handshake: %w", errDeadline)
	}
}

var errDeadline = &sentinel{msg: "deadline exceeded", wraps: []error{osErrDeadline}}

func (c *inprocConn) recv(max int) (*Msg, error) {
	m, err := c.next()
	if err != nil {
		c.dmu.Lock() // waits out a direct delivery in progress; none follows
		c.dead = true
		c.dmu.Unlock()
		return nil, err
	}
	if n := len(m.Body); n > max {
		recycle(m)
		return nil, &wire.SizeError{Size: uint64(n), Max: uint64(max)}
	}
	return m, nil
}

// next waits for the next message in in, delivering deferred ones
// meanwhile. A deferred message is older than everything in in (a direct
// delivery starts only with nothing pending, and the peer puts nothing in
// in while one runs), so it goes first even when both are ready.
func (c *inprocConn) next() (*Msg, error) {
	for {
		select {
		case m := <-c.in:
			c.deliverDeferred()
			return m, nil
		default:
		}
		select {
		case m := <-c.in:
			c.deliverDeferred()
			return m, nil
		case d := <-c.deferred:
			c.deliver(d)
		case <-c.closed:
			return nil, net.ErrClosed
		case <-c.peer.closed:
			// What the peer sent before closing is still delivered.
			select {
			case m := <-c.in:
				c.deliverDeferred()
				return m, nil
			case d := <-c.deferred:
				recycle(d.m)
				c.pending.Add(-1)
			default:
				return nil, io.EOF
			}
		}
	}
}

// deliverDeferred delivers the deferred message, if there is one.
func (c *inprocConn) deliverDeferred() {
	select {
	case d := <-c.deferred:
		c.deliver(d)
	default:
	}
}

// deliver hands a deferred message to its queue, waiting for room.
func (c *inprocConn) deliver(d deferredMsg) {
	c.dmu.Lock()
	Deliver(c.pipe.Load(), d.q, d.m)
	c.pending.Add(-1)
	c.dmu.Unlock()
}

// received is called by the reader once its protocol took a message from
// in; the reader holds dmu around the protocol's Receive.
func (c *inprocConn) received() {
	c.pending.Add(-1)
}

func (c *inprocConn) send(batch []*Msg) error {
	for i, m := range batch {
		m.joinHeader() // the receiver sees the SP payload as a stream peer would
		m.pipe = nil
		c.peer.pending.Add(1)
		select { // fast path: room in the peer's queue
		case c.peer.in <- m:
			batch[i] = nil
			continue
		default:
		}
		select {
		case c.peer.in <- m:
			batch[i] = nil
		case <-c.closed:
			return net.ErrClosed
		case <-c.peer.closed:
			return syscall.EPIPE
		}
	}
	return nil
}

func (c *inprocConn) close() {
	c.closeOnce.Do(func() {
		close(c.closed)
		// Free what the peer queued for us; anything it adds later is
		// left to the garbage collector.
		for {
			select {
			case m := <-c.in:
				recycle(m)
			default:
				return
			}
		}
	})
}

func (c *inprocConn) closeWrite() {}

// Direct writes: a lone message goes into the peer's queue from the
// sender's goroutine, skipping this pipe's writer. The pipe's write mutex
// and the socket's unsent count (see Pipe.SendDirect) keep it behind
// everything sent before it.
func (c *inprocConn) canDirect() bool          { return true }
func (c *inprocConn) passesMsgs() bool         { return true }
func (c *inprocConn) flushRest() (bool, error) { return false, nil }
func (c *inprocConn) dropRest() bool           { return false }

func (c *inprocConn) writeNow(m *Msg) (ok, partial bool) {
	peer := c.peer
	select {
	case <-peer.closed:
		return false, false
	default:
	}
	if peer.deliverNow(m) {
		return true, false
	}
	// Only this pipe's writer, kept out by the write mutex, and this call
	// put into peer.in; its reader only takes out. So with room now, the
	// send below cannot block, and m is not touched unless it goes.
	if len(peer.in) == cap(peer.in) {
		return false, false
	}
	m.joinHeader()
	m.pipe = nil
	peer.pending.Add(1)
	peer.in <- m
	return true, false
}

// deliverNow hands m straight to the protocol of c's pipe from the
// sender's goroutine, skipping c's reader and one goroutine hand-off, when
// that cannot reorder or block: the pipe is admitted and open, its reader
// is idle (dmu free) and has nothing pending. The sender holds its own
// pipe's write mutex, so nothing else of the peer's enters c.in meanwhile.
// A protocol's Receive waits only in Deliver, which during a direct
// delivery passes a full queue's message to the reader (deferred) instead
// of waiting. The reader, once stopped, takes dmu and marks c dead, so no
// direct delivery runs after the pipe's reader has ended: the socket's
// Close still finds its protocol idle.
func (c *inprocConn) deliverNow(m *Msg) bool {
	p := c.pipe.Load()
	if p == nil || !p.admitted.Load() || c.pending.Load() != 0 || len(m.Header)+len(m.Body) > p.s.cfg.RecvMaxSize {
		return false
	}
	if !c.dmu.TryLock() {
		return false
	}
	defer c.dmu.Unlock()
	if c.dead || c.pending.Load() != 0 || isClosed(p.closing) || isClosed(c.closed) {
		return false
	}
	m.joinHeader()
	m.pipe = p
	p.ctr.msgsIn.Add(1)
	p.ctr.bytesIn.Add(uint64(len(m.Body)))
	p.ctr.directIn.Add(1)
	p.directIn = true
	p.s.proto.Receive(p, m)
	p.directIn = false
	return true
}

// deferDelivery is Deliver's path during a direct delivery whose queue is
// full: the reader delivers m, waiting, before anything later.
func (c *inprocConn) deferDelivery(q chan<- *Msg, m *Msg) {
	c.pending.Add(1)
	c.deferred <- deferredMsg{q, m} // never blocks: pending was 0, so the slot is free
}

func (c *inprocConn) localAddr() string  { return "inproc://" + c.name }
func (c *inprocConn) remoteAddr() string { return "inproc://" + c.name }

// isClosed reports whether ch is closed (it carries no values). One
// channel per check: a select over two with a default locks both, and
// was 6% of an inproc REQ/REP round trip's CPU in deliverNow.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
