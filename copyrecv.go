package ferry

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
)

// Copied receives: a stream pipe's reader copies small frames straight
// from its read buffer into the socket's CopyQueue, many at a time under
// one lock, and a receiver copies one out into its Msg. A stream of small
// messages then costs no channel hand-off, no wakeup and no message
// buffer per message, on either side.
//
// Order: a reader copies only while the protocol's channel is empty, and
// hands a message to the channel (Receive, Deliver) only once the
// CopyQueue is empty; receivers take from the CopyQueue before the
// channel. So nothing in the CopyQueue is ever newer than what one reader
// put in the channel, and a message from one pipe never overtakes an
// older one from the same pipe.
const (
	// CopyRecvMax is the largest frame (header and body) a reader copies.
	CopyRecvMax   = 1024
	copyQueueMsgs = 512
)

// CopyQueue holds small messages copied in by pipe readers, ahead of a
// protocol's channel queue. It holds at most as many messages as the
// channel does (and at most copyQueueMsgs, in copyBufSize bytes), and
// its buffer only while messages are in it. Use NewCopyQueue.
type CopyQueue struct {
	ch     chan *Msg     // the protocol's queue, behind this one
	notify chan struct{} // wakes a receiver waiting for a message
	maxN   int

	// n counts the entries queued, for checks that take no lock; waiters
	// counts receivers about to wait on notify. A receiver adds itself
	// then reads n, a reader stores n then reads waiters (both atomic),
	// so one of them sees the other and no wake-up is lost.
	n       atomic.Int32
	waiters atomic.Int32
	held    atomic.Bool // buf is set: a waiting receiver hands it back

	// plain counts receivers in waitPlain, which wait on ch (and ctx)
	// alone; shut is set when the socket closes. See kickPlain. shut,
	// not the socket's closed channel: a waiter counts itself in plain
	// and then looks at shut, Close sets shut and then looks at plain,
	// and only atomics on both sides make sure one sees the other.
	plain atomic.Int32
	shut  atomic.Bool

	mu   sync.Mutex
	buf  *copyBuf // header and body bytes of the entries, back to back
	ents []copyEnt
	head int // next entry to take
	r    int // its offset in buf
	// readers waiting for room or an empty queue, each on its pipe's
	// room channel: woken all at once, each checks its own condition
	rwait  []*Pipe
	closed bool
}

type copyEnt struct {
	p      *Pipe
	hn, bn uint16
}

// NewCopyQueue returns a CopyQueue in front of ch, the channel the
// protocol's Receive delivers to and its Recv takes from.
func NewCopyQueue(ch chan *Msg) *CopyQueue {
	return &CopyQueue{
		ch: ch, notify: make(chan struct{}, 1),
		maxN: max(1, min(cap(ch), copyQueueMsgs)),
	}
}

// CopyReceiver is implemented by protocols whose small incoming messages
// may skip Receive and be copied into a CopyQueue by the pipe's reader.
// Socket.Recv, RecvMsg and RecvBytes take from the queue first; the
// protocol's Recv must take with CopyQueue.Take, and its Close must call
// CopyQueue.Close.
type CopyReceiver interface {
	// CopyQueue returns the queue (nil for none), the same one for the
	// socket's life.
	CopyQueue() *CopyQueue
	// CopyFrame reports what to queue for payload b (header and body as
	// they arrived on p): the header and body of the message Receive
	// would have delivered, or ok false to leave the frame to Receive
	// (for errors, drops, or anything else). It must not keep b.
	CopyFrame(p *Pipe, b []byte) (hdr, body []byte, ok bool)
}

func (q *CopyQueue) empty() bool { return q.head == len(q.ents) }

// recount publishes the number of entries in n. Under mu.
func (q *CopyQueue) recount() { q.n.Store(int32(len(q.ents) - q.head)) }

// put appends one message and reports whether there was room. Under mu.
func (q *CopyQueue) put(p *Pipe, hdr, body []byte) bool {
	n := len(hdr) + len(body)
	if q.buf == nil {
		q.buf = getCopyBuf()
		q.held.Store(true)
		if q.ents == nil {
			q.ents = make([]copyEnt, 0, q.maxN)
		}
	}
	if len(q.ents) == q.maxN || len(q.buf.b)+n > cap(q.buf.b) {
		if len(q.ents)-q.head == q.maxN || len(q.buf.b)-q.r+n > cap(q.buf.b) {
			return false
		}
		q.compact()
	}
	q.buf.b = append(append(q.buf.b, hdr...), body...)
	q.ents = append(q.ents, copyEnt{p: p, hn: uint16(len(hdr)), bn: uint16(len(body))})
	return true
}

// halfFree reports whether at least half the queue is free: a reader
// that found it full waits for that, so compacting is worth it. Under mu.
func (q *CopyQueue) halfFree() bool {
	return q.buf == nil || (len(q.ents)-q.head <= q.maxN/2 && len(q.buf.b)-q.r <= copyBufSize/2)
}

// compact moves the entries not yet taken to the front. Under mu.
func (q *CopyQueue) compact() {
	k := copy(q.ents, q.ents[q.head:])
	clear(q.ents[k:]) // no Pipe stays referenced from a free slot
	q.ents = q.ents[:k]
	q.head = 0
	q.buf.b = q.buf.b[:copy(q.buf.b, q.buf.b[q.r:])]
	q.r = 0
}

// pop removes the oldest entry and wakes a reader waiting for room once
// there is some. Under mu.
func (q *CopyQueue) pop() {
	e := &q.ents[q.head]
	q.r += int(e.hn) + int(e.bn)
	*e = copyEnt{}
	q.head++
	if q.empty() { // start again at the front
		q.ents, q.head, q.r = q.ents[:0], 0, 0
		q.buf.b = q.buf.b[:0]
	}
	q.recount()
	if len(q.rwait) > 0 && q.halfFree() {
		q.wakeReaders()
	}
	if q.waiters.Load() > 0 && !q.empty() { // pass the turn on
		wake(q.notify)
	}
}

// wakeReaders wakes every reader waiting in waitFor. Under mu.
func (q *CopyQueue) wakeReaders() {
	for _, p := range q.rwait {
		wake(p.room)
	}
	clear(q.rwait) // no Pipe stays referenced
	q.rwait = q.rwait[:0]
}

func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// take copies the oldest message into m and reports whether there was
// one.
func (q *CopyQueue) take(m *Msg) bool {
	if q.n.Load() == 0 {
		return false
	}
	q.mu.Lock()
	if q.empty() {
		q.mu.Unlock()
		return false
	}
	e := &q.ents[q.head]
	h := q.buf.b[q.r : q.r+int(e.hn)]
	b := q.buf.b[q.r+int(e.hn) : q.r+int(e.hn)+int(e.bn)]
	if b := m.blk; b != nil && (b.gen.Load() != m.gen || !m.bodyAtStart()) {
		// A stale handle (its block is another message's now) or a body
		// the caller pointed elsewhere: copy into fresh storage, as
		// RecvMsg's ordinary path replaces the storage.
		m.dropBlock()
		m.Body = nil
	}
	m.state.Store(msgLive)
	m.clearTrace()
	if len(h) == 0 {
		m.Header = m.Header[:0]
	} else {
		m.SetHeader(h)
	}
	m.SetBody(b)
	m.pipe = e.p
	q.pop()
	q.mu.Unlock()
	return true
}

// takeBytes appends the oldest message's body to dst, if there is one.
func (q *CopyQueue) takeBytes(dst []byte) ([]byte, bool) {
	if q.n.Load() == 0 {
		return dst, false
	}
	q.mu.Lock()
	if q.empty() {
		q.mu.Unlock()
		return dst, false
	}
	e := &q.ents[q.head]
	off := q.r + int(e.hn)
	dst = append(dst, q.buf.b[off:off+int(e.bn)]...)
	q.pop()
	q.mu.Unlock()
	return dst, true
}

// wait counts the caller as a receiver about to wait for a message
// (undo with unwait), unless one arrived meanwhile: then it reports false
// and counts nothing. The queue, empty, hands its buffer back to the
// pool: an idle socket holds none.
func (q *CopyQueue) wait() bool {
	q.waiters.Add(1)
	if q.n.Load() != 0 {
		q.waiters.Add(-1)
		return false
	}
	q.idle()
	return true
}

// idle hands the buffer back to the pool if the queue is empty and no
// reader waits for room: an idle socket holds none. For a receiver about
// to wait.
func (q *CopyQueue) idle() {
	if q.held.Load() {
		q.mu.Lock()
		if q.buf != nil && q.empty() && len(q.rwait) == 0 {
			q.release()
		}
		q.mu.Unlock()
	}
}

// release hands the empty queue's buffer back to the pool. Under mu.
func (q *CopyQueue) release() {
	putCopyBuf(q.buf)
	q.buf = nil
	q.held.Store(false)
	q.ents, q.head, q.r = q.ents[:0], 0, 0
}

func (q *CopyQueue) unwait() { q.waiters.Add(-1) }

// Take returns the next message, from the queue or else from its
// channel, as the Take function does: a message already queued wins over
// a ctx that has ended. For a CopyReceiver's Recv. With the queue empty
// (inproc, large messages) it costs what Take does: no lock, no Msg.
func (q *CopyQueue) Take(ctx context.Context, s *Socket, done <-chan struct{}) (*Msg, error) {
	for {
		if q.n.Load() != 0 {
			m := getMsg()
			if q.take(m) {
				return m, nil
			}
			msgPool.Put(m)
		}
		select {
		case im := <-q.ch:
			if im != nil {
				return im, nil
			}
			q.passOn(s)
			continue
		default:
		}
		var im *Msg
		var ok bool
		var err error
		if s.lend.unlendable() {
			im, ok, err = q.waitPlain(ctx, s, done)
		} else {
			im, ok, err = q.waitOne(ctx, s, done)
		}
		if err != nil {
			return nil, err
		}
		if ok {
			return im, nil
		}
	}
}

// waitPlain is Take's wait on a socket with nothing to lend (inproc):
// no inline-read bookkeeping, and no case but ch's and ctx's (done is nil
// for every protocol but might not be), each case costing a channel lock
// twice per wait: with notify and the socket's close among them an inproc
// PAIR round trip took 10% longer. The two events that would have ended
// the wait through them put a nil *Msg in ch instead (kickPlain). ok
// false and no error: look again.
func (q *CopyQueue) waitPlain(ctx context.Context, s *Socket, done <-chan struct{}) (im *Msg, ok bool, err error) {
	q.plain.Add(1)
	// Looked at after counting in plain, as kickPlain's callers change
	// them before looking at plain: one of the two sees the other.
	if q.shut.Load() {
		q.plain.Add(-1)
		return nil, false, ErrClosed
	}
	if q.n.Load() != 0 || !s.lend.unlendable() {
		q.plain.Add(-1)
		return nil, false, nil
	}
	q.idle()
	select {
	case im = <-q.ch:
	case <-ctx.Done():
		err = ctxErr(ctx)
	case <-done:
		err = ErrClosed
	}
	q.plain.Add(-1)
	if err != nil {
		return nil, false, err
	}
	if im == nil {
		q.passOn(s)
		return nil, false, nil
	}
	return im, true, nil
}

// kickPlain ends every plain wait (waitPlain) once something changed that
// such a wait would miss: the socket closed (shut is set first), or a
// stream pipe was admitted (counted in Socket.lend.streams first), whose
// reader may copy into the queue and wake notify, which plain waits do
// not watch. It puts a nil *Msg in ch if anyone waits plain; whoever
// takes it from ch looks again and passes it on (passOn). A nil that
// finds ch full is not needed: a waiter then finds a message at once.
func (q *CopyQueue) kickPlain() {
	if q.plain.Load() > 0 {
		select {
		case q.ch <- nil:
		default:
		}
	}
}

// passOn hands a kick taken from ch to the next plain waiter while the
// state that caused it lasts: the socket is closed, a stream pipe is
// admitted, or copies are queued. None of these lets a waiter wait plain
// again, so a kick cannot circle between waiters. A kick sent while
// nobody was parked stays in ch until a Take takes it.
func (q *CopyQueue) passOn(s *Socket) {
	if q.shut.Load() || q.n.Load() != 0 || !s.lend.unlendable() {
		q.kickPlain()
	}
}

// waitOne is Take's wait, RecvWait's for a copy queue and its channel:
// it reads on the socket's pipe itself while it holds the reading role
// (inline reads), else waits. ok false and no error: look again.
func (q *CopyQueue) waitOne(ctx context.Context, s *Socket, done <-chan struct{}) (im *Msg, ok bool, err error) {
	ls := &s.lend
	ls.rwaiting.Add(1)
	defer ls.rwaiting.Add(-1)
	if p := s.takeRole(ctx); p != nil {
		p.holdRead(ctx, done, func() bool { return q.n.Load() != 0 || len(q.ch) > 0 })
		p.release(false)
		return nil, false, nil
	}
	if !q.wait() {
		return nil, false, nil
	}
	defer q.unwait()
	ls.parked.Add(1)
	defer ls.parked.Add(-1)
	lp := ls.lendp.Load()
	if lp != nil && lp.lst.Load() == lendFree {
		return nil, false, nil
	}
	ch, notify := q.ch, q.notify
	if lp != nil {
		ch, notify = nil, nil // the holder takes what it reads first
	}
	select {
	case im = <-ch:
		if im == nil { // a kick for plain waiters
			q.passOn(s)
			return nil, false, nil
		}
		return im, true, nil
	case <-notify:
		return nil, false, nil
	case <-ls.lendc:
		if lp != nil && ls.lendp.Load() == nil && ls.parked.Load() > 1 {
			wake(ls.lendc) // the role went back: the others wait on the queue again
		}
		return nil, false, nil
	case <-ctx.Done():
		return nil, false, ctxErr(ctx)
	case <-done:
		return nil, false, ErrClosed
	case <-s.closed:
		return nil, false, ErrClosed
	}
}

// Close empties the queue and refuses further copies. For
// Protocol.Close.
func (q *CopyQueue) Close() {
	q.mu.Lock()
	q.closed = true
	clear(q.ents)
	q.ents, q.head, q.r = nil, 0, 0
	putCopyBuf(q.buf)
	q.buf = nil
	q.held.Store(false)
	q.recount()
	q.wakeReaders()
	q.mu.Unlock()
}

// waitFor waits, for a reader of p, until the queue is empty (all set)
// or has room, and reports false if p or the socket closed first.
func (q *CopyQueue) waitFor(p *Pipe, all bool) bool {
	for {
		q.mu.Lock()
		if q.closed || q.empty() || (!all && q.halfFree()) {
			q.mu.Unlock()
			return true
		}
		if p.room == nil { // once per pipe: no allocation per wait
			p.room = make(chan struct{}, 1)
		}
		q.rwait = append(q.rwait, p)
		q.mu.Unlock()
		select {
		case <-p.room: // woken: no longer in rwait; a stale token only loops once more
		case <-p.closing:
		case <-p.s.closed:
		}
		q.mu.Lock()
		if i := slices.Index(q.rwait, p); i >= 0 { // gave up waiting
			q.rwait = slices.Delete(q.rwait, i, i+1)
		}
		q.mu.Unlock()
		select {
		case <-p.closing:
			return false
		case <-p.s.closed:
			return false
		default:
		}
	}
}

// copy results
const (
	copyDone   = iota // copied all the reader had whole; read more
	copyFull          // the queue has no room
	copyNot           // the next frame must go through Receive
	copyClosed        // the queue is closed
)

// copyIn copies into q every small frame the reader's buffer holds
// whole, and reports how many messages and payload bytes it copied and
// why it stopped.
func (c *streamConn) copyIn(p *Pipe, q *CopyQueue, cr CopyReceiver, max uint64) (n int, bytes uint64, why int) {
	ps := c.f.PrefixSize()
	q.mu.Lock()
	switch {
	case q.closed:
		why = copyClosed
	case len(q.ch) > 0:
		why = copyNot
	}
	for why == copyDone {
		avail := c.br.Buffered()
		if avail < ps {
			break
		}
		pfx, _ := c.br.Peek(ps)
		size, err := c.f.ParsePrefix(pfx, max)
		if err != nil || size > CopyRecvMax {
			why = copyNot
			break
		}
		if avail < ps+size {
			break
		}
		fr, _ := c.br.Peek(ps + size)
		hdr, body, ok := cr.CopyFrame(p, fr[ps:])
		if !ok {
			why = copyNot
			break
		}
		if !q.put(p, hdr, body) {
			why = copyFull
			break
		}
		c.br.Discard(ps + size)
		n++
		bytes += uint64(size)
	}
	if n > 0 {
		// Counted before receivers can see them: a receiver that has
		// taken the last message reads Stats that include it.
		p.ctr.msgsIn.Add(uint64(n))
		p.ctr.bytesIn.Add(bytes)
		p.ctr.copiedIn.Add(uint64(n))
		q.recount()
		if q.waiters.Load() > 0 {
			wake(q.notify)
		}
	}
	q.mu.Unlock()
	return n, bytes, why
}

// readCopied is the reader's loop step for a pipe with a CopyQueue: it
// copies frames in until the next one must be read the ordinary way
// (too large, refused by the protocol, the channel holds messages, the
// stream failed: the ordinary read then reports why, or p is closing).
func (p *Pipe) readCopied(max int) {
	c := p.sc
	c.initRead(max)
	ps := c.f.PrefixSize()
	for {
		if c.br.Buffered() == 0 && p.mayLend() {
			continue // receivers read meanwhile
		}
		pfx, err := c.br.Peek(ps) // waits for at least a prefix
		if err != nil {
			return
		}
		size, err := c.f.ParsePrefix(pfx, uint64(max))
		if err != nil {
			return
		}
		if size <= CopyRecvMax {
			if _, err := c.br.Peek(ps + size); err != nil { // the whole frame
				return
			}
		}
		n, _, why := c.copyIn(p, p.cq, p.cr, uint64(max)) // counted there
		if n > 0 {
			p.delivered()
		}
		switch why {
		case copyFull:
			if !p.cq.waitFor(p, false) {
				return
			}
		case copyNot:
			p.cq.waitFor(p, true) // this pipe's copies go first
			return
		case copyClosed:
			return
		}
	}
}
