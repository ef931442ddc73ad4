// Package req is the REQ (request) side of REQ/REP, version 0.
//
// Each request carries a 32-bit id with the high bit set; ids start at a
// random point. A context has at most one request outstanding: a new Send
// cancels the old one (a Recv waiting for it fails with ErrCanceled, a
// late reply to it is dropped and counted). Recv with no request
// outstanding is ErrState. A request is sent again, with the same id,
// after SocketConfig.ResendTime (60 s by default) and at once when the
// pipe that carried it closes. Requests wait in one socket queue; each
// pipe's writer takes what it is ready to send, so they spread over the
// pipes that are keeping up. A reply shorter than 4 bytes closes its pipe;
// a reply with an unknown id is dropped and counted.
//
// All resends of a socket run off one timer; contexts have no goroutine
// and no timer of their own.
//
// Raw (SocketConfig.Raw, for devices): Send takes the header (backtrace
// and request id) from the caller and sends the message as it is, with
// no tracking and no resends; Recv hands over replies with their
// backtrace in Header. Raw sockets have no contexts.
package req

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/backtrace"
	"github.com/ferrymq/ferry/internal/clock"
	"github.com/ferrymq/ferry/internal/deadline"
)

// Protocol numbers.
const (
	ProtoReq = 0x30
	ProtoRep = 0x31
)

// New opens a REQ socket.
func New(cfg ferry.SocketConfig) (*ferry.Socket, error) {
	return ferry.NewSocket(&sock{}, cfg)
}

type sock struct {
	s          *ferry.Socket
	resendTime time.Duration
	sendq      chan *ferry.Msg
	pipes      []*ferry.Pipe // for direct writes, picked in turn; under mu
	rr         int
	raw        bool
	maxTTL     int
	rawq       chan *ferry.Msg // raw mode: received replies

	mu      sync.Mutex // guards everything below and every rctx's fields
	nextID  uint32
	reqs    map[uint32]*rctx      // outstanding requests by id
	resends deadline.Queue[*rctx] // outstanding requests by next resend time
	closed  bool
	def     *rctx
	// opened contexts, closed by Closing (with def); weak, so that one
	// its user dropped without closing is still collected (see listCtx)
	ctxs map[weak.Pointer[rctx]]struct{}
}

// rctx is one context's state. Its fields are guarded by sock.mu.
type rctx struct {
	sk            *sock
	id            uint32       // outstanding request id, 0 if none
	req           *ferry.Msg   // the request, kept for resends (library-owned)
	pipe          *ferry.Pipe  // pipe that took the latest copy; nil while queued
	deadline.Item              // next resend, when queued in sk.resends
	waiting       atomic.Int32 // Recv calls waiting
	replies       chan reply   // capacity 1: the reply, a cancellation, or the close
	closedc       chan struct{}
	wp            weak.Pointer[rctx] // its key in sk.ctxs, if listed
	cleanup       runtime.Cleanup    // unlists it if collected unclosed
	closed        bool
}

type reply struct {
	m   *ferry.Msg
	err error
}

func (k *sock) Info() ferry.ProtocolInfo {
	return ferry.ProtocolInfo{Self: ProtoReq, Peer: ProtoRep, SelfName: "req", PeerName: "rep"}
}

func (k *sock) Init(s *ferry.Socket) {
	cfg := s.Config()
	k.s = s
	k.resendTime = cfg.ResendTime
	k.sendq = make(chan *ferry.Msg, cfg.SendQueueLen)
	k.raw, k.maxTTL = cfg.Raw, cfg.MaxTTL
	if k.raw {
		k.rawq = make(chan *ferry.Msg, cfg.RecvQueueLen)
	}
	k.reqs = make(map[uint32]*rctx)
	k.ctxs = make(map[weak.Pointer[rctx]]struct{})
	k.nextID = rand.Uint32()
	k.resends.Init(k.fire)
	k.def = k.newCtx() // as long-lived as k: not listed, Closing closes it
}

func (k *sock) newCtx() *rctx {
	return &rctx{sk: k, replies: make(chan reply, 1), closedc: make(chan struct{})}
}

// listCtx lists an opened context for Closing. k.mu must be held. The
// list holds it weakly and a cleanup unlists it if its user drops it
// unclosed; the cleanup (k.forget, k) must not reach c, and k holds c
// only while a request of c's is outstanding (reqs, resends).
func (k *sock) listCtx(c *rctx) *rctx {
	c.wp = weak.Make(c)
	k.ctxs[c.wp] = struct{}{}
	c.cleanup = runtime.AddCleanup(c, k.forget, c.wp)
	return c
}

// forget unlists a context collected without being closed.
func (k *sock) forget(wp weak.Pointer[rctx]) {
	k.mu.Lock()
	delete(k.ctxs, wp)
	k.mu.Unlock()
}

// Closing closes every context as the socket closes: their Recv waits on
// replies alone (ferry.ClosingProtocol).
func (k *sock) Closing() {
	k.mu.Lock()
	for wp := range k.ctxs {
		if c := wp.Value(); c != nil {
			c.closeLocked()
		}
	}
	k.def.closeLocked()
	k.mu.Unlock()
	k.s.InterruptInline() // a Recv may be reading
}

func (k *sock) OpenContext() (ferry.ProtoContext, error) {
	if k.raw {
		return nil, ferry.ErrNotSupported
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil, ferry.ErrClosed
	}
	return k.listCtx(k.newCtx()), nil
}

func (k *sock) AddPipe(p *ferry.Pipe) error {
	p.SetSendQueue(k.sendq)
	if !k.raw {
		p.SetSendHook(k.carried)
	}
	k.mu.Lock()
	k.pipes = append(k.pipes, p)
	k.mu.Unlock()
	return nil
}

// nextPipe picks the pipe a request may be written on directly, in turn.
// k.mu must be held.
func (k *sock) nextPipe() *ferry.Pipe {
	if len(k.pipes) == 0 {
		return nil
	}
	k.rr = (k.rr + 1) % len(k.pipes)
	return k.pipes[k.rr]
}

// carried records which pipe took each request, for resending when it
// dies. It runs on the pipe's writer.
func (k *sock) carried(p *ferry.Pipe, batch []*ferry.Msg) {
	k.mu.Lock()
	for _, m := range batch {
		if len(m.Header) == 4 {
			if c := k.reqs[binary.BigEndian.Uint32(m.Header)]; c != nil {
				c.pipe = p
			}
		}
	}
	k.mu.Unlock()
}

// RemovePipe resends at once every request the pipe carried.
func (k *sock) RemovePipe(p *ferry.Pipe) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if i := slices.Index(k.pipes, p); i >= 0 {
		k.pipes = slices.Delete(k.pipes, i, i+1)
	}
	now := clock.Now()
	for _, c := range k.reqs {
		if c.pipe == p && c.req != nil {
			c.pipe = nil
			k.resends.Set(c, now)
		}
	}
	k.resends.Arm(now)
}

func (k *sock) Receive(p *ferry.Pipe, m *ferry.Msg) {
	if k.raw {
		k.receiveRaw(p, m)
		return
	}
	id, ok := m.TrimBodyU32()
	if !ok {
		ferry.RecycleMsg(m)
		p.ProtocolError(errors.New("req: reply shorter than 4 bytes"))
		return
	}
	k.mu.Lock()
	c := k.reqs[id]
	if c == nil {
		k.mu.Unlock()
		ferry.RecycleMsg(m) // late, duplicate or unknown
		p.CountDrop()
		return
	}
	c.finish()
	c.replies <- reply{m: m} // never blocks: finish emptied it
	k.mu.Unlock()
}

func (k *sock) receiveRaw(p *ferry.Pipe, m *ferry.Msg) {
	n, err := backtrace.Len(m.Body, k.maxTTL)
	if err != nil {
		ferry.RecycleMsg(m)
		if errors.Is(err, backtrace.ErrNoID) {
			p.ProtocolError(err)
		} else {
			p.CountDrop()
		}
		return
	}
	m.Header, m.Body = m.Body[:n], m.Body[n:]
	ferry.Deliver(p, k.rawq, m)
}

func (k *sock) Send(ctx context.Context, m *ferry.Msg) error {
	if k.raw {
		if len(m.Header) < 4 {
			return fmt.Errorf("%w: raw request needs a backtrace header", ferry.ErrState)
		}
		return enqueue(ctx, k, k.def, m)
	}
	return k.def.Send(ctx, m)
}

func (k *sock) Recv(ctx context.Context) (*ferry.Msg, error) {
	if k.raw {
		return ferry.Take(ctx, k.s, k.rawq, nil)
	}
	return k.def.Recv(ctx)
}

func (k *sock) Close() {
	k.mu.Lock()
	k.closed = true
	k.resends.Stop()
	for _, c := range k.reqs {
		c.finish()
	}
	k.mu.Unlock()
	for _, q := range []chan *ferry.Msg{k.sendq, k.rawq} {
		ferry.DrainQueue(q, ferry.RecycleMsg)
	}
}

// newID returns an unused request id. k.mu must be held.
func (k *sock) newID() uint32 {
	for {
		k.nextID++
		id := k.nextID | 0x80000000
		if k.reqs[id] == nil {
			return id
		}
	}
}

// fire resends every request that is due.
func (k *sock) fire() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return
	}
	now := clock.Now()
	for {
		c, ok := k.resends.First()
		if !ok || c.At.After(now) {
			break
		}
		cp := ferry.CopyMsg(c.req)
		select {
		case k.sendq <- cp:
			k.s.CountQueued(1)
			c.pipe = nil
			if k.resendTime <= 0 { // timer resends are off; pipe loss still resends
				k.resends.Remove(c)
				continue
			}
			k.resends.Set(c, now.Add(k.resendTime))
		default: // queue full: try again shortly
			ferry.RecycleMsg(cp)
			k.resends.Set(c, now.Add(10*time.Millisecond))
		}
	}
	k.resends.Arm(now)
}

// finish ends c's outstanding request, if any: forgets the id, drops the
// kept copy, and empties replies. k.mu must be held.
func (c *rctx) finish() {
	k := c.sk
	if c.id != 0 {
		delete(k.reqs, c.id)
		c.id = 0
	}
	k.resends.Remove(c)
	if c.req != nil {
		ferry.RecycleMsg(c.req)
		c.req = nil
	}
	c.pipe = nil
	select {
	case r := <-c.replies:
		if r.m != nil {
			ferry.RecycleMsg(r.m)
		}
	default:
	}
}

func (c *rctx) Send(ctx context.Context, m *ferry.Msg) error {
	k := c.sk
	k.mu.Lock()
	if c.closed || k.closed {
		k.mu.Unlock()
		return ferry.ErrClosed
	}
	c.finish()
	if c.waiting.Load() > 0 {
		c.replies <- reply{err: ferry.ErrCanceled} // the old request's Recv
		k.s.InterruptInline()                      // which may be reading
	}
	id := k.newID()
	m.Header = m.Header[:0]
	m.AppendHeaderU32(id)
	// The id is registered now (a reply may beat us back here), but m is
	// kept only once queued: until then it is the caller's if Send fails,
	// and nothing else may free it.
	c.id = id
	k.reqs[id] = c
	pp := k.nextPipe()
	var cp *ferry.Msg
	if pp != nil {
		cp = ferry.ShareMsg(m, pp) // a large body is shared with the kept m, not copied
	} else {
		cp = ferry.CopyMsg(m)
	}
	k.mu.Unlock()

	var err error
	var sent time.Time
	if pp != nil && pp.SendDirect(cp) {
		sent = pp.DirectAt()
	} else {
		err = enqueue(ctx, k, c, cp)
	}

	k.mu.Lock()
	defer k.mu.Unlock()
	if err != nil {
		ferry.RecycleMsg(cp)
		if c.id == id {
			delete(k.reqs, id)
			c.id, c.pipe = 0, nil
		}
		m.Header = m.Header[:0]
		return err
	}
	if c.id != id { // answered, cancelled or closed meanwhile: m is ours and done
		ferry.RecycleMsg(m)
		return nil
	}
	c.req = m
	if k.resendTime > 0 {
		now := sent
		if now.IsZero() {
			now = clock.Now()
		}
		k.resends.Set(c, now.Add(k.resendTime))
		if first, _ := k.resends.First(); first == c {
			k.resends.Arm(now)
		}
	}
	return nil
}

func enqueue(ctx context.Context, k *sock, c *rctx, m *ferry.Msg) error {
	select {
	case k.sendq <- m:
		return nil
	default:
	}
	select {
	case k.sendq <- m:
		return nil
	case <-ctx.Done():
		return ferry.CtxErr(ctx)
	case <-c.closedc:
		return ferry.ErrClosed
	case <-k.s.Closed():
		return ferry.ErrClosed
	}
}

func (c *rctx) Recv(ctx context.Context) (*ferry.Msg, error) {
	k := c.sk
	k.mu.Lock()
	if c.closed {
		k.mu.Unlock()
		return nil, ferry.ErrClosed
	}
	if c.id == 0 && len(c.replies) == 0 {
		k.mu.Unlock()
		return nil, ferry.ErrState
	}
	c.waiting.Add(1)
	k.mu.Unlock()
	defer c.waiting.Add(-1)
	for {
		select { // a reply already here wins over a ctx that has also ended
		case r := <-c.replies:
			return c.got(r)
		default:
		}
		// Waits, or reads the reply on this goroutine (inline reads).
		r, ok, err := ferry.RecvWaitOn(ctx, k.s, c.replies, false)
		if err != nil {
			return nil, err
		}
		if ok {
			return c.got(r)
		}
	}
}

// got returns what Recv took from replies. The close stays in replies
// for any other Recv waiting on c.
func (c *rctx) got(r reply) (*ferry.Msg, error) {
	if r == closedReply {
		select {
		case c.replies <- r:
		default:
		}
	}
	return r.m, r.err
}

// closedReply is put in a context's replies when it closes.
var closedReply = reply{err: ferry.ErrClosed}

func (c *rctx) Close() {
	k := c.sk
	k.mu.Lock()
	closed := c.closeLocked()
	k.mu.Unlock()
	if closed {
		k.s.InterruptInline() // its Recv may be reading
	}
}

// closeLocked closes c and reports whether it was open. k.mu must be held.
func (c *rctx) closeLocked() bool {
	if c.closed {
		return false
	}
	c.closed = true
	c.finish()
	c.replies <- closedReply // never blocks: finish emptied it, k.mu is held
	close(c.closedc)
	if c != c.sk.def {
		delete(c.sk.ctxs, c.wp)
		c.cleanup.Stop()
	}
	return true
}

// DeadlineItem makes a context schedulable in the socket's resend queue.
func (c *rctx) DeadlineItem() *deadline.Item { return &c.Item }
