package ferry

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ferrymq/ferry/internal/clock"
	"github.com/ferrymq/ferry/internal/wire"
	"github.com/ferrymq/ferry/transport"
)

// Pipe is one connection between a socket and a peer. Each pipe has at
// most two goroutines: a reader, which also runs the handshake, and a
// writer, started only if the protocol gives the pipe a send queue.
type Pipe struct {
	id        uint32
	s         *Socket
	c         pipeConn
	dialer    *Dialer   // set if dialed; read-only
	listener  *Listener // set if accepted; read-only
	hsTimeout time.Duration

	sendq   chan *Msg           // set by the protocol in AddPipe; drained by the writer
	onSend  func(*Pipe, []*Msg) // optional, set in AddPipe; sees each batch before it is written
	closing chan struct{}       // closed when the pipe starts closing
	ready   chan struct{}       // closed once the protocol admitted the pipe
	wdone   chan struct{}       // closed when the writer has exited (or never ran)
	done    chan struct{}       // closed when the pipe is fully gone

	closeOnce sync.Once
	reason    Reason // set once, before closing is closed
	err       error  // likewise

	admitted atomic.Bool
	ctr      pipeCounters

	// Direct writes (SendDirect): wmu is held by whoever writes on c, the
	// writer goroutine or a sender writing directly; kick wakes the writer
	// when a direct write left bytes over; lastTx spaces direct writes.
	wmu    sync.Mutex
	dc     directConn // c, if it can write without waiting; else nil
	kick   chan struct{}
	lastTx atomic.Int64
	one    [1]*Msg // a direct write's batch, for onSend; guarded by wmu

	// inproc direct delivery: ic is c if it is an inproc end; directIn
	// is true, under ic.dmu, while a peer's sender runs the protocol's
	// Receive for this pipe (Deliver then never waits).
	ic       *inprocConn
	directIn bool

	pipeLend // inline reads (inline.go)

	// room wakes this pipe's reader waiting in CopyQueue.waitFor; made
	// by the reader at its first wait, under the queue's mu.
	room chan struct{}

	// Copied sends (SendCopy, stream transports): sc is c if it is a
	// streamConn. Senders copy small frames into pend, in order. pend is
	// one run: it holds only copies made while no message went the queue
	// way (the socket's send stamp, Socket.qseq, stayed at pendC), so
	// its place among queued messages is known: after those stamped up
	// to pendC, before the first one stamped later. The writer drains
	// the queue and takes pend in one step under bmu and writes pend at
	// that place. A writer that runs out of work keeps polling for up to
	// copySpin before it waits (wwait); while it waits senders use the
	// queue (or a direct write), which wakes it: a lone message then goes
	// out at once. Once the writer has exited (wdead) senders use the
	// queue too, for the next pipe. bmu guards pend, pendN,
	// pendB, pendC, ncopy (copies taken, ever), wwait and wdead; wspare
	// is the writer's.
	sc     *streamConn
	bmu    sync.Mutex
	pend   *copyBuf
	pendN  int
	pendB  uint64
	pendC  uint64
	ncopy  uint64
	wwait  bool
	wdead  bool
	wspare *copyBuf
	wlast  int64 // clock.Nanos of the last write, for copySpin; the writer's

	// Copied receives (stream transports, protocols that are a
	// CopyReceiver): the reader copies small frames into cq.
	cq *CopyQueue
	cr CopyReceiver

	// ProtoData is the protocol's own per-pipe state. Set it in AddPipe;
	// the socket never touches it.
	ProtoData any
}

// pipeConn is a pipe's connection: a framed byte stream or an inproc
// channel pair. recv is called only by the reader, send and closeWrite
// only by the writer (closeWrite also by Shutdown once writers are idle),
// close from anywhere.
type pipeConn interface {
	handshake(self uint16, timeout time.Duration) (peer uint16, err error)
	recv(max int) (*Msg, error)
	// send writes a batch in order. Entries whose ownership passed to the
	// peer (inproc) are set to nil; the caller recycles the rest.
	send(batch []*Msg) error
	close()
	closeWrite()
	localAddr() string
	remoteAddr() string
}

// directConn is a pipeConn that can write a message from any goroutine
// without waiting (tcp, ipc). Both methods are called with the pipe's wmu
// held.
type directConn interface {
	// writeNow writes m's frame if the kernel takes at least part of it at
	// once; a part it did not take is kept for flushRest and partial is
	// true. ok is false, nothing written, otherwise.
	writeNow(m *Msg) (ok, partial bool)
	// flushRest writes, waiting, what a partial writeNow left; had says
	// whether there was any.
	flushRest() (had bool, err error)
	// dropRest forgets it (the pipe is closing); had as for flushRest.
	dropRest() (had bool)
	canDirect() bool
	// passesMsgs: writeNow hands m itself to the peer (inproc) rather
	// than copying its bytes out.
	passesMsgs() bool
}

// directGap: a send that follows the previous one on the pipe sooner than
// this goes through the queue, so that a stream of messages is batched by
// the writer; a lone message (a request, a reply, a ping) is written at
// once.
const (
	directGap       = 5 * time.Microsecond
	directGapInproc = time.Microsecond // an inproc round trip takes ~2 us
)

// SendDirect writes m on p from the calling goroutine, skipping the queue
// and the writer's wake-up, when that can neither reorder nor block
// anything: m is the only message its socket has accepted and not
// written, the previous send on p was at least directGap ago, nobody is
// writing on p, and the kernel takes the bytes at once. It reports whether
// p took m; then m is p's and the caller must not touch it, as after a
// queue hand-off. Stream transports over tcp and ipc support it; on
// others it always reports false. For Protocol.Send implementations.
func (p *Pipe) SendDirect(m *Msg) bool {
	if p.dc == nil || p.s.unsent.Load() != 1 {
		return false
	}
	gap := directGap // leave bursts to the writer, which batches them
	if p.dc.passesMsgs() {
		gap = directGapInproc
	}
	now := clock.Nanos()
	if last := p.lastTx.Swap(now); now-last < int64(gap) {
		return false
	}
	if !p.wmu.TryLock() {
		return false
	}
	defer p.wmu.Unlock()
	select {
	case <-p.closing:
		return false
	default:
	}
	if p.onSend != nil {
		p.one[0] = m
		p.onSend(p, p.one[:])
		p.one[0] = nil
	}
	n := uint64(len(m.Header) + len(m.Body))
	ok, partial := p.dc.writeNow(m)
	if !ok {
		if p.onSend != nil {
			p.ctr.directBack.Add(1) // the hook saw it, the caller queues it
		}
		return false
	}
	if !p.dc.passesMsgs() {
		recycle(m) // its bytes were copied out
	}
	if partial { // still unsent until the writer has written the rest
		select {
		case p.kick <- struct{}{}:
		default:
		}
	} else {
		p.s.unsent.Add(-1)
	}
	p.ctr.msgsOut.Add(1)
	p.ctr.bytesOut.Add(n)
	p.ctr.direct.Add(1)
	if p.s.wokeWriter.Load() { // the writer stays asleep: no need to yield to it
		p.s.wokeWriter.Store(false)
	}
	return true
}

// DirectAt returns the time SendDirect last read the clock for p: after
// a SendDirect that reported true, when the message went (to within its
// own run). A protocol that needs the time of the send reads this
// instead of the clock, which costs ~0.1 us on a VM.
func (p *Pipe) DirectAt() time.Time { return clock.At(p.lastTx.Load()) }

// flushRest writes what a partial direct write left. p.wmu must be held.
func (p *Pipe) flushRest() error {
	if p.dc == nil {
		return nil
	}
	had, err := p.dc.flushRest()
	if had {
		p.s.unsent.Add(-1) // written, or lost with this pipe
	}
	return err
}

// A writer takes at most maxBatch messages or about maxBatchBytes from its
// queue for one write.
const (
	maxBatch      = 256
	maxBatchBytes = 1 << 20
)

// ID is the pipe's id, unique within its socket, in 1..0x7fffffff.
func (p *Pipe) ID() uint32 { return p.id }

// Socket returns the pipe's socket.
func (p *Pipe) Socket() *Socket { return p.s }

// SetSendQueue gives the pipe the queue its writer drains. Call it only
// from Protocol.AddPipe. Several pipes may share one queue: each writer
// takes what it is ready to send.
func (p *Pipe) SetSendQueue(q chan *Msg) { p.sendq = q }

// SetSendHook makes the writer call f with each batch it took from the
// queue, before writing it, so the protocol learns which pipe carries
// which message (REQ resends at once when that pipe dies). f runs on the
// writer goroutine and must not block. Call it only from AddPipe.
func (p *Pipe) SetSendHook(f func(*Pipe, []*Msg)) { p.onSend = f }

// Closing is closed when the pipe starts closing.
func (p *Pipe) Closing() <-chan struct{} { return p.closing }

// Close closes the pipe; the socket carries on.
func (p *Pipe) Close() { p.closeWith(ReasonSocketClosed, errors.New("closed by protocol")) }

// ProtocolError closes the pipe because its peer broke the protocol, and
// counts it.
func (p *Pipe) ProtocolError(err error) {
	p.closeWith(ReasonProtocol, fmt.Errorf("%w: %v", ErrProtocol, err))
}

// CountDrop counts a message from or for this pipe that the protocol
// dropped.
func (p *Pipe) CountDrop() { p.ctr.dropped.Add(1) }

// Reason reports why the pipe closed, once it has.
func (p *Pipe) Reason() (Reason, error) {
	select {
	case <-p.closing:
		return p.reason, p.err
	default:
		return "", nil
	}
}

func (p *Pipe) closeWith(r Reason, err error) {
	p.closeOnce.Do(func() {
		p.reason, p.err = r, err
		if r.isProtocolError() {
			p.ctr.protoErrs.Add(1)
		}
		close(p.closing)
		p.c.close()
	})
}

// closeErr describes why a pipe that never became ready closed.
func (p *Pipe) closeErr() error {
	<-p.closing
	switch p.reason {
	case ReasonRefused:
		return fmt.Errorf("%w: %v", ErrPeerRefused, p.err)
	case ReasonSocketClosed, ReasonDialerClosed:
		return ErrClosed
	}
	if p.err != nil {
		return fmt.Errorf("ferry: %s: %w", p.reason, p.err)
	}
	return fmt.Errorf("ferry: %s", p.reason)
}

// startPipe registers a pipe for c and starts its goroutine. It returns
// nil, closing c, if the socket is closing.
func (s *Socket) startPipe(c pipeConn, d *Dialer, l *Listener, hs time.Duration) *Pipe {
	id := s.nextID.Add(1) & 0x7fffffff
	if id == 0 {
		id = s.nextID.Add(1) & 0x7fffffff
	}
	p := &Pipe{
		id: id, s: s, c: c, dialer: d, listener: l, hsTimeout: hs,
		closing: make(chan struct{}),
		ready:   make(chan struct{}),
		wdone:   make(chan struct{}),
		done:    make(chan struct{}),
	}
	if dc, ok := c.(directConn); ok && dc.canDirect() {
		p.dc, p.kick = dc, make(chan struct{}, 1)
		// Long before any clock reading, even in a testing/synctest
		// bubble, where Nanos is far below 0: the first send may go direct.
		p.lastTx.Store(math.MinInt64 / 2)
	}
	if sc, ok := c.(*streamConn); ok {
		p.sc = sc
		if s.cq != nil {
			p.cq, p.cr = s.cq, s.proto.(CopyReceiver)
		}
	}
	if ic, ok := c.(*inprocConn); ok {
		p.ic = ic
		ic.pipe.Store(p)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.goLocked(p.run) {
		c.close()
		return nil
	}
	s.pipes[p] = struct{}{}
	return p
}

// run is the pipe's reader goroutine: handshake, admission, then reading
// until the pipe closes; it then waits for the writer and unregisters.
func (p *Pipe) run() {
	s := p.s
	defer p.finish()
	peer, err := p.c.handshake(s.info.Self, p.hsTimeout)
	if err != nil {
		p.closeWith(handshakeReason(err), err)
		close(p.wdone)
		return
	}
	if peer != s.info.Peer {
		p.closeWith(ReasonWrongPeer, fmt.Errorf("peer speaks protocol %#x, %s needs %#x (%s)",
			peer, s.info.SelfName, s.info.Peer, s.info.PeerName))
		close(p.wdone)
		return
	}
	select {
	case <-p.closing: // closed during the handshake
		close(p.wdone)
		return
	default:
	}
	p.settleLent()
	if err := s.proto.AddPipe(p); err != nil {
		p.closeWith(ReasonRefused, err)
		close(p.wdone)
		return
	}
	p.admitted.Store(true)
	if s.lend.npipes.Add(1) > 1 {
		if lp := s.lend.lendp.Load(); lp != nil {
			lp.reclaim()
		}
	}
	lends := p.sc != nil
	if lends {
		s.lend.streams.Add(1)
		if p.cq != nil {
			p.cq.kickPlain() // its reader may copy: plain waits would miss it
		}
	}
	s.ctr.mu.Lock()
	s.ctr.opened++
	s.ctr.mu.Unlock()
	close(p.ready)
	if p.sendq != nil {
		s.wg.Add(1) // safe: this goroutine holds a count, so Wait cannot have returned
		go p.writeLoop()
	} else {
		close(p.wdone)
	}
	p.readLoop()
	s.lend.npipes.Add(-1)
	if lends {
		s.lend.streams.Add(-1)
	}
	p.dropInterrupt()
	<-p.wdone
	s.proto.RemovePipe(p)
}

func (p *Pipe) finish() {
	s := p.s
	s.mu.Lock()
	delete(s.pipes, p)
	s.mu.Unlock()
	<-p.closing
	s.ctr.recordClose(ClosedPipe{PipeStats: p.Stats(), Reason: p.reason, Err: p.err}, &p.ctr)
	close(p.done)
}

func (p *Pipe) readLoop() {
	max := p.s.cfg.RecvMaxSize
	for {
		select { // closed, maybe by Receive for a bad message: nothing after it is delivered
		case <-p.closing:
			return
		default:
		}
		if p.cq != nil {
			p.readCopied(max) // then one frame the ordinary way
		} else if p.sc != nil {
			p.sc.initRead(max)
			if p.mayLend() {
				continue // receivers read meanwhile
			}
		}
		m, err := p.c.recv(max)
		if err != nil {
			p.closeWith(readReason(err), err)
			return
		}
		if p.ic != nil {
			p.ic.dmu.Lock() // no direct delivery overtakes m
			p.deliver(m)
			p.ic.received()
			p.ic.dmu.Unlock()
			continue
		}
		p.delivered()
		p.deliver(m)
	}
}

// writeLoop drains the send queue, handing the connection everything
// queued at once so it can go out in one write; on stream transports it
// writes the frames senders copied in (SendCopy) ahead of the queue's.
func (p *Pipe) writeLoop() {
	defer p.s.wg.Done()
	defer close(p.wdone)
	// At most three defers: with more, Go keeps defer records in the
	// frame, and this frame is on every idle pipe's stack.
	defer func() {
		p.dropCopied()   // frames copied in but not written are lost with the pipe
		if p.dc != nil { // and so is a direct write's rest
			p.wmu.Lock()
			if p.dc.dropRest() {
				p.s.unsent.Add(-1)
			}
			p.wmu.Unlock()
		}
	}()
	batch := make([]*Msg, 0, 8) // grows to maxBatch only if batches do: idle pipes stay small
	for {
		select {
		case <-p.closing:
			return
		default:
		}
		var pre copied // frames copied in, older than anything queued
		if p.sc != nil {
			pre, batch = p.takeWork(batch)
		} else {
			batch = p.fill(batch)
		}
		if pre.n == 0 && len(batch) == 0 {
			select {
			case m := <-p.sendq:
				batch = append(batch, m)
				if p.sc != nil {
					pre, batch = p.resume(batch)
				} else {
					batch = p.fill(batch)
				}
			case <-p.kick:
				p.wmu.Lock()
				err := p.flushRest()
				p.wmu.Unlock()
				if err != nil {
					p.closeWith(writeReason(err), err)
					return
				}
				continue
			case <-p.closing:
				return
			}
		}
		var err error
		if batch, err = p.writeBatch(pre, batch); err != nil {
			p.closeWith(writeReason(err), err)
			return
		}
	}
}

// The writer's steps below stay out of line: its frame is on every idle
// pipe's stack, which then fits in the smallest goroutine stack (2 KiB).

// takeWork takes, for a stream pipe's writer, what the queue holds and
// the frames copied in (placeCopied). Until there is some, or copySpin
// has passed since the last write, it polls, yielding in between; then,
// with nothing to do, it marks the writer waiting.
//
//go:noinline
func (p *Pipe) takeWork(batch []*Msg) (copied, []*Msg) {
	for {
		p.bmu.Lock()
		batch = p.fill(batch)
		pre := p.placeCopied(batch)
		idle := pre.n == 0 && len(batch) == 0
		if idle && clock.Nanos()-p.wlast < copySpin {
			p.bmu.Unlock()
			runtime.Gosched() // a sender on another core may copy more meanwhile
			select {
			case <-p.closing:
				return pre, batch
			default:
			}
			continue
		}
		p.wwait = idle
		if idle { // hold no copy buffers
			putCopyBuf(p.pend)
			putCopyBuf(p.wspare)
			p.pend, p.wspare = nil, nil
		}
		p.bmu.Unlock()
		return pre, batch
	}
}

// resume ends a stream pipe writer's wait: batch holds the message that
// woke it. Frames copied meanwhile are placed by their stamp.
//
//go:noinline
func (p *Pipe) resume(batch []*Msg) (copied, []*Msg) {
	p.bmu.Lock()
	p.wwait = false
	batch = p.fill(batch)
	pre := p.placeCopied(batch)
	p.bmu.Unlock()
	return pre, batch
}

// placeCopied takes pend, if it holds frames, to be written before
// batch[at], the first message stamped after pend's run began (see
// Pipe.sc): those before it were sent before the copies, it and the
// rest after them. If no message in batch is and the queue holds more
// (fill stopped at its limits), pend stays for the next batch; batch is
// then not empty, so the writer is not idle. Under bmu.
func (p *Pipe) placeCopied(batch []*Msg) copied {
	if p.pendN == 0 {
		return copied{}
	}
	at := len(batch)
	for i, m := range batch {
		if m.qseq > p.pendC {
			at = i
			break
		}
	}
	if at > 0 && at == len(batch) && len(p.sendq) > 0 {
		return copied{} // what is left in the queue may be older still
	}
	c := p.takeCopied()
	c.at = at
	return c
}

// writeBatch writes pre, then batch, counts them and returns batch
// emptied.
//
//go:noinline
func (p *Pipe) writeBatch(pre copied, batch []*Msg) ([]*Msg, error) {
	n := len(batch)
	bytes := pre.bytes
	for _, m := range batch {
		bytes += uint64(len(m.Header) + len(m.Body))
	}
	p.wmu.Lock()
	err := p.flushRest()
	if err == nil {
		if p.onSend != nil && n > 0 {
			p.onSend(p, batch)
		}
		if p.sc != nil {
			err = p.sc.sendCopied(pre.bytesOf(), pre.at, batch)
		} else {
			err = p.c.send(batch)
		}
	}
	p.wmu.Unlock()
	for i, m := range batch {
		if m != nil {
			recycle(m)
		}
		batch[i] = nil
	}
	batch = batch[:0]
	nc := pre.n
	p.spare(pre.buf)
	if p.sc != nil {
		p.wlast = clock.Nanos()
	}
	p.s.unsent.Add(-int64(n + nc)) // written, or lost with this pipe
	if err != nil {
		return batch, err
	}
	p.ctr.msgsOut.Add(uint64(n + nc))
	p.ctr.bytesOut.Add(bytes)
	if nc > 0 {
		p.ctr.copied.Add(uint64(nc))
	}
	return batch, nil
}

// copied is a run of frames senders copied in, taken by the writer.
type copied struct {
	buf   *copyBuf
	n     int
	bytes uint64
	at    int // written before batch[at]
}

func (c copied) bytesOf() []byte {
	if c.buf == nil {
		return nil
	}
	return c.buf.b
}

// takeCopied takes pend, if it holds frames, and leaves the spare buffer
// in its place. Under bmu.
func (p *Pipe) takeCopied() copied {
	if p.pendN == 0 {
		return copied{}
	}
	c := copied{buf: p.pend, n: p.pendN, bytes: p.pendB}
	p.pend, p.pendN, p.pendB, p.wspare = p.wspare, 0, 0, nil
	return c
}

// spare keeps a written copy buffer for the next takeCopied.
func (p *Pipe) spare(b *copyBuf) {
	if b == nil {
		return
	}
	b.b = b.b[:0]
	if p.wspare == nil { // read and written only by the writer, here and under bmu
		p.wspare = b
	} else {
		putCopyBuf(b)
	}
}

// fill adds to batch what the send queue holds, without waiting: at most
// maxBatch messages or about maxBatchBytes, memory a stuck peer holds.
// Not inlined: the writer calls it from four places, and each inlined
// copy grew the writer's frame, and so every idle pipe's stack.
//
//go:noinline
func (p *Pipe) fill(batch []*Msg) []*Msg {
	var bytes int
	for _, m := range batch {
		bytes += len(m.Header) + len(m.Body)
	}
	for len(batch) < maxBatch && bytes < maxBatchBytes {
		select {
		case m := <-p.sendq:
			batch = append(batch, m)
			bytes += len(m.Header) + len(m.Body)
		default:
			return batch
		}
	}
	return batch
}

// Copied sends: a frame of at most CopySendMax bytes of header and body
// may be copied into a pipe's copy buffer of copyBufSize.
const (
	CopySendMax = 1024
	copyBufSize = 32 << 10
	// copySpin is how long a writer that ran out of work polls for more
	// (yielding between polls) before it waits: directGap, the gap that
	// tells a stream from lone messages, so a stream keeps it busy.
	copySpin = int64(directGap)
)

type copyBuf struct{ b []byte }

var copyBufs = sync.Pool{New: func() any { return &copyBuf{b: make([]byte, 0, copyBufSize)} }}

func getCopyBuf() *copyBuf { return copyBufs.Get().(*copyBuf) }

func putCopyBuf(b *copyBuf) {
	if b != nil {
		b.b = b.b[:0]
		copyBufs.Put(b)
	}
}

// SendCopy sends hdr followed by body as one message on p by copying the
// bytes into p's copy buffer, which the pipe's writer sends with its next
// write, if that can neither reorder nor wait: the writer is busy (not
// waiting for work; after a write it keeps polling for copySpin), no
// message went to a queue since the buffer's first copy (the buffer's
// frames are written among queued messages by their send stamps, see
// Pipe.sc), the message is at most CopySendMax bytes and the buffer has
// room. It reports whether it did; hdr and body stay the
// caller's either way. A stream of small messages
// sent this way costs no queue hand-off and no message buffer per
// message. A copied message counts in the socket's unsent messages until
// written, as a queued one does, and as taken by the writer: a pipe that
// dies loses it, as it loses a batch the writer took. Stream
// transports (tcp, ipc, tls, quic) support it; on others it reports
// false. For CopySender implementations.
func (p *Pipe) SendCopy(hdr, body []byte) bool {
	n := len(hdr) + len(body)
	if p.sc == nil || p.sendq == nil || n > CopySendMax {
		return false
	}
	var pfx [9]byte
	k := p.sc.f.PutPrefix(pfx[:], n)
	p.bmu.Lock()
	q := p.s.qseq.Load()
	if p.wwait || p.wdead || p.pendN > 0 && q != p.pendC {
		if p.wwait {
			p.s.wokeWriter.Store(true)
		}
		p.bmu.Unlock()
		return false
	}
	if p.pend == nil {
		p.pend = getCopyBuf()
	}
	b := p.pend.b
	if len(b)+k+n > cap(b) {
		p.bmu.Unlock()
		return false
	}
	p.pend.b = append(append(append(b, pfx[:k]...), hdr...), body...)
	if p.pendN == 0 {
		p.pendC = q
	}
	p.pendN++
	p.pendB += uint64(n)
	p.ncopy++
	p.s.unsent.Add(1) // until written; the writer takes pend only under bmu
	p.bmu.Unlock()
	return true
}

// DirectRefused reports how many messages SendDirect handed to p's send
// hook (SetSendHook, called before the write) and then did not write:
// the kernel refused them at once, and SendDirect reported false, so the
// caller queued them instead. A protocol counting what its hook saw
// subtracts these. Once the writer has stopped (in RemovePipe) the figure
// is final.
func (p *Pipe) DirectRefused() uint64 { return p.ctr.directBack.Load() }

// CopiedSends reports how many messages SendCopy has taken on p: like
// the messages its writer took from the queue, each was either written
// (MsgsOut) or lost with the pipe. Once the writer has stopped (in
// RemovePipe) the figure is final.
func (p *Pipe) CopiedSends() uint64 {
	p.bmu.Lock()
	defer p.bmu.Unlock()
	return p.ncopy
}

// dropCopied forgets, as the writer exits, the frames copied in that it
// did not write, and refuses further copies.
func (p *Pipe) dropCopied() {
	if p.sc == nil {
		return
	}
	p.bmu.Lock()
	p.wdead = true
	p.s.unsent.Add(-int64(p.pendN))
	putCopyBuf(p.pend)
	putCopyBuf(p.wspare)
	p.pend, p.pendN, p.pendB, p.wspare = nil, 0, 0, nil
	p.bmu.Unlock()
}

func handshakeReason(err error) Reason {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return ReasonHandshakeTimeout
	case errors.Is(err, wire.ErrBadMagic), errors.Is(err, wire.ErrBadVersion), errors.Is(err, wire.ErrBadReserved),
		errors.Is(err, transport.ErrHandshake):
		return ReasonHandshake
	case errors.Is(err, net.ErrClosed):
		return ReasonSocketClosed
	}
	return ReasonPeerClosed
}

func readReason(err error) Reason {
	switch {
	case errors.Is(err, wire.ErrTooLarge):
		return ReasonTooLarge
	case errors.Is(err, wire.ErrBadIPCType), errors.Is(err, transport.ErrProtocol):
		return ReasonProtocol
	case errors.Is(err, io.ErrUnexpectedEOF):
		return ReasonTruncated
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return ReasonPeerClosed
	}
	return ReasonIO
}

func writeReason(err error) Reason {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return ReasonWriteTimeout
	case errors.Is(err, io.EOF), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNRESET):
		return ReasonPeerClosed
	}
	return ReasonIO
}

// streamConn frames SP messages on a byte stream (tcp, ipc, tls).
type streamConn struct {
	c  net.Conn
	f  wire.Framing
	br *bufio.Reader // reader-owned
	fr *wire.Reader  // reader-owned; limit fixed at the first recv
	wt time.Duration // write timeout; <= 0 for none

	rc syscall.RawConn // for direct writes; nil if the conn has none
	// dfn writes dbuf, leaving dn and derr: made once, so a direct write
	// allocates no closure.
	dfn  func(fd uintptr) bool
	dbuf []byte
	dn   int
	derr error

	// writer-owned (held under the pipe's wmu):
	rest   []byte    // what a partial direct write left, a tail of sc
	lastWD time.Time // when the write deadline was last pushed out
	sc     []byte    // coalescing buffer: prefixes, headers, small bodies
	seg    int       // start of the part of sc not yet in iov
	iov    [][]byte
	bufs   net.Buffers
	pfx    [9]byte
}

const (
	readBufSize  = 8 << 10
	scratchSize  = 32 << 10
	copyMaxBytes = 512 // bodies up to this size are copied into sc
)

func newStreamConn(tc transport.Conn, wt time.Duration) *streamConn {
	c := &streamConn{c: tc.Conn, f: tc.Framing, wt: wt}
	switch nc := tc.Conn.(type) {
	case *net.TCPConn, *net.UnixConn:
		if rc, err := nc.(syscall.Conn).SyscallConn(); err == nil {
			c.rc = rc
			c.dfn = func(fd uintptr) bool {
				c.dn, c.derr = syscall.Write(int(fd), c.dbuf)
				return true
			}
		}
	}
	return c
}

// directMax bounds the frames a direct write copies into sc.
const directMax = scratchSize - 16

func (c *streamConn) canDirect() bool  { return c.rc != nil }
func (c *streamConn) passesMsgs() bool { return false }

func (c *streamConn) writeNow(m *Msg) (ok, partial bool) {
	n := len(m.Header) + len(m.Body)
	if c.rc == nil || len(c.rest) > 0 || n > directMax {
		return false, false
	}
	if c.sc == nil {
		c.sc = make([]byte, 0, scratchSize)
	}
	k := c.f.PutPrefix(c.pfx[:], n)
	b := append(append(append(c.sc[:0], c.pfx[:k]...), m.Header...), m.Body...)
	// Go keeps the socket non-blocking: one write(2), never a wait.
	c.dbuf = b
	err := c.rc.Write(c.dfn)
	w, werr := c.dn, c.derr
	c.dbuf, c.derr = nil, nil
	if err != nil || werr != nil || w <= 0 {
		return false, false // EAGAIN, or an error the writer will meet
	}
	if w < len(b) {
		c.rest = b[w:]
		return true, true
	}
	return true, false
}

func (c *streamConn) flushRest() (bool, error) {
	if len(c.rest) == 0 {
		return false, nil
	}
	c.pushDeadline()
	_, err := c.c.Write(c.rest)
	c.rest, c.sc = nil, c.sc[:0]
	return true, err
}

func (c *streamConn) dropRest() bool {
	had := len(c.rest) > 0
	c.rest = nil
	return had
}

func (c *streamConn) pushDeadline() {
	if c.wt > 0 {
		if now := time.Now(); now.Sub(c.lastWD) > c.wt/4 {
			c.c.SetWriteDeadline(now.Add(c.wt))
			c.lastWD = now
		}
	}
}

func (c *streamConn) handshake(self uint16, timeout time.Duration) (uint16, error) {
	c.c.SetDeadline(time.Now().Add(timeout))
	peer, err := wire.Handshake(c.c, self)
	c.c.SetDeadline(time.Time{})
	return peer, err
}

func (c *streamConn) recv(max int) (*Msg, error) {
	c.initRead(max)
	n, err := c.fr.Next()
	if err != nil {
		return nil, err
	}
	m := getMsg()
	m.allocBody(n)
	if err := c.fr.ReadPayload(m.Body); err != nil {
		recycle(m)
		return nil, err
	}
	return m, nil
}

func (c *streamConn) initRead(max int) {
	if c.fr == nil {
		c.br = bufio.NewReaderSize(c.c, readBufSize)
		c.fr = wire.NewReader(c.br, c.f, uint64(max))
	}
}

// send writes batch: sendCopied with nothing copied in.
func (c *streamConn) send(batch []*Msg) error { return c.sendCopied(nil, 0, batch) }

// putFrames queues batch's frames for the next flush.
func (c *streamConn) putFrames(batch []*Msg) error {
	for _, m := range batch {
		n := c.f.PutPrefix(c.pfx[:], len(m.Header)+len(m.Body))
		if err := c.put(c.pfx[:n]); err != nil { // copied: prefixes are small
			return err
		}
		if err := c.put(m.Header); err != nil {
			return err
		}
		if err := c.put(m.Body); err != nil {
			return err
		}
	}
	return nil
}

// sendCopied writes batch with pre, frames senders copied in, before
// batch[at].
func (c *streamConn) sendCopied(pre []byte, at int, batch []*Msg) error {
	if c.sc == nil {
		c.sc = make([]byte, 0, scratchSize)
	}
	c.pushDeadline()
	if err := c.putFrames(batch[:at]); err != nil {
		return err
	}
	if len(pre) > 0 {
		c.cut()
		c.iov = append(c.iov, pre)
	}
	if err := c.putFrames(batch[at:]); err != nil {
		return err
	}
	return c.flush()
}

// put queues b for writing: copied into sc if small, referenced if not.
func (c *streamConn) put(b []byte) error {
	if len(b) > copyMaxBytes {
		c.cut()
		c.iov = append(c.iov, b)
		if len(c.iov) >= 512 {
			return c.flush()
		}
		return nil
	}
	if len(c.sc)+len(b) > cap(c.sc) {
		if err := c.flush(); err != nil {
			return err
		}
	}
	c.sc = append(c.sc, b...)
	return nil
}

// cut closes the current run of sc as one iovec.
func (c *streamConn) cut() {
	if len(c.sc) > c.seg {
		c.iov = append(c.iov, c.sc[c.seg:])
		c.seg = len(c.sc)
	}
}

// flush writes everything queued in one vectored write.
func (c *streamConn) flush() error {
	c.cut()
	var err error
	switch len(c.iov) {
	case 0:
	case 1:
		_, err = c.c.Write(c.iov[0])
	default:
		c.bufs = c.iov
		_, err = c.bufs.WriteTo(c.c)
		c.bufs = nil
	}
	clear(c.iov) // drop references to message memory
	c.iov, c.sc, c.seg = c.iov[:0], c.sc[:0], 0
	return err
}

func (c *streamConn) close() { c.c.Close() }

func (c *streamConn) closeWrite() {
	if cw, ok := c.c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

func (c *streamConn) localAddr() string  { return addrString(c.c.LocalAddr()) }
func (c *streamConn) remoteAddr() string { return addrString(c.c.RemoteAddr()) }

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.Network() + "://" + a.String()
}
