// Package push is the PUSH side of PUSH/PULL, version 0.
//
// Each pipe has its own queue of SocketConfig.SendQueueLen messages. Send
// puts a message on the next pipe in rotation whose queue has room, so
// peers that keep up get equal shares, one message each in turn; a peer
// that falls behind is skipped while its queue is full, and the others
// take its share. When every queue is full, or no peer is connected, Send
// waits (bounded by its ctx) for room.
//
// When a pipe closes, the messages still in its queue (which its writer
// had not taken) go back to the socket and on to the other pipes, ahead
// of new sends; with no other pipe they wait for the next one. Only the
// messages the dead pipe's writer had taken are lost: those it wrote
// count in its MsgsOut (the peer may or may not have read them), those
// it had taken but not written in its Dropped. Recv is ErrNotSupported;
// raw mode behaves the same.
package push

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/clock"
)

// Protocol numbers.
const (
	ProtoPush = 0x50
	ProtoPull = 0x51
)

// New opens a PUSH socket.
func New(cfg ferry.SocketConfig) (*ferry.Socket, error) {
	return ferry.NewSocket(&sock{}, cfg)
}

type sock struct {
	s    *ferry.Socket
	qlen int
	// space gets a token (capacity 1) whenever a queue may have gained
	// room or a pipe arrived; Sends waiting for room wait on it, and one
	// that succeeds after waiting passes the token on.
	space chan struct{}
	next  atomic.Uint32 // where the rotation resumes
	// lastTx: clock.Nanos of the last Send that tried a direct write
	lastTx atomic.Int64

	// mu guards pipes. Sends hold it shared while they queue, so once
	// RemovePipe has taken it exclusively no message can reach the
	// removed pipe's queue, and draining it is final. pipes is copied on
	// write and published in snap for SendCopy, which takes no lock: a
	// pipe refuses copies once its writer has stopped, before RemovePipe.
	mu    sync.RWMutex
	pipes []*pipeData
	snap  atomic.Pointer[[]*pipeData]

	// backlog holds messages taken back from pipes that closed, until a
	// queue has room for them. Send adds nothing while it is not empty,
	// so it never holds more than the queues of pipes that closed.
	blMu    sync.Mutex
	backlog []*ferry.Msg
	blLen   atomic.Int32
}

type pipeData struct {
	p     *ferry.Pipe
	q     chan *ferry.Msg
	taken atomic.Uint64 // messages the writer took from q
}

// publish makes the current pipes visible to SendCopy. Under k.mu.
func (k *sock) publish() {
	ps := k.pipes // a header of its own: k.pipes is reassigned later
	k.snap.Store(&ps)
}

func (k *sock) Info() ferry.ProtocolInfo {
	return ferry.ProtocolInfo{Self: ProtoPush, Peer: ProtoPull, SelfName: "push", PeerName: "pull"}
}

func (k *sock) Init(s *ferry.Socket) {
	k.s, k.qlen = s, s.Config().SendQueueLen
	k.space = make(chan struct{}, 1)
}

func (k *sock) AddPipe(p *ferry.Pipe) error {
	d := &pipeData{p: p, q: make(chan *ferry.Msg, k.qlen)}
	p.ProtoData = d
	p.SetSendQueue(d.q)
	p.SetSendHook(k.carried)
	k.mu.Lock()
	k.pipes = append(slices.Clip(k.pipes), d)
	k.publish()
	k.mu.Unlock()
	k.flush()
	k.signal()
	return nil
}

// carried runs on p's writer with each batch it took: p's queue has room.
func (k *sock) carried(p *ferry.Pipe, batch []*ferry.Msg) {
	p.ProtoData.(*pipeData).taken.Add(uint64(len(batch)))
	if k.blLen.Load() > 0 {
		k.flush()
	}
	k.signal()
}

func (k *sock) signal() {
	select {
	case k.space <- struct{}{}:
	default:
	}
}

// RemovePipe takes back what p's writer had not taken, and counts what
// it had taken but not written as dropped on p.
func (k *sock) RemovePipe(p *ferry.Pipe) {
	d := p.ProtoData.(*pipeData)
	k.mu.Lock()
	if i := slices.Index(k.pipes, d); i >= 0 {
		k.pipes = slices.Delete(slices.Clone(k.pipes), i, i+1)
		k.publish()
	}
	k.mu.Unlock()
	for range d.taken.Load() + p.CopiedSends() - p.DirectRefused() - p.Stats().MsgsOut {
		p.CountDrop()
	}
	if len(d.q) == 0 {
		return
	}
	k.blMu.Lock()
	ferry.DrainQueue(d.q, func(m *ferry.Msg) { k.backlog = append(k.backlog, m) })
	k.blLen.Store(int32(len(k.backlog)))
	k.blMu.Unlock()
	k.flush()
}

// flush moves backlog messages, oldest first, onto queues with room. It
// reports whether the backlog is empty.
func (k *sock) flush() bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	k.blMu.Lock()
	defer k.blMu.Unlock()
	i := 0
	for i < len(k.backlog) && k.put(k.backlog[i]) {
		i++
	}
	if i > 0 {
		n := copy(k.backlog, k.backlog[i:])
		clear(k.backlog[n:])
		k.backlog = k.backlog[:n]
		k.blLen.Store(int32(n))
	}
	return len(k.backlog) == 0
}

// put queues m on the next pipe in rotation that has room. k.mu is held
// shared.
func (k *sock) put(m *ferry.Msg) bool {
	n := uint32(len(k.pipes))
	start := k.next.Load()
	for i := range n {
		j := (start + i) % n
		d := k.pipes[j]
		select {
		case <-d.p.Closing():
			continue // its queue would only come back to the backlog
		default:
		}
		select {
		case d.q <- m:
			k.next.Store(j + 1)
			return true
		default:
		}
	}
	return false
}

func (k *sock) tryPut(m *ferry.Msg) bool {
	if k.blLen.Load() > 0 && !k.flush() {
		return false // what came back from closed pipes goes first
	}
	k.mu.RLock()
	ok := k.put(m)
	k.mu.RUnlock()
	return ok
}

func (k *sock) Receive(_ *ferry.Pipe, m *ferry.Msg) { ferry.RecycleMsg(m) } // pullers send nothing

func (k *sock) Send(ctx context.Context, m *ferry.Msg) error {
	if k.direct(m) || k.tryPut(m) {
		return nil
	}
	for {
		select {
		case <-k.space:
		case <-ctx.Done():
			return ferry.CtxErr(ctx)
		case <-k.s.Closed():
			return ferry.ErrClosed
		}
		if k.tryPut(m) {
			k.signal() // there may be room for another waiting Send
			return nil
		}
	}
}

// direct writes a lone message on the next pipe in rotation from the
// sender's goroutine (Pipe.SendDirect: only when nothing else the socket
// accepted is unwritten, so nothing is overtaken), skipping its queue and
// its writer's wake-up, a thread hand-off per message on a round trip.
// The send hook counts it as taken, as a writer's batch.
//
// Lone means lone on the socket: a send less than loneGap after the
// previous one is part of a stream, which the writers batch. SendDirect's
// own gap is per pipe, and with several pipes in rotation each sees a
// stream's messages spaced several apart: 4 pullers took 87% of a 64 B
// stream directly, a system call per message, at half the throughput.
func (k *sock) direct(m *ferry.Msg) bool {
	now := clock.Nanos()
	if last := k.lastTx.Swap(now); now-last < int64(loneGap) {
		return false
	}
	return k.onNext(func(p *ferry.Pipe) bool { return p.SendDirect(m) })
}

// loneGap is the core's gap between direct writes on a pipe (see
// Pipe.SendDirect), applied to the socket.
const loneGap = 5 * time.Microsecond

// SendCopy implements ferry.CopySender: the message is copied into the
// buffer of the next pipe in rotation if its writer is busy and its queue
// empty; otherwise Send puts it on that pipe's queue (which wakes the
// writer), so no pipe is passed over while it waits for work. A copied
// message counts as taken by the writer.
func (k *sock) SendCopy(hdr, body []byte) bool {
	return k.onNext(func(p *ferry.Pipe) bool { return p.SendCopy(hdr, body) }) // counted there (Pipe.CopiedSends)
}

// onNext offers a message to the next pipe in rotation, from the pipes
// published for lock-free senders, through send; the rotation moves on
// if send took it. Nothing is offered while the backlog holds messages:
// what came back from closed pipes goes first.
func (k *sock) onNext(send func(*ferry.Pipe) bool) bool {
	if k.blLen.Load() > 0 {
		return false
	}
	ps := k.snap.Load()
	if ps == nil || len(*ps) == 0 {
		return false
	}
	j := k.next.Load() % uint32(len(*ps))
	if !send((*ps)[j].p) {
		return false
	}
	k.next.Store(j + 1)
	return true
}

func (k *sock) Recv(context.Context) (*ferry.Msg, error) { return nil, ferry.ErrNotSupported }

func (k *sock) Close() {
	k.mu.Lock()
	for _, d := range k.pipes {
		ferry.DrainQueue(d.q, ferry.RecycleMsg)
	}
	k.mu.Unlock()
	k.blMu.Lock()
	for _, m := range k.backlog {
		ferry.RecycleMsg(m)
	}
	k.backlog = nil
	k.blMu.Unlock()
}
