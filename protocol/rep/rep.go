// Package rep is the REP (reply) side of REQ/REP, version 0.
//
// A request's header is a backtrace: 32-bit words read from the front of
// the payload up to and including the first with the high bit set (the
// request id); the others are pipe ids pushed by devices. More than
// SocketConfig.MaxTTL words: the request is dropped and counted, the pipe
// stays open. A payload that ends before the id: the pipe is closed.
//
// The caller sees the body only. A context keeps the backtrace and pipe of
// the request it received last; Send replies with that backtrace on that
// pipe. Send with no request pending is ErrState; a reply whose pipe has
// gone is dropped quietly (and counted).
package rep

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"

	"github.com/ferrymq/ferry"
)

// Protocol numbers.
const (
	ProtoReq = 0x30
	ProtoRep = 0x31
)

// New opens a REP socket.
func New(cfg ferry.SocketConfig) (*ferry.Socket, error) {
	return ferry.NewSocket(&sock{}, cfg)
}

type sock struct {
	s      *ferry.Socket
	maxTTL int
	qlen   int
	recvq  chan *ferry.Msg
	def    *pctx
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
}

func (k *sock) Info() ferry.ProtocolInfo {
	return ferry.ProtocolInfo{Self: ProtoRep, Peer: ProtoReq, SelfName: "rep", PeerName: "req"}
}

func (k *sock) Init(s *ferry.Socket) {
	cfg := s.Config()
	k.s = s
	k.maxTTL = cfg.MaxTTL
	k.qlen = cfg.SendQueueLen
	k.recvq = make(chan *ferry.Msg, cfg.RecvQueueLen)
	k.def = k.newCtx()
}

func (k *sock) newCtx() *pctx { return &pctx{sk: k, closedc: make(chan struct{})} }

func (k *sock) OpenContext() (ferry.ProtoContext, error) { return k.newCtx(), nil }

// AddPipe gives each pipe its own queue: replies go back on the pipe their
// request came from.
func (k *sock) AddPipe(p *ferry.Pipe) error {
	q := make(chan *ferry.Msg, k.qlen)
	p.ProtoData = q
	p.SetSendQueue(q)
	return nil
}

// RemovePipe drops the replies still queued for p.
func (k *sock) RemovePipe(p *ferry.Pipe) {
	q := p.ProtoData.(chan *ferry.Msg)
	for len(q) > 0 {
		k.s.DiscardSent(<-q)
	}
}

func (k *sock) Receive(p *ferry.Pipe, m *ferry.Msg) {
	n, err := Backtrace(m.Body, k.maxTTL)
	switch {
	case errors.Is(err, errNoID):
		ferry.RecycleMsg(m)
		p.ProtocolError(err)
		return
	case err != nil:
		ferry.RecycleMsg(m)
		p.CountDrop()
		return
	}
	m.Header, m.Body = m.Body[:n], m.Body[n:]
	select {
	case k.recvq <- m:
	case <-p.Closing():
		ferry.RecycleMsg(m)
	case <-k.s.Closed():
		ferry.RecycleMsg(m)
	}
}

var (
	errNoID    = errors.New("rep: request ends before its id")
	errTooDeep = errors.New("rep: backtrace longer than MaxTTL")
)

// Backtrace returns the length in bytes of the backtrace at the front of
// b: words up to and including the first with the high bit set. It fails
// if b ends first, or if there are more than maxTTL words.
func Backtrace(b []byte, maxTTL int) (int, error) {
	for i := 0; ; i += 4 {
		if len(b) < i+4 {
			return 0, errNoID
		}
		if i/4 >= maxTTL {
			return 0, errTooDeep
		}
		if binary.BigEndian.Uint32(b[i:])&0x80000000 != 0 {
			return i + 4, nil
		}
	}
}

func (k *sock) Send(ctx context.Context, m *ferry.Msg) error { return k.def.Send(ctx, m) }

func (k *sock) Recv(ctx context.Context) (*ferry.Msg, error) { return k.def.Recv(ctx) }

func (k *sock) Close() {
	for len(k.recvq) > 0 {
		ferry.RecycleMsg(<-k.recvq)
	}
}

func (c *pctx) Recv(ctx context.Context) (*ferry.Msg, error) {
	k := c.sk
	var m *ferry.Msg
	select {
	case m = <-k.recvq:
	default:
		select {
		case m = <-k.recvq:
		case <-ctx.Done():
			return nil, ferry.CtxErr(ctx)
		case <-c.closedc:
			return nil, ferry.ErrClosed
		case <-k.s.Closed():
			return nil, ferry.ErrClosed
		}
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		ferry.RecycleMsg(m)
		return nil, ferry.ErrClosed
	}
	c.btLen = copy(c.bt[:], m.Header)
	c.pipe = m.Pipe()
	c.mu.Unlock()
	m.Header = m.Header[:0]
	return m, nil
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

	q := p.ProtoData.(chan *ferry.Msg)
	select {
	case <-p.Closing():
		c.sk.s.DiscardSent(m) // the requester is gone: drop quietly
		return nil
	default:
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
		c.restore(p)
		m.Header = m.Header[:0]
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

func (c *pctx) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		c.pipe = nil
		close(c.closedc)
	}
}
