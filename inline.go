package ferry

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Inline reads: a receiver reads its own messages.
//
// A pipe's reader goroutine hands each message it reads to a receiver
// waiting on a channel. On a machine with an idle core that hand-off
// wakes a second thread every time (the runtime starts one for the
// goroutine it readied), and a round trip pays it once per side: with
// GOMAXPROCS=1 on both ends a REQ/REP round trip over loopback took half
// the time. So on a socket with one stream pipe, while receivers are
// waiting in RecvWait, the reader goroutine steps aside at a frame
// boundary with nothing buffered, and a waiting receiver takes over
// reading: it blocks in the read itself, is woken by the network poller
// as a bare reader would be, and delivers what arrived through the
// protocol's ordinary Receive, its own message included.
//
// The reading role (Pipe.lst) is the reader's (lendOwned), free for any
// receiver (lendFree), or held by one (lendHeld); only its owner touches
// the connection's read side. Socket.lendp is the pipe whose role is not
// the reader's. A receiver that finds nothing counts itself in parked
// before it looks at the role, and whoever frees the role looks at
// parked after freeing it and then wakes one through Socket.lendc: no
// receiver sleeps while the role is free and unwatched.
//
// The reader takes the role back when asked (lback: the pipe closes, a
// second pipe arrives, a bad prefix the reader reports) and when
// nobody used it for lendCheck: then a socket nobody reads from still
// notices a closed connection. A holder blocked in a read is interrupted
// with a read deadline in the past: on its ctx ending (context.AfterFunc,
// registered once per Done channel, not per call), or when the reader or
// the protocol asks (InterruptInline). It is interrupted only between
// frames, or in a prefix or a frame that fits the read buffer (Peek:
// nothing is consumed); inside a larger frame it clears the interrupt
// and finishes the frame, so the stream stays in step.
//
// A holder never waits for itself: a Deliver that would wait for room
// in a full queue leaves the message to the reader (deferInline).
//
// Sockets that receive through a CopyQueue (PAIR, PULL) wait the same
// way in CopyQueue.waitOne; their holders copy small frames into the
// queue as the reader does (readFrames), and their reader steps aside in
// readCopied. Before a new pipe is admitted, settleLent makes sure a lent
// pipe whose peer has gone is closed first (a one-peer socket would
// refuse the new one).
//
// Handing the role on costs what it saves: a holder that read a request
// and frees the role for the next parked receiver wakes that receiver's
// thread, once per request. A Serve worker whose recent requests were
// handled quickly (keepHint) keeps the role instead while it handles
// the request and replies (lendAway): nobody reads meanwhile, and it
// reads again when it comes back, as a lone worker would. Any receiver
// arriving may take an away role; parked ones are not woken for it. An
// away role is freed when a context closes (InterruptInline), and taken
// back by the reader when asked or after lendCheck unused, which bounds
// what a handler that turns slow can delay.

const (
	lendOwned = iota
	lendFree
	lendHeld
	lendAway // held by a receiver that is away handling what it read

	// lendCheck is how long a freed role may go unused before the reader
	// takes it back.
	lendCheck = 10 * time.Millisecond
)

// lendState is a socket's part of inline reading.
type lendState struct {
	lendp    atomic.Pointer[Pipe]
	lendc    chan struct{} // capacity 1: the role became free (or went back)
	rwaiting atomic.Int32  // receivers in RecvWait
	parked   atomic.Int32  // receivers parked in RecvWait
	npipes   atomic.Int32  // admitted pipes
	streams  atomic.Int32  // admitted stream pipes (they may lend)
	kept     atomic.Uint64 // roles kept by a holder going away (lendAway)
}

// pipeLend is a pipe's part of inline reading.
type pipeLend struct {
	lst   atomic.Int32
	lback atomic.Bool   // the reader wants the role back
	luses atomic.Uint64 // inline reads, ever
	lturn chan struct{} // capacity 1: wakes the reader while it stands aside
	ltime *time.Timer   // the reader's; made at its first step aside
	// The reader's: lrecent, a receiver waits or the last message was
	// delivered while one did; lunused, the reader stood aside for
	// nothing and waits for a message before it does again.
	lrecent, lunused bool

	// inlineIn is set while a holder runs the protocol's Receive: a
	// Deliver to a full queue then leaves the message in lm for the
	// reader, which takes the role back and delivers it, waiting as
	// usual. The holder's alone (lm passes with the role).
	inlineIn bool
	lq       chan<- *Msg
	lm       *Msg

	lmu   sync.Mutex      // guards the fields below
	lin   bool            // a holder is reading
	lcur  <-chan struct{} // the holder's ctx.Done
	lint  bool            // a past read deadline was set to interrupt it
	lreg  <-chan struct{} // the Done channel with an AfterFunc registered
	lstop func() bool
}

var errInlineMore = errors.New("more") // never returned to users

// RecvWait is how a protocol's Recv waits once it found ch empty. It
// returns a value from ch (ok), or ok false and a nil error when the
// caller should look again (it may have read messages on the socket's
// pipe itself, or the role of reading changed hands), or the error
// ending the wait: ctx's, or ErrClosed when done or the socket closes.
// On a ClosingProtocol's socket, done (a context's close channel) must be
// one its Closing closes: the plain wait then has no case of its own for
// the socket's close. shared says receivers share ch (a socket queue): a receiver then does
// not wait on ch while another holds the reading role, so the holder
// keeps what it reads. A protocol using RecvWait must have a Receive
// that does not block when the queue it delivers to was empty, and must
// call InterruptInline when it delivers to a waiting receiver, or closes
// one, from outside Receive.
func RecvWait[T any](ctx context.Context, s *Socket, ch <-chan T, done <-chan struct{}, shared bool) (v T, ok bool, err error) {
	return recvWait(ctx, s, ch, done, shared, false)
}

// RecvWaitOn is RecvWait for a channel that carries the end of the wait
// itself: the protocol puts a value in ch when the receiver's context
// closes, and, as a ClosingProtocol, when the socket closes. A plain
// wait then is one channel receive, with a case for ctx only if it can
// end.
func RecvWaitOn[T any](ctx context.Context, s *Socket, ch <-chan T, shared bool) (v T, ok bool, err error) {
	return recvWait(ctx, s, ch, nil, shared, s.ctxCloser != nil)
}

func recvWait[T any](ctx context.Context, s *Socket, ch <-chan T, done <-chan struct{}, shared, chCloses bool) (v T, ok bool, err error) {
	ls := &s.lend
	if ls.unlendable() {
		// A plain wait, with as few cases as it can: each one costs a
		// channel lock twice per wait, ~0.2 us of an inproc round trip
		// (a nil channel's case costs nothing).
		var closed <-chan struct{} // the socket's close, if done misses it
		if !chCloses {
			if done == nil {
				done = s.closed
			} else if s.ctxCloser == nil {
				closed = s.closed
			}
		} else if ctx.Done() == nil {
			return <-ch, true, nil // ch alone can end the wait
		}
		select {
		case v = <-ch:
			return v, true, nil
		case <-ctx.Done():
			return v, false, CtxErr(ctx)
		case <-done:
			return v, false, ErrClosed
		case <-closed:
			return v, false, ErrClosed
		}
	}
	if isClosed(done) { // not to take the reading role for nobody
		return v, false, ErrClosed
	}
	ls.rwaiting.Add(1)
	defer ls.rwaiting.Add(-1)
	h := hintOf(ctx)
	if p := s.takeRole(ctx); p != nil {
		h.settle(p)
		// Read until something is in ch (for the caller, or, shared, for
		// anyone), or the wait must end; then give the role up.
		p.holdRead(ctx, done, func() bool { return len(ch) > 0 })
		keep := len(ch) > 0 && ctx.Err() == nil && ls.parked.Load() > 0 && h.keeps()
		p.release(keep)
		if keep {
			ls.kept.Add(1)
		}
		if keep && shared && len(ch) > 1 {
			wake(ls.lendc) // more than the holder takes: a parked one looks
		}
		return v, false, nil
	}
	ls.parked.Add(1)
	lp := ls.lendp.Load()
	if lp != nil && lp.lst.Load() == lendFree {
		ls.parked.Add(-1)
		return v, false, nil
	}
	h.settle(nil)
	wch := ch
	if shared && lp != nil {
		wch = nil // the holder delivers to itself first
	}
	select {
	case v = <-wch:
		ls.parked.Add(-1)
		return v, true, nil
	case <-ls.lendc:
		ls.parked.Add(-1)
		if wch == nil && ls.lendp.Load() == nil && ls.parked.Load() > 0 {
			wake(ls.lendc) // the role went back: the others wait on ch again
		}
		return v, false, nil
	case <-ctx.Done():
		err = CtxErr(ctx)
	case <-done:
		err = ErrClosed
	case <-s.closed:
		err = ErrClosed
	}
	ls.parked.Add(-1)
	return v, false, err
}

// unlendable reports that the socket has no pipe that could lend its
// reading role (none admitted, or inproc only): a receiver then waits on
// its channel alone. A stream pipe arriving meanwhile lends only after a
// message went through its reader, which ends such a wait.
func (ls *lendState) unlendable() bool {
	return ls.streams.Load() == 0 && ls.lendp.Load() == nil
}

// ReadsInline reports whether a RecvWait on s may read a pipe itself
// (s has a tcp or ipc pipe, or one still lent). When it reports false a
// protocol may have its receivers wait in their own way (QueueWatcher);
// a wait begun so stays a plain wait if s gains such a pipe meanwhile,
// served by the pipe's reader.
func (s *Socket) ReadsInline() bool { return !s.lend.unlendable() }

// InterruptInline makes a receiver reading on s's pipe stop and look
// again. For protocols that deliver to, or close, a waiting receiver
// from outside Receive.
func (s *Socket) InterruptInline() {
	if p := s.lend.lendp.Load(); p != nil {
		p.interruptHolder(nil)
		// An away holder may be the context closing: the role is free.
		if p.lst.CompareAndSwap(lendAway, lendFree) && s.lend.parked.Load() > 0 {
			wake(s.lend.lendc)
		}
	}
}

// takeRole takes the reading role if it is free, and returns its pipe.
func (s *Socket) takeRole(ctx context.Context) *Pipe {
	p := s.lend.lendp.Load()
	if p == nil || ctx.Err() != nil ||
		!(p.lst.CompareAndSwap(lendFree, lendHeld) || p.lst.CompareAndSwap(lendAway, lendHeld)) {
		return nil
	}
	p.luses.Add(1)
	return p
}

// release ends a holder's turn: the role goes back to the reader if it
// asked, else it is away with the holder (keep), or free and a parked
// receiver is woken to take it.
func (p *Pipe) release(keep bool) {
	ls := &p.s.lend
	if p.lback.Load() {
		p.lst.Store(lendOwned)
		wake(p.lturn)
		return
	}
	st := int32(lendFree)
	if keep {
		st = lendAway
	}
	p.lst.Store(st)
	if p.lback.Load() && p.lst.CompareAndSwap(st, lendOwned) {
		wake(p.lturn)
		return
	}
	if !keep && ls.parked.Load() > 0 {
		wake(ls.lendc)
	}
}

// takeBack gives a free or away role back to the reader.
func (p *Pipe) takeBack() bool {
	return p.lst.CompareAndSwap(lendFree, lendOwned) || p.lst.CompareAndSwap(lendAway, lendOwned)
}

// keepHint is a Serve worker's: whether its recent requests were
// handled quickly, so that it may keep the reading role while it
// handles the next (see lendAway). Only its worker touches it.
type keepHint struct {
	score int           // +1 a quick request, -keepSlow a slow one, in 0..keepRun
	max   time.Duration // keepQuick when the worker started
	judge bool          // the last request was slow: settle judges it
}

type keepKey struct{}

// A worker keeps the role while its score is at least keepRun/2: it
// takes keepRun/2 quick requests to start, and at most one slow request
// in keepSlow+1 to go on, so that a machine's odd stall (a preempted
// thread: a slow request with a trivial handler) does not end it, while
// handlers that are slow even a few times in a hundred never keep it.
// keepQuick (nanoseconds) is how long handling a request and replying
// may take for it to count as quick: 50 us; tests change it.
const (
	keepRun  = 256
	keepSlow = 64
)

var keepQuick atomic.Int64

func init() { keepQuick.Store(int64(50 * time.Microsecond)) }

func newKeepHint() *keepHint { return &keepHint{max: time.Duration(keepQuick.Load())} }

// hintOf returns the keepHint ctx carries, if any.
func hintOf(ctx context.Context) *keepHint {
	h, _ := ctx.Value(keepKey{}).(*keepHint)
	return h
}

// keeps reports whether the worker keeps the role while it handles.
func (h *keepHint) keeps() bool { return h != nil && h.score >= keepRun/2 }

// handled records how long a request took, from its receipt to the
// worker's return for the next. A slow one is judged by settle.
func (h *keepHint) handled(d time.Duration) {
	if d > h.max {
		h.judge = true
	} else if h.score < keepRun {
		h.score++
	}
}

// settle judges a slow request when the worker is back for the next one:
// it counts as slow only if it kept someone waiting, that is if input
// reached the kept pipe p while the worker was away, or if the worker
// finds the role taken (p nil). A slow request nobody waited for (one
// requester waiting for each reply, or a stall of this machine between
// requests) counts for nothing. The worker holds the role: p's buffer
// is its to look at.
func (h *keepHint) settle(p *Pipe) {
	if h == nil || !h.judge {
		return
	}
	h.judged(p == nil || p.sc.br.Buffered() > 0 || p.kernelInput())
}

// judged settles the slow request: waited says someone waited for it.
func (h *keepHint) judged(waited bool) {
	h.judge = false
	if waited {
		h.score = max(0, h.score-keepSlow)
	}
}

// holdRead reads as the role's holder until have reports something to
// take, or the wait must end.
func (p *Pipe) holdRead(ctx context.Context, done <-chan struct{}, have func() bool) {
	for {
		p.readStep(ctx)
		if have() || p.lback.Load() || ctx.Err() != nil || isClosed(done) || isClosed(p.s.closed) {
			return
		}
	}
}

// readStep is a holder's read: it waits for the next frame and delivers
// every whole frame buffered, unless the next one must be read the
// ordinary way (then it asks the reader to take the role back).
func (p *Pipe) readStep(ctx context.Context) {
	if isClosed(p.closing) {
		p.lback.Store(true)
		return
	}
	done := ctx.Done()
	p.armInterrupt(ctx, done)
	err := p.readFrames()
	interrupted := p.disarmInterrupt()
	switch {
	case err == nil || err == errInlineMore:
	case interrupted && errors.Is(err, os.ErrDeadlineExceeded):
	default:
		p.closeWith(readReason(err), err)
		p.lback.Store(true)
	}
}

// readFrames reads whole frames that fit the read buffer and delivers
// them, after waiting for the first. errInlineMore: the next frame is
// for the reader (it has been asked to take the role back).
func (p *Pipe) readFrames() error {
	c := p.sc
	max := p.s.cfg.RecvMaxSize
	ps := c.f.PrefixSize()
	for n := 0; ; n++ {
		if n > 0 && c.br.Buffered() < ps {
			return nil
		}
		pfx, err := c.br.Peek(ps)
		if err != nil {
			return err
		}
		size, err := c.f.ParsePrefix(pfx, uint64(max))
		if err != nil {
			p.lback.Store(true) // the reader reports it
			return errInlineMore
		}
		if ps+size > c.br.Size() { // larger than the buffer: read as it comes
			if n > 0 {
				return nil
			}
			m, err := p.readLarge(size)
			if err != nil {
				return err
			}
			p.deliverInline(m)
			return nil
		}
		if n > 0 && c.br.Buffered() < ps+size {
			return nil
		}
		if _, err := c.br.Peek(ps + size); err != nil {
			return midFrame(err)
		}
		if p.cq != nil && size <= CopyRecvMax {
			k, _, why := c.copyIn(p, p.cq, p.cr, uint64(max))
			p.ctr.inline.Add(uint64(k))
			switch {
			case why == copyClosed:
				p.lback.Store(true)
				return errInlineMore
			case why != copyNot || k > 0:
				return nil // the next step goes on
			}
			// the frame at the head goes through Receive
		}
		m, err := c.recv(max) // buffered whole: never waits
		if err != nil {
			return err
		}
		p.deliverInline(m)
		if p.lback.Load() || isClosed(p.closing) {
			p.lback.Store(true)
			return errInlineMore
		}
	}
}

// readLarge reads a frame whose prefix is buffered and whose payload is
// larger than the read buffer. Once it has begun it finishes the frame:
// an interrupt (a past read deadline) is cleared and the read goes on,
// so the stream stays in step; the caller looks at its ctx afterwards.
func (p *Pipe) readLarge(size int) (*Msg, error) {
	c := p.sc
	if _, err := c.fr.Next(); err != nil { // buffered: never waits
		return nil, err
	}
	m := getMsg()
	m.allocBody(size)
	for k := 0; k < size; {
		n, err := c.br.Read(m.Body[k:])
		k += n
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && p.clearInterrupt() {
				continue
			}
			recycle(m)
			return nil, midFrame(err)
		}
	}
	return m, nil
}

// midFrame is err for a stream that ended inside a frame.
func midFrame(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// deferInline keeps a message a holder could not deliver without
// waiting, for the reader.
func (p *Pipe) deferInline(q chan<- *Msg, m *Msg) {
	p.lq, p.lm = q, m
	p.lback.Store(true)
}

// deliverInline is deliver for a holder.
func (p *Pipe) deliverInline(m *Msg) {
	p.ctr.inline.Add(1)
	p.inlineIn = true
	p.deliver(m)
	p.inlineIn = false
}

// deliver hands a message read on p to the protocol.
func (p *Pipe) deliver(m *Msg) {
	m.pipe = p
	p.ctr.msgsIn.Add(1)
	p.ctr.bytesIn.Add(uint64(len(m.Body)))
	p.s.proto.Receive(p, m)
}

// armInterrupt records the holder's ctx, so that its end interrupts the
// read. The AfterFunc is registered once per Done channel.
func (p *Pipe) armInterrupt(ctx context.Context, done <-chan struct{}) {
	p.lmu.Lock()
	p.lin, p.lcur = true, done
	if done != nil && p.lreg != done {
		if p.lstop != nil {
			p.lstop()
		}
		p.lreg = done
		p.lstop = context.AfterFunc(ctx, func() { p.interruptHolder(done) })
	}
	p.lmu.Unlock()
}

// disarmInterrupt ends the holder's read and reports whether it was
// interrupted; the read deadline is cleared.
func (p *Pipe) disarmInterrupt() bool {
	p.lmu.Lock()
	defer p.lmu.Unlock()
	p.lin, p.lcur = false, nil
	return p.clearLocked()
}

// clearInterrupt clears an interrupt that came while a holder was in a
// frame it must finish, and reports whether there was one.
func (p *Pipe) clearInterrupt() bool {
	p.lmu.Lock()
	defer p.lmu.Unlock()
	return p.clearLocked()
}

// clearLocked clears the interrupt's read deadline, if one was set, and
// reports whether it was. Under lmu.
func (p *Pipe) clearLocked() bool {
	if !p.lint {
		return false
	}
	p.lint = false
	p.sc.c.SetReadDeadline(time.Time{})
	return true
}

// interruptHolder sets a read deadline in the past if a holder is
// reading (with done as its ctx's Done, unless done is nil).
func (p *Pipe) interruptHolder(done <-chan struct{}) {
	p.lmu.Lock()
	if p.lin && (done == nil || p.lcur == done) && !p.lint {
		p.lint = true
		p.sc.c.SetReadDeadline(time.Unix(1, 0))
	}
	p.lmu.Unlock()
}

// dropInterrupt forgets the AfterFunc registration. The reader's, as the
// pipe closes.
func (p *Pipe) dropInterrupt() {
	p.lmu.Lock()
	if p.lstop != nil {
		p.lstop()
		p.lstop, p.lreg = nil, nil
	}
	p.lmu.Unlock()
}

// delivered notes, for the reader, that it delivers a message: lrecent
// if a receiver waits for it.
func (p *Pipe) delivered() {
	p.lrecent, p.lunused = p.s.lend.rwaiting.Load() > 0, false
}

// mayLend is the reader's step aside, before a read that would wait,
// if canLend; it reports whether it stood aside (the reader then looks
// again at what it was doing).
func (p *Pipe) mayLend() bool {
	if isClosed(p.closing) {
		return false // the read that follows fails and ends the reader
	}
	p.lrecent = p.lrecent || (!p.lunused && p.s.lend.rwaiting.Load() > 0)
	if !p.canLend(p.lrecent) {
		return false
	}
	p.lunused = p.stepAside()
	p.lrecent = false
	return true
}

// canLend reports whether the reader should step aside now (a stream
// pipe, read set up): a tcp or ipc connection with
// nothing buffered, the socket's only pipe, and recent: a
// receiver waits, or the last message went to a waiting receiver (which
// may have taken it and left already: it is likely back soon, and if
// not the reader takes reading back after lendCheck).
func (p *Pipe) canLend(recent bool) bool {
	c := p.sc
	ls := &p.s.lend
	return c.rc != nil && c.br.Buffered() == 0 &&
		recent && ls.npipes.Load() == 1 && !p.lback.Load()
}

// stepAside is the reader's wait while receivers read. It returns once
// the role is back with the reader, reporting whether it went unused
// for lendCheck (then the reader reads until a message comes, rather
// than stepping aside again at once for receivers that wait on).
func (p *Pipe) stepAside() (idle bool) {
	ls := &p.s.lend
	if p.lturn == nil {
		p.lturn = make(chan struct{}, 1)
		p.ltime = time.NewTimer(lendCheck)
	} else {
		p.ltime.Reset(lendCheck)
	}
	uses := p.luses.Load() // before the role is free: a take right away counts
	ls.lendp.Store(p)
	p.lst.Store(lendFree)
	if ls.parked.Load() > 0 {
		wake(ls.lendc)
	}
	for p.lst.Load() != lendOwned {
		timedOut := false
		select {
		case <-p.lturn:
		case <-p.ltime.C:
			timedOut = true
		case <-p.closing:
		}
		if p.lst.Load() == lendOwned {
			break
		}
		if isClosed(p.closing) || p.lback.Load() || (timedOut && p.luses.Load() == uses) {
			idle = timedOut && p.luses.Load() == uses
			p.lback.Store(true)
			if p.takeBack() {
				break
			}
			p.interruptHolder(nil) // it gives the role back when it is done
			continue
		}
		if timedOut {
			uses = p.luses.Load()
			p.ltime.Reset(lendCheck)
		}
	}
	p.ltime.Stop()
	ls.lendp.CompareAndSwap(p, nil)
	p.lback.Store(false)
	if p.lm != nil { // a holder's message that had to wait
		q, m := p.lq, p.lm
		p.lq, p.lm = nil, nil
		Deliver(p, q, m)
	}
	if ls.parked.Load() > 0 {
		wake(ls.lendc) // those waiting for the role wait on their channels again
	}
	return idle
}

// settleLent runs as p is about to be admitted: pipes on their way out
// go first, so that a one-peer protocol (PAIR) does not refuse p, and
// with it the message p's peer may already have sent, for a peer that has
// gone. A pipe already closing is waited for, and so is one whose peer
// has gone (probed: its reader may not have seen the end yet, and a lent
// pipe is read only while receivers wait, so nobody may be reading it:
// its reader then takes reading back, delivers what is left and closes
// it). The wait is bounded (a full queue nobody takes from may hold an
// old reader). A socket with two peers or more is left alone.
func (p *Pipe) settleLent() {
	s := p.s
	if s.lend.npipes.Load() > 1 {
		return // a socket of many peers: nothing to settle, and no scan of them all
	}
	var old []*Pipe // admitted before p: at most a few
	s.mu.Lock()
	for q := range s.pipes {
		if q != p && q.admitted.Load() {
			old = append(old, q)
		}
	}
	s.mu.Unlock()
	lp := s.lend.lendp.Load()
	var wait []<-chan struct{}
	for _, q := range old { // probed outside s.mu: a system call each
		if !isClosed(q.closing) {
			if !q.peerGone() {
				continue
			}
			if q == lp {
				q.reclaim()
			}
		}
		wait = append(wait, q.done)
	}
	if len(wait) == 0 {
		return
	}
	t := time.NewTimer(settleMax)
	defer t.Stop()
	for _, d := range wait {
		select {
		case <-d:
		case <-p.closing:
			return
		case <-t.C:
			return
		}
	}
}

// settleMax bounds settleLent's wait.
const settleMax = 100 * time.Millisecond

// reclaim asks a pipe's reader to take its role back (a second pipe
// arrived: a holder waiting on one pipe would miss the other's).
func (p *Pipe) reclaim() {
	p.lback.Store(true)
	if p.lturn != nil {
		wake(p.lturn)
	}
	p.interruptHolder(nil)
}
