// Package pairs implements PAIR0 and PAIR1 (monogamous): one peer at a
// time; a second is refused. PAIR1 carries a hop count header: the sender
// writes 0 and the pipe adds 1, so the wire carries 00 00 00 01; a
// receiver closes a pipe whose header is short or whose hop count is over
// 0xff, and drops (counting it) a message over the socket's MaxTTL.
//
// Sent messages wait in one socket-level queue of SendQueueLen; the
// peer's writer drains it. With no peer, Send waits once the queue is
// full. Messages a writer already took when its pipe died are lost, as
// with NNG; what is still queued goes to the next peer. On stream
// transports a cooked socket's small messages may skip the queue in both
// directions (copied sends and receives, see SendCopy and CopyFrame);
// copies in a dying pipe's buffer are lost like a writer's batch.
package pairs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/ferrymq/ferry"
)

// Protocol numbers.
const (
	ProtoPair0 = 0x10
	ProtoPair1 = 0x11
)

// ErrPaired refuses a second peer.
var ErrPaired = errors.New("pair: already connected to a peer")

type proto struct {
	v1     bool
	raw    bool
	maxTTL uint32
	s      *ferry.Socket
	sendq  chan *ferry.Msg
	recvq  chan *ferry.Msg
	cq     *ferry.CopyQueue // cooked only: readers copy small messages in

	mu   sync.Mutex
	peer *ferry.Pipe
	cur  atomic.Pointer[ferry.Pipe] // peer, read without mu by Send
}

// New returns a PAIR0 (v1 false) or PAIR1 protocol.
func New(v1 bool) ferry.Protocol { return &proto{v1: v1} }

func (p *proto) Info() ferry.ProtocolInfo {
	if p.v1 {
		return ferry.ProtocolInfo{Self: ProtoPair1, Peer: ProtoPair1, SelfName: "pair1", PeerName: "pair1"}
	}
	return ferry.ProtocolInfo{Self: ProtoPair0, Peer: ProtoPair0, SelfName: "pair", PeerName: "pair"}
}

func (p *proto) Init(s *ferry.Socket) {
	cfg := s.Config()
	p.s = s
	p.raw = cfg.Raw
	p.maxTTL = uint32(cfg.MaxTTL)
	p.sendq = make(chan *ferry.Msg, cfg.SendQueueLen)
	p.recvq = make(chan *ferry.Msg, cfg.RecvQueueLen)
	if !p.raw {
		p.cq = ferry.NewCopyQueue(p.recvq)
	}
}

// CopyQueue and CopyFrame implement ferry.CopyReceiver for cooked
// sockets: a frame Receive would deliver as it is (PAIR1: its hop count
// within MaxTTL, then stripped) may be copied in by the reader.
func (p *proto) CopyQueue() *ferry.CopyQueue { return p.cq }

func (p *proto) CopyFrame(_ *ferry.Pipe, b []byte) (hdr, body []byte, ok bool) {
	if !p.v1 {
		return nil, b, true
	}
	if len(b) < 4 || b[0] != 0 || b[1] != 0 || b[2] != 0 || uint32(b[3]) > p.maxTTL {
		return nil, nil, false // Receive reports it or counts the drop
	}
	return nil, b[4:], true
}

func (p *proto) AddPipe(pp *ferry.Pipe) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.peer != nil {
		return ErrPaired
	}
	p.peer = pp
	pp.SetSendQueue(p.sendq) // before SendCopy can see pp
	p.cur.Store(pp)
	return nil
}

func (p *proto) RemovePipe(pp *ferry.Pipe) {
	p.mu.Lock()
	if p.peer == pp {
		p.peer = nil
		p.cur.Store(nil)
	}
	p.mu.Unlock()
}

func (p *proto) Receive(pp *ferry.Pipe, m *ferry.Msg) {
	if p.v1 {
		hops, ok := m.TrimBodyU32()
		switch {
		case !ok:
			ferry.RecycleMsg(m)
			pp.ProtocolError(fmt.Errorf("pair1: header shorter than 4 bytes"))
			return
		case hops > 0xff:
			ferry.RecycleMsg(m)
			pp.ProtocolError(fmt.Errorf("pair1: hop count %d over 255", hops))
			return
		case hops > p.maxTTL:
			ferry.RecycleMsg(m)
			pp.CountDrop()
			return
		}
		if p.raw {
			m.AppendHeaderU32(hops)
		}
	}
	ferry.Deliver(pp, p.recvq, m)
}

func (p *proto) Send(ctx context.Context, m *ferry.Msg) error {
	if p.v1 {
		var hops uint32
		if p.raw {
			if len(m.Header) != 4 {
				return fmt.Errorf("%w: pair1 raw send needs a 4-byte hop count header", ferry.ErrState)
			}
			hops = uint32(m.Header[0])<<24 | uint32(m.Header[1])<<16 | uint32(m.Header[2])<<8 | uint32(m.Header[3])
			if hops >= p.maxTTL {
				// One more hop would pass the limit: drop, as NNG does.
				p.s.DiscardSent(m)
				return nil
			}
		}
		m.Header = m.Header[:0]
		m.AppendHeaderU32(hops + 1) // the pipe's +1, added here once
	}
	if pp := p.cur.Load(); pp != nil && pp.SendDirect(m) {
		return nil
	}
	select {
	case p.sendq <- m:
		return nil
	default:
	}
	select {
	case p.sendq <- m:
		return nil
	case <-ctx.Done():
		return ferry.CtxErr(ctx)
	case <-p.s.Closed():
		return ferry.ErrClosed
	}
}

// hop1 is a cooked PAIR1 message's header on the wire: hop count 1.
var hop1 = []byte{0, 0, 0, 1}

// SendCopy implements ferry.CopySender for cooked sockets: the frame is
// copied into the peer pipe's buffer when its writer is busy.
func (p *proto) SendCopy(hdr, body []byte) bool {
	if p.raw {
		return false
	}
	pp := p.cur.Load()
	if pp == nil {
		return false
	}
	if p.v1 {
		hdr = hop1
	}
	return pp.SendCopy(hdr, body)
}

func (p *proto) Recv(ctx context.Context) (*ferry.Msg, error) {
	if p.cq != nil {
		return p.cq.Take(ctx, p.s, nil)
	}
	return ferry.Take(ctx, p.s, p.recvq, nil)
}

func (p *proto) Close() {
	if p.cq != nil {
		p.cq.Close()
	}
	for _, q := range []chan *ferry.Msg{p.sendq, p.recvq} {
		ferry.DrainQueue(q, ferry.RecycleMsg)
	}
}
