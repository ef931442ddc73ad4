// Package replier is the replying side shared by REP and RESPONDENT:
// they differ only in their protocol numbers.
//
// A request's header is a backtrace (see internal/backtrace). More than
// SocketConfig.MaxTTL words: the request is dropped and counted, the pipe
// stays open. A payload that ends before the id: the pipe is closed.
//
// Cooked: the caller sees the body only. A context keeps the backtrace and
// pipe of the request it received last; Send replies with that backtrace
// on that pipe. Send with no request pending is ErrState; a reply whose
// pipe has gone is dropped quietly (and counted).
//
// Raw (for devices): Recv hands over Header = [pipe id][backtrace]; Send
// pops the pipe id from the header to choose the pipe and sends the rest
// of the header in front of the body. Raw sockets have no contexts.
package replier

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"weak"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/backtrace"
)

// New returns the protocol for a replier described by info.
func New(info ferry.ProtocolInfo) ferry.Protocol { return &sock{info: info} }

type sock struct {
	info   ferry.ProtocolInfo
	s      *ferry.Socket
	raw    bool
	maxTTL int
	qlen   int
	recvq  chan *ferry.Msg
	def    *pctx

	mu    sync.Mutex             // guards pipes and ctxs
	pipes map[uint32]*ferry.Pipe // by id, for raw sends
	// opened contexts, closed by Closing (with def); weak, so that one
	// its user dropped without closing is still collected (see OpenContext)
	ctxs map[weak.Pointer[pctx]]struct{}

	// Idle receivers: contexts waiting on their inbox (see waitIdle),
	// handed requests last in, first out. Under imu; nidle is len(idle),
	// read without the lock.
	imu   sync.Mutex
	idle  []*pctx
	nidle atomic.Int32
}

// pctx is a context: the backtrace and pipe of its pending request.
type pctx struct {
	sk      *sock
	mu      sync.Mutex // guards the fields below
	bt      [4 * 16]byte
	btLen   int
	pipe    *ferry.Pipe // nil when no request is pending
	closed  bool
	closedc chan struct{}
	wp      weak.Pointer[pctx] // its key in sk.ctxs, if listed
	cleanup runtime.Cleanup    // unlists it if collected unclosed
	// recvc, if set (RecvStop), is what Recv waits on instead of
	// closedc: closed by Close and by the function RecvStop returned.
	recvc       atomic.Pointer[chan struct{}]
	recvStopped bool
	// inbox: a request handed to c while it waits idle, or nil that ends
	// the wait (c stopped or closed). Capacity 1: only an idle c is sent
	// to, and it is taken off the idle list as it is.
	inbox chan *ferry.Msg
	idx   int // c's index in sk.idle, -1 if not idle; under sk.imu
}

func (k *sock) Info() ferry.ProtocolInfo { return k.info }

func (k *sock) Init(s *ferry.Socket) {
	cfg := s.Config()
	k.s = s
	k.raw = cfg.Raw
	k.pipes = make(map[uint32]*ferry.Pipe)
	k.maxTTL = cfg.MaxTTL
	k.qlen = cfg.SendQueueLen
	k.recvq = make(chan *ferry.Msg, cfg.RecvQueueLen)
	k.ctxs = make(map[weak.Pointer[pctx]]struct{})
	k.def = k.newCtx() // as long-lived as k: not listed, Closing closes it
}

func (k *sock) newCtx() *pctx {
	return &pctx{sk: k, closedc: make(chan struct{}), inbox: make(chan *ferry.Msg, 1), idx: -1}
}

// forget unlists a context collected without being closed.
func (k *sock) forget(wp weak.Pointer[pctx]) {
	k.mu.Lock()
	delete(k.ctxs, wp)
	k.mu.Unlock()
}

func (k *sock) OpenContext() (ferry.ProtoContext, error) {
	if k.raw {
		return nil, ferry.ErrNotSupported
	}
	// Listed for Closing, weakly; a cleanup unlists it if its user drops
	// it unclosed. The cleanup (k.forget, k) must not reach c: k holds
	// no opened context.
	c := k.newCtx()
	c.wp = weak.Make(c)
	k.mu.Lock()
	k.ctxs[c.wp] = struct{}{}
	k.mu.Unlock()
	c.cleanup = runtime.AddCleanup(c, k.forget, c.wp)
	return c, nil
}

// Closing closes every context as the socket closes: their Recv waits on
// closedc alone (ferry.ClosingProtocol).
func (k *sock) Closing() {
	k.mu.Lock()
	ctxs := make([]*pctx, 0, len(k.ctxs))
	for wp := range k.ctxs {
		if c := wp.Value(); c != nil {
			ctxs = append(ctxs, c)
		}
	}
	k.mu.Unlock()
	for _, c := range ctxs {
		c.Close()
	}
	k.def.Close()
}

// AddPipe gives each pipe its own queue: replies go back on the pipe their
// request came from.
func (k *sock) AddPipe(p *ferry.Pipe) error {
	q := make(chan *ferry.Msg, k.qlen)
	p.ProtoData = q
	p.SetSendQueue(q)
	k.mu.Lock()
	k.pipes[p.ID()] = p
	k.mu.Unlock()
	return nil
}

// RemovePipe drops the replies still queued for p.
func (k *sock) RemovePipe(p *ferry.Pipe) {
	k.mu.Lock()
	delete(k.pipes, p.ID())
	k.mu.Unlock()
	q := p.ProtoData.(chan *ferry.Msg)
	ferry.DrainQueue(q, k.s.DiscardSent)
}

func (k *sock) Receive(p *ferry.Pipe, m *ferry.Msg) {
	n, err := backtrace.Len(m.Body, k.maxTTL)
	switch {
	case errors.Is(err, backtrace.ErrNoID):
		ferry.RecycleMsg(m)
		p.ProtocolError(err)
		return
	case err != nil:
		ferry.RecycleMsg(m)
		p.CountDrop()
		return
	}
	if k.raw {
		m.Header = m.Header[:0]
		m.AppendHeaderU32(p.ID())
		m.Header = append(m.Header, m.Body[:n]...)
		m.Body = m.Body[n:]
	} else {
		m.Header, m.Body = m.Body[:n], m.Body[n:]
	}
	if k.nidle.Load() > 0 && k.handIdle(m) {
		return
	}
	ferry.Deliver(p, k.recvq, m) // which calls Queued
}

// handIdle hands m to the context that went idle last, if any.
func (k *sock) handIdle(m *ferry.Msg) bool {
	k.imu.Lock()
	defer k.imu.Unlock()
	if len(k.idle) == 0 {
		return false
	}
	k.handLast(m)
	return true
}

// handLast hands m to the last context listed idle. Under imu, with one
// listed.
func (k *sock) handLast(m *ferry.Msg) {
	c := k.idle[len(k.idle)-1]
	k.unlist(c)
	c.inbox <- m // never blocks: an idle c's inbox is empty
}

// Queued passes what Deliver put in the queue to contexts that went idle
// meanwhile (ferry.QueueWatcher). A context lists itself idle only after
// finding the queue empty, and Deliver calls Queued after its put: one
// of the two sees the other.
func (k *sock) Queued(chan<- *ferry.Msg) {
	if k.nidle.Load() == 0 {
		return
	}
	k.imu.Lock()
	defer k.imu.Unlock()
	for len(k.idle) > 0 {
		select {
		case m := <-k.recvq:
			k.handLast(m)
		default:
			return
		}
	}
}

// unlist takes c off the idle list. Under imu.
func (k *sock) unlist(c *pctx) {
	n := len(k.idle) - 1
	last := k.idle[n]
	k.idle[c.idx], last.idx = last, c.idx
	k.idle[n] = nil
	k.idle = k.idle[:n]
	c.idx = -1
	k.nidle.Add(-1)
}

func (k *sock) Send(ctx context.Context, m *ferry.Msg) error {
	if k.raw {
		return k.sendRaw(ctx, m)
	}
	return k.def.Send(ctx, m)
}

// sendRaw routes by the pipe id at the front of the header.
func (k *sock) sendRaw(ctx context.Context, m *ferry.Msg) error {
	if len(m.Header) < 4 {
		return fmt.Errorf("%w: raw reply needs a pipe id header", ferry.ErrState)
	}
	id := binary.BigEndian.Uint32(m.Header)
	k.mu.Lock()
	p := k.pipes[id]
	k.mu.Unlock()
	if p == nil {
		k.s.DiscardSent(m) // its requester has gone
		return nil
	}
	m.Header = m.Header[4:]
	return k.def.toPipe(ctx, p, m, func() {
		m.Header = m.Header[:0]
		m.AppendHeaderU32(id)
	})
}

func (k *sock) Recv(ctx context.Context) (*ferry.Msg, error) { return k.def.Recv(ctx) }

func (k *sock) Close() {
	ferry.DrainQueue(k.recvq, ferry.RecycleMsg)
}

func (c *pctx) Recv(ctx context.Context) (*ferry.Msg, error) {
	k := c.sk
	done := c.closedc
	if rc := c.recvc.Load(); rc != nil {
		done = *rc
	}
	var m *ferry.Msg
	for m == nil {
		select {
		case <-done: // closed or stopped: take no request it would drop
			return nil, ferry.ErrClosed
		default:
		}
		select {
		case m = <-k.recvq:
		default:
			if !k.s.ReadsInline() {
				v, idle, err := c.waitIdle(ctx, done)
				if err != nil {
					return nil, err
				}
				if idle {
					m = v // nil: stopped or closed, which the loop sees
					continue
				}
			}
			// Waits, or reads requests on this goroutine (inline reads).
			v, _, err := ferry.RecvWait(ctx, k.s, k.recvq, done, true)
			if err != nil {
				return nil, err
			}
			m = v
		}
	}
	if k.raw {
		return m, nil // the header goes to the caller
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		if !k.handIdle(m) { // one handed to c as it closed goes on if it can
			ferry.RecycleMsg(m)
		}
		return nil, ferry.ErrClosed
	}
	c.btLen = copy(c.bt[:], m.Header)
	c.pipe = m.Pipe()
	c.mu.Unlock()
	m.Header = m.Header[:0]
	return m, nil
}

// waitIdle is Recv's wait on a socket no receiver reads inline: c lists
// itself idle and waits on its inbox, where Receive hands it the next
// request (with a ctx that cannot end, one plain channel receive: the
// cheapest wait there is; a select over the shared queue and c's close
// cost a channel lock more each way, ~0.3 us of an inproc round trip).
// idle false: c could not wait so (another Recv on c is idle already);
// the caller waits as before. A nil message with idle true: look again
// (a request was queued, or c stopped or closed).
func (c *pctx) waitIdle(ctx context.Context, done <-chan struct{}) (m *ferry.Msg, idle bool, err error) {
	k := c.sk
	k.imu.Lock()
	if c.idx >= 0 {
		k.imu.Unlock()
		return nil, false, nil
	}
	select {
	case <-done: // a stop or close before this lock found c not idle
		k.imu.Unlock()
		return nil, true, ferry.ErrClosed
	default:
	}
	c.idx = len(k.idle)
	k.idle = append(k.idle, c)
	k.nidle.Add(1)
	select { // after listing: a Deliver before it is seen here, one after calls Queued
	case m = <-k.recvq:
		k.unlist(c)
		k.imu.Unlock()
		return m, true, nil
	default:
	}
	k.imu.Unlock()
	if ctx.Done() == nil {
		return <-c.inbox, true, nil
	}
	select {
	case m = <-c.inbox:
		return m, true, nil
	case <-ctx.Done():
	}
	k.imu.Lock()
	if c.idx >= 0 {
		k.unlist(c)
		k.imu.Unlock()
		return nil, true, ferry.CtxErr(ctx)
	}
	k.imu.Unlock()
	// Taken off the list meanwhile: handed a request, which wins over
	// the ctx's end, or told to stop. Either is in the inbox already.
	m = <-c.inbox
	if m == nil {
		return nil, true, ferry.CtxErr(ctx)
	}
	return m, true, nil
}

// wakeIdle ends c's idle wait, if it has one: after c's stop or close.
func (c *pctx) wakeIdle() {
	k := c.sk
	k.imu.Lock()
	if c.idx >= 0 {
		k.unlist(c)
		c.inbox <- nil
	}
	k.imu.Unlock()
}

func (c *pctx) Send(ctx context.Context, m *ferry.Msg) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ferry.ErrClosed
	}
	p := c.pipe
	if p == nil {
		c.mu.Unlock()
		return ferry.ErrState
	}
	c.pipe = nil
	m.SetHeader(c.bt[:c.btLen])
	c.mu.Unlock()
	return c.toPipe(ctx, p, m, func() {
		c.restore(p)
		m.Header = m.Header[:0]
	})
}

// toPipe queues m on p's reply queue. If the caller's ctx ends first,
// undo restores the state the send started from.
func (c *pctx) toPipe(ctx context.Context, p *ferry.Pipe, m *ferry.Msg, undo func()) error {
	q := p.ProtoData.(chan *ferry.Msg)
	select {
	case <-p.Closing():
		c.sk.s.DiscardSent(m) // the requester is gone: drop quietly
		return nil
	default:
	}
	if p.SendDirect(m) {
		return nil
	}
	select {
	case q <- m:
		return nil
	default:
	}
	select {
	case q <- m:
		return nil
	case <-p.Closing():
		c.sk.s.DiscardSent(m)
		return nil
	case <-ctx.Done():
		undo()
		return ferry.CtxErr(ctx)
	case <-c.closedc:
		return ferry.ErrClosed
	case <-c.sk.s.Closed():
		return ferry.ErrClosed
	}
}

// restore makes the request pending again after a reply could not be
// queued, so the caller may retry.
func (c *pctx) restore(p *ferry.Pipe) {
	c.mu.Lock()
	if c.pipe == nil && !c.closed {
		c.pipe = p
	}
	c.mu.Unlock()
}

// RecvStop gives c's Recv a close channel of its own and returns the
// function that closes it: Recv then fails with ErrClosed while Send
// still answers the request taken. Serve uses it to stop its workers
// when its ctx ends, so that they wait on no ctx.Done. Call it before
// any Recv.
func (c *pctx) RecvStop() func() {
	ch := make(chan struct{})
	c.mu.Lock()
	if c.closed {
		c.recvStopped = true
		close(ch)
	}
	c.recvc.Store(&ch)
	c.mu.Unlock()
	return c.stopRecv
}

func (c *pctx) stopRecv() {
	c.mu.Lock()
	c.closeRecvLocked()
	c.mu.Unlock()
	c.wakeIdle()
	c.sk.s.InterruptInline() // its Recv may be reading
}

// closeRecvLocked closes recvc, if set and open. Under mu.
func (c *pctx) closeRecvLocked() {
	if rc := c.recvc.Load(); rc != nil && !c.recvStopped {
		c.recvStopped = true
		close(*rc)
	}
}

func (c *pctx) Close() {
	c.mu.Lock()
	was := c.closed
	if !was {
		c.closed = true
		c.pipe = nil
		close(c.closedc)
		c.closeRecvLocked()
	}
	c.mu.Unlock()
	if was {
		return
	}
	c.wakeIdle()
	k := c.sk
	if c != k.def {
		k.mu.Lock()
		delete(k.ctxs, c.wp)
		k.mu.Unlock()
		c.cleanup.Stop()
	}
	k.s.InterruptInline() // its Recv may be reading
}
