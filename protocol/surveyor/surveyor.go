// Package surveyor is the SURVEYOR side of SURVEYOR/RESPONDENT, version 0.
//
// Send starts a survey: the message goes to every connected respondent
// with a 32-bit survey id (high bit set, random start). Recv returns the
// responses, one per call, until SocketConfig.SurveyTime (1 s by default)
// passes: then responses still queued are dropped, a Recv waiting fails
// with ErrTimeout, and a Recv after that fails with ErrState, as with
// NNG. A new survey on a context cancels the old one (a waiting Recv fails
// with ErrCanceled) and responses to the old one are dropped and counted.
// There are no resends. Each context runs its own surveys; all expiries of
// a socket share one timer.
//
// A respondent whose queue is full when a survey goes out misses that
// survey (counted as a drop). Raw mode (SocketConfig.Raw) sends the
// caller's header as it is and hands responses over with their backtrace
// in Header.
package surveyor

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/backtrace"
	"github.com/ferrymq/ferry/internal/clock"
	"github.com/ferrymq/ferry/internal/deadline"
	"github.com/ferrymq/ferry/internal/fanout"
)

// Protocol numbers.
const (
	ProtoSurveyor   = 0x62
	ProtoRespondent = 0x63
)

// New opens a SURVEYOR socket.
func New(cfg ferry.SocketConfig) (*ferry.Socket, error) {
	return ferry.NewSocket(&sock{}, cfg)
}

// Marks pushed into a context's queue to wake a waiting Recv.
var (
	expiredMark  = new(ferry.Msg)
	canceledMark = new(ferry.Msg)
)

type sock struct {
	s          *ferry.Socket
	surveyTime time.Duration
	raw        bool
	maxTTL     int
	qlen, rlen int
	rawq       chan *ferry.Msg

	out fanout.Set // per-pipe queues; a full one misses the survey

	mu      sync.Mutex // guards the fields below and every sctx's fields
	nextID  uint32
	surveys map[uint32]*sctx
	expiry  deadline.Queue[*sctx] // running surveys by expiry
	closed  bool
	def     *sctx
}

type sctx struct {
	sk            *sock
	id            uint32 // current survey, 0 if none
	deadline.Item        // expiry of the current survey, when queued
	waiting       atomic.Int32
	replies       chan *ferry.Msg
	closedc       chan struct{}
	closed        bool
}

func (k *sock) Info() ferry.ProtocolInfo {
	return ferry.ProtocolInfo{Self: ProtoSurveyor, Peer: ProtoRespondent, SelfName: "surveyor", PeerName: "respondent"}
}

func (k *sock) Init(s *ferry.Socket) {
	cfg := s.Config()
	k.s = s
	k.surveyTime = cfg.SurveyTime
	k.raw, k.maxTTL = cfg.Raw, cfg.MaxTTL
	k.qlen, k.rlen = cfg.SendQueueLen, cfg.RecvQueueLen
	if k.raw {
		k.rawq = make(chan *ferry.Msg, cfg.RecvQueueLen)
	}
	k.out.Init(s, fanout.DropNew)
	k.surveys = make(map[uint32]*sctx)
	k.nextID = rand.Uint32()
	k.expiry.Init(k.fire)
	k.def = k.newCtx()
}

func (k *sock) newCtx() *sctx {
	return &sctx{sk: k, replies: make(chan *ferry.Msg, k.rlen), closedc: make(chan struct{})}
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
	return k.newCtx(), nil
}

func (k *sock) AddPipe(p *ferry.Pipe) error {
	k.out.Add(p)
	return nil
}

func (k *sock) RemovePipe(p *ferry.Pipe) { k.out.Remove(p) }

func (k *sock) Receive(p *ferry.Pipe, m *ferry.Msg) {
	if k.raw {
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
		return
	}
	id, ok := m.TrimBodyU32()
	if !ok {
		ferry.RecycleMsg(m)
		p.ProtocolError(errors.New("surveyor: response shorter than 4 bytes"))
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	c := k.surveys[id]
	if c == nil {
		ferry.RecycleMsg(m) // late, or for a cancelled survey
		p.CountDrop()
		return
	}
	select {
	case c.replies <- m:
	default:
		ferry.RecycleMsg(m) // the context's queue is full
		p.CountDrop()
	}
}

// broadcast queues m, or a copy, on every pipe, never waiting; a pipe
// whose queue is full misses the survey (counted on it).
func (k *sock) broadcast(m *ferry.Msg) { k.out.Broadcast(m, 0) }

func (k *sock) Send(ctx context.Context, m *ferry.Msg) error {
	if k.raw {
		if len(m.Header) < 4 {
			return fmt.Errorf("%w: raw survey needs a survey id header", ferry.ErrState)
		}
		k.broadcast(m)
		return nil
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
	k.expiry.Stop()
	for _, c := range k.surveys {
		c.end()
	}
	k.mu.Unlock()
	ferry.DrainQueue(k.rawq, ferry.RecycleMsg)
}

// fire ends every survey whose time is up.
func (k *sock) fire() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return
	}
	now := clock.Now()
	for {
		c, ok := k.expiry.First()
		if !ok || c.At.After(now) {
			break
		}
		c.end()
		if c.waiting.Load() > 0 {
			select {
			case c.replies <- expiredMark:
			default:
			}
		}
	}
	k.expiry.Arm(now)
}

// end finishes c's survey: the id is forgotten and queued responses are
// dropped. k.mu must be held.
func (c *sctx) end() {
	k := c.sk
	if c.id != 0 {
		delete(k.surveys, c.id)
		c.id = 0
	}
	k.expiry.Remove(c)
	ferry.DrainQueue(c.replies, func(m *ferry.Msg) {
		if m != expiredMark && m != canceledMark {
			ferry.RecycleMsg(m)
		}
	})
}

func (c *sctx) Send(ctx context.Context, m *ferry.Msg) error {
	k := c.sk
	k.mu.Lock()
	if c.closed || k.closed {
		k.mu.Unlock()
		return ferry.ErrClosed
	}
	c.end()
	if c.waiting.Load() > 0 {
		c.replies <- canceledMark
	}
	id := k.newID()
	c.id = id
	k.surveys[id] = c
	now := clock.Now()
	k.expiry.Set(c, now.Add(k.surveyTime))
	if first, _ := k.expiry.First(); first == c {
		k.expiry.Arm(now)
	}
	m.Header = m.Header[:0]
	m.AppendHeaderU32(id)
	k.mu.Unlock()
	k.broadcast(m)
	return nil
}

func (k *sock) newID() uint32 {
	for {
		k.nextID++
		if id := k.nextID | 0x80000000; k.surveys[id] == nil {
			return id
		}
	}
}

func (c *sctx) Recv(ctx context.Context) (*ferry.Msg, error) {
	k := c.sk
	k.mu.Lock()
	switch {
	case c.closed:
		k.mu.Unlock()
		return nil, ferry.ErrClosed
	case c.id == 0 && len(c.replies) == 0:
		k.mu.Unlock()
		return nil, ferry.ErrState // no survey running (none yet, or it expired)
	}
	c.waiting.Add(1)
	k.mu.Unlock()
	defer c.waiting.Add(-1)
	var m *ferry.Msg
	select { // a response already here wins over a ctx that has also ended
	case m = <-c.replies:
	default:
		select {
		case m = <-c.replies:
		case <-ctx.Done():
			return nil, ferry.CtxErr(ctx)
		case <-c.closedc:
			return nil, ferry.ErrClosed
		case <-k.s.Closed():
			return nil, ferry.ErrClosed
		}
	}
	switch m {
	case expiredMark:
		return nil, ferry.ErrTimeout
	case canceledMark:
		return nil, ferry.ErrCanceled
	}
	return m, nil
}

func (c *sctx) Close() {
	k := c.sk
	k.mu.Lock()
	defer k.mu.Unlock()
	if !c.closed {
		c.closed = true
		c.end()
		close(c.closedc)
	}
}

// DeadlineItem makes a context schedulable in the socket's expiry queue.
func (c *sctx) DeadlineItem() *deadline.Item { return &c.Item }
