// Package sub is the SUB (subscriber) side of PUB/SUB, version 0.
//
// A subscriber filters locally: a message is kept if its body starts with
// one of the topics subscribed; the empty topic matches everything; with
// no subscription nothing is kept. Nothing is ever sent to the publisher
// (SUB pipes have no send queue, hence no writer goroutine).
//
// Each context (Socket.OpenContext) has its own topics and its own queue
// of SocketConfig.RecvQueueLen messages; the socket's own Recv uses a
// default context, which Subscribe(socket, topic) configures. A message
// matching several contexts is copied to each. A context whose queue is
// full drops its oldest message to make room, counted as a drop on the
// pipe the new message came on; the pipe's reader never waits for a slow
// consumer. Send is ErrNotSupported.
//
// Raw mode (SocketConfig.Raw) keeps every message, has no topics and no
// contexts.
package sub

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/ferrymq/ferry"
)

// Protocol numbers.
const (
	ProtoPub = 0x20
	ProtoSub = 0x21
)

// ErrNotSubscribed is returned by Unsubscribe for a topic that is not
// subscribed.
var ErrNotSubscribed = errors.New("sub: topic not subscribed")

// New opens a SUB socket.
func New(cfg ferry.SocketConfig) (*ferry.Socket, error) {
	return ferry.NewSocket(&sock{}, cfg)
}

// Target is a SUB socket (*ferry.Socket, for its default context) or a
// context opened on one (*ferry.Context).
type Target interface{ Proto() any }

// Subscribe adds topic (copied) to t's subscriptions: t then keeps the
// messages whose body starts with topic. The empty topic matches every
// message. Subscribing twice to a topic is the same as once. It fails with
// ErrNotSupported if t is not a cooked SUB socket or context, ErrClosed if
// t is closed.
func Subscribe(t Target, topic []byte) error {
	c, err := ctxOf(t)
	if err != nil {
		return err
	}
	return c.subscribe(topic)
}

// Unsubscribe removes topic from t's subscriptions; messages already
// queued stay. It fails with ErrNotSubscribed if topic was not subscribed.
func Unsubscribe(t Target, topic []byte) error {
	c, err := ctxOf(t)
	if err != nil {
		return err
	}
	return c.unsubscribe(topic)
}

func ctxOf(t Target) (*sctx, error) {
	switch v := t.Proto().(type) {
	case *sock:
		if v.raw {
			return nil, ferry.ErrNotSupported
		}
		return v.def, nil
	case *sctx:
		return v, nil
	}
	return nil, ferry.ErrNotSupported
}

type sock struct {
	s    *ferry.Socket
	raw  bool
	qlen int
	def  *sctx

	// mu guards ctxs and closed. Receive holds it shared while it
	// delivers, so once a context's Close has taken it exclusively, no
	// message can reach that context's queue any more.
	mu     sync.RWMutex
	ctxs   []*sctx
	closed bool
}

// sctx is a context: its topics and its queue.
type sctx struct {
	k      *sock
	q      chan *ferry.Msg
	topics atomic.Pointer[[][]byte] // replaced whole under mu; read without it
	mu     sync.Mutex               // serialises changes to topics and closed
	closed bool
	done   chan struct{} // closed by Close
}

func (k *sock) Info() ferry.ProtocolInfo {
	return ferry.ProtocolInfo{Self: ProtoSub, Peer: ProtoPub, SelfName: "sub", PeerName: "pub"}
}

func (k *sock) Init(s *ferry.Socket) {
	cfg := s.Config()
	k.s, k.raw, k.qlen = s, cfg.Raw, cfg.RecvQueueLen
	k.def = k.newCtx()
	k.ctxs = []*sctx{k.def}
}

func (k *sock) newCtx() *sctx {
	return &sctx{k: k, q: make(chan *ferry.Msg, k.qlen), done: make(chan struct{})}
}

func (k *sock) OpenContext() (ferry.ProtoContext, error) {
	if k.raw {
		return nil, ferry.ErrNotSupported
	}
	c := k.newCtx()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil, ferry.ErrClosed
	}
	k.ctxs = append(k.ctxs, c)
	return c, nil
}

// AddPipe gives the pipe no send queue: a subscriber never sends.
func (k *sock) AddPipe(*ferry.Pipe) error { return nil }
func (k *sock) RemovePipe(*ferry.Pipe)    {}

// Receive hands m to every context it matches (a copy each but the last)
// without waiting.
func (k *sock) Receive(p *ferry.Pipe, m *ferry.Msg) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	var last *sctx
	for _, c := range k.ctxs {
		if !k.raw && !c.matches(m.Body) {
			continue
		}
		if last != nil {
			last.put(p, ferry.CopyMsg(m))
		}
		last = c
	}
	if last == nil {
		ferry.RecycleMsg(m)
		return
	}
	last.put(p, m)
}

func (k *sock) Send(context.Context, *ferry.Msg) error       { return ferry.ErrNotSupported }
func (k *sock) Recv(ctx context.Context) (*ferry.Msg, error) { return k.def.Recv(ctx) }

func (k *sock) Close() {
	k.mu.Lock()
	k.closed = true
	ctxs := slices.Clone(k.ctxs) // a context's Close deletes from k.ctxs in place
	k.mu.Unlock()
	for _, c := range ctxs {
		c.drain()
	}
}

// matches reports whether body starts with one of c's topics.
func (c *sctx) matches(body []byte) bool {
	t := c.topics.Load()
	if t == nil {
		return false
	}
	for _, topic := range *t {
		if bytes.HasPrefix(body, topic) {
			return true
		}
	}
	return false
}

// put queues m, dropping the oldest queued message while the queue is
// full. Each round either queues m or takes one out, so it ends even
// while receivers race it.
func (c *sctx) put(p *ferry.Pipe, m *ferry.Msg) {
	for {
		select {
		case c.q <- m:
			return
		default:
		}
		select {
		case old := <-c.q:
			ferry.RecycleMsg(old)
			p.CountDrop()
		default:
		}
		// Full: the receiver is behind. Yield so that it can run (it may
		// be waiting on this very processor); dropping never blocks, so
		// without this a busy pipe reader starves it until preemption.
		runtime.Gosched()
	}
}

func (c *sctx) subscribe(topic []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ferry.ErrClosed
	}
	var old [][]byte
	if t := c.topics.Load(); t != nil {
		old = *t
	}
	if slices.ContainsFunc(old, func(t []byte) bool { return bytes.Equal(t, topic) }) {
		return nil
	}
	nt := append(slices.Clip(old), bytes.Clone(topic)) // a new array: readers keep the old one
	if nt[len(nt)-1] == nil {
		nt[len(nt)-1] = []byte{}
	}
	c.topics.Store(&nt)
	return nil
}

func (c *sctx) unsubscribe(topic []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ferry.ErrClosed
	}
	var old [][]byte
	if t := c.topics.Load(); t != nil {
		old = *t
	}
	i := slices.IndexFunc(old, func(t []byte) bool { return bytes.Equal(t, topic) })
	if i < 0 {
		return ErrNotSubscribed
	}
	nt := slices.Delete(slices.Clone(old), i, i+1)
	c.topics.Store(&nt)
	return nil
}

func (c *sctx) Send(context.Context, *ferry.Msg) error { return ferry.ErrNotSupported }

func (c *sctx) Recv(ctx context.Context) (*ferry.Msg, error) {
	select {
	case m := <-c.q:
		return m, nil
	default:
	}
	select {
	case m := <-c.q:
		return m, nil
	case <-ctx.Done():
		return nil, ferry.CtxErr(ctx)
	case <-c.done:
		return nil, ferry.ErrClosed
	case <-c.k.s.Closed():
		return nil, ferry.ErrClosed
	}
}

// Close removes the context from its socket and frees what it queued.
func (c *sctx) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	close(c.done)
	c.mu.Unlock()
	k := c.k
	k.mu.Lock()
	if i := slices.Index(k.ctxs, c); i >= 0 {
		k.ctxs = slices.Delete(k.ctxs, i, i+1)
	}
	k.mu.Unlock()
	c.drain()
}

func (c *sctx) drain() {
	for {
		select {
		case m := <-c.q:
			ferry.RecycleMsg(m)
		default:
			return
		}
	}
}
