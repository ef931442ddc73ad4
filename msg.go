package ferry

import (
	"encoding/binary"
	"math/bits"
	"sync"
	"sync/atomic"
	"weak"
)

// Msg is a message: a protocol header and a body.
//
// Ownership is explicit. A Msg has one owner at a time:
//
//   - A Send that succeeds takes the content and leaves the handle empty;
//     the caller may fill it again (SetBody) and send it again, which is
//     how steady-state sending allocates nothing. A Send that fails leaves
//     the content with the caller.
//   - Recv hands over a new Msg; RecvMsg fills one the caller already has.
//   - Free gives the buffer back to the pool. Free is idempotent: a second
//     Free, a Free after a successful Send, or a Free through a stale copy
//     of the handle never returns a buffer that someone else now holds,
//     because every pooled buffer carries a generation that each release
//     bumps with a compare-and-swap.
//
// Set FERRY_DEBUG=msg in the environment to make every misuse (double
// free, free after send, use or send after free) panic with the stack of
// the earlier call and of the current one.
//
// The zero Msg is an empty, usable message. Do not copy a Msg value; pass
// *Msg.
type Msg struct {
	// Header is the protocol header. Cooked sockets manage it; raw
	// sockets hand it to the caller (pipe id and backtrace for REQ/REP).
	Header []byte
	// Body is the payload.
	Body []byte

	blk   *block        // pooled storage Body (and a received Header) live in; nil if none
	gen   uint32        // blk's generation when this handle acquired it
	state atomic.Uint32 // msgLive, msgFreed or msgSent
	pipe  *Pipe         // pipe the message arrived on; nil for locally built ones
	qseq  uint64        // send stamp (Socket.qseq) of a queued send, for copied sends' order
	dbg   atomic.Pointer[misuseTrace]
	hbuf  [64]byte // backing for headers built by protocols
	_     noCopy
}

const (
	msgLive  = iota // holds content (maybe none) and may be used
	msgFreed        // Free was called
	msgSent         // a successful Send took the content
)

// noCopy makes go vet's copylocks check flag copies of Msg.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}

// Size classes for pooled buffers: powers of two from 64 B to 4 MiB.
// Larger buffers are allocated exactly and left to the garbage collector.
const (
	minClassShift = 6
	maxClassShift = 22
	numClasses    = maxClassShift - minClassShift + 1
)

// block is a pooled buffer. gen changes on every release; a release that
// names a stale generation does nothing. That is what makes Free safe
// against double release and stale handles.
type block struct {
	gen atomic.Uint32
	// refs counts the holders beyond the first: fan-out copies that
	// share the block (ShareMsg). Each holder lets go once; the last one
	// releases the block. Nobody writes to a shared block.
	refs  atomic.Int32
	class int8 // -1: not pooled
	buf   []byte
}

var blockPools [numClasses]sync.Pool

// Large blocks (lifoMinShift and up) are reused last freed, first taken,
// from a short stack per class in front of the pool: a stream of large
// messages then cycles through a few blocks that are still in the
// processor caches. sync.Pool alone hands a block freed on another
// processor (a receiver's, a writer's) out oldest first, so a stream
// went through every block it had ever used, each one cold: reading
// 64 KiB frames into them cost the reader 40% more than reading into
// one buffer. A stack holds at most lifoBytes, through weak pointers: a
// block that waits there when the garbage collector runs is freed, so
// memory held by a burst comes back at least as soon as from sync.Pool.
const (
	lifoMinShift = 14 // 16 KiB
	lifoBytes    = 1 << 20
)

type blockStack struct {
	mu sync.Mutex
	s  []weak.Pointer[block]
}

var blockStacks [numClasses]blockStack

func stackOf(c int) *blockStack {
	if c+minClassShift < lifoMinShift {
		return nil
	}
	return &blockStacks[c]
}

func (st *blockStack) pop() *block {
	st.mu.Lock()
	defer st.mu.Unlock()
	for n := len(st.s); n > 0; n-- {
		b := st.s[n-1].Value()
		st.s = st.s[:n-1]
		if b != nil {
			return b
		}
	}
	return nil
}

func (st *blockStack) push(b *block) bool {
	st.mu.Lock()
	ok := len(st.s)*len(b.buf) < lifoBytes
	if ok {
		st.s = append(st.s, weak.Make(b))
	}
	st.mu.Unlock()
	return ok
}

func classOf(n int) int {
	if n <= 1<<minClassShift {
		return 0
	}
	c := bits.Len(uint(n-1)) - minClassShift
	if c >= numClasses {
		return -1
	}
	return c
}

// getBlock returns a block of capacity >= n and its current generation.
func getBlock(n int) (*block, uint32) {
	c := classOf(n)
	if c < 0 {
		b := &block{class: -1, buf: make([]byte, n)}
		return b, b.gen.Load()
	}
	if st := stackOf(c); st != nil {
		if b := st.pop(); b != nil {
			return b, b.gen.Load()
		}
	}
	if v := blockPools[c].Get(); v != nil {
		b := v.(*block)
		return b, b.gen.Load()
	}
	b := &block{class: int8(c), buf: make([]byte, 1<<(c+minClassShift))}
	return b, 0
}

// release gives the block back if gen is still its generation. It reports
// whether this call released it.
func (b *block) release(gen uint32) bool {
	for {
		r := b.refs.Load()
		if r == 0 {
			break // the only holder: release it
		}
		if b.gen.Load() != gen {
			return false // a stale handle: it holds nothing
		}
		if b.refs.CompareAndSwap(r, r-1) {
			return true // others still hold it
		}
	}
	if !b.gen.CompareAndSwap(gen, gen+1) {
		return false
	}
	if b.class >= 0 {
		if st := stackOf(int(b.class)); st == nil || !st.push(b) {
			blockPools[b.class].Put(b)
		}
	}
	return true
}

// NewMsg returns an empty message whose body has room for capacity bytes
// from the buffer pool.
func NewMsg(capacity int) *Msg {
	m := new(Msg)
	m.Grow(capacity)
	return m
}

// Grow makes sure Body can take n more bytes without reallocating,
// moving the content into pooled storage if needed.
func (m *Msg) Grow(n int) {
	m.revive()
	need := len(m.Body) + n
	if cap(m.Body) >= need && m.blk != nil {
		return
	}
	b, gen, off := getBodyBlock(need)
	body := append(b.buf[off:off], m.Body...)
	m.dropBlock()
	m.blk, m.gen, m.Body = b, gen, body
}

// SetBody replaces the body with a copy of b, in pooled storage.
func (m *Msg) SetBody(b []byte) {
	m.revive()
	if m.blk == nil || cap(m.Body) < len(b) || !m.bodyAtStart() {
		m.Body = m.Body[:0]
		m.Grow(len(b))
	}
	m.Body = append(m.Body[:0], b...)
}

// SetBodyShared makes b the body without copying it. b is lent, not
// handed over: ferry only reads it, never writes to it, and never passes
// it to a receiver (a peer in this process, over inproc, gets a copy).
// It may read b until the message has been written or dropped, which can
// be after Send returns, so b must not change while a socket it was sent
// on is open; once Close or Shutdown has returned, no socket refers to it.
// This sends one payload many times with no copy per send: call
// SetBodyShared(b) before each Send where SetBody would copy b.
//
// Growing or refilling the body (Grow, SetBody, Reset, RecvMsg into m)
// leaves b alone: the message takes pooled storage of its own.
func (m *Msg) SetBodyShared(b []byte) {
	m.revive()
	m.dropBlock()
	m.Body = b[:len(b):len(b)]
}

// SwapBody exchanges the bodies of m and o, storage included, without
// copying. A Serve handler answers with the request's body, changed in
// place or not, by reply.SwapBody(req), as an NNG server sends back the
// message it received; the request then holds the reply's old storage,
// which its next receive reuses or lets go. Headers stay. A lent body
// (SetBodyShared) moves as lent. Both must be the caller's, neither in
// use by another goroutine; a sent or freed handle becomes usable again,
// as with SetBody.
func (m *Msg) SwapBody(o *Msg) {
	if m == o {
		return
	}
	m.revive()
	o.revive()
	m.Body, o.Body = o.Body, m.Body
	m.blk, o.blk = o.blk, m.blk
	m.gen, o.gen = o.gen, m.gen
}

// Reset empties header and body, keeping pooled storage (a shared body
// is let go).
func (m *Msg) Reset() {
	m.revive()
	m.Header = m.Header[:0]
	m.Body = m.emptyBody()
}

// emptyBody is Body emptied for refilling: the same storage if it is
// pooled, nil if it is not the message's own (SetBodyShared), so that an
// append never writes into the lender's memory.
func (m *Msg) emptyBody() []byte {
	if m.blk == nil {
		return nil
	}
	return m.Body[:0]
}

// SetHeader replaces the header with a copy of h.
func (m *Msg) SetHeader(h []byte) {
	m.revive()
	if len(h) <= len(m.hbuf) {
		m.Header = append(m.hbuf[:0], h...)
		return
	}
	m.Header = append([]byte(nil), h...)
}

// AppendHeaderU32 appends v to the header, big-endian.
func (m *Msg) AppendHeaderU32(v uint32) {
	if len(m.Header) == 0 {
		m.Header = m.hbuf[:0]
	}
	m.Header = binary.BigEndian.AppendUint32(m.Header, v)
}

// TrimBodyU32 removes a big-endian uint32 from the front of the body.
func (m *Msg) TrimBodyU32() (uint32, bool) {
	if len(m.Body) < 4 {
		return 0, false
	}
	v := binary.BigEndian.Uint32(m.Body)
	m.Body = m.Body[4:]
	return v, true
}

// Pipe returns the pipe the message arrived on, or nil.
func (m *Msg) Pipe() *Pipe { return m.pipe }

// Free returns the message's storage to the pool. It is idempotent and
// safe to call from several goroutines; only the first call of the
// message's life releases anything.
func (m *Msg) Free() {
	if m == nil {
		return
	}
	if !m.state.CompareAndSwap(msgLive, msgFreed) {
		if debugMsgs.Load() {
			m.misuse("Free")
		}
		return
	}
	if debugMsgs.Load() {
		m.dbg.Store(trace("freed"))
	}
	m.dropBlock()
	m.Header, m.Body, m.pipe = nil, nil, nil
}

// dropBlock releases the block this handle holds, if its generation is
// still current.
func (m *Msg) dropBlock() {
	if b := m.blk; b != nil {
		m.blk = nil
		b.release(m.gen)
	}
}

// revive makes a sent handle usable again; a freed one is a misuse that
// debug mode reports and normal mode forgives.
func (m *Msg) revive() {
	switch m.state.Load() {
	case msgLive:
		return
	case msgFreed:
		if debugMsgs.Load() {
			m.misuse("use")
		}
	}
	m.state.Store(msgLive)
}

// moveTo moves m's content into dst, leaving m empty. Headers that live
// in m.hbuf are re-pointed at dst.hbuf.
func (m *Msg) moveTo(dst *Msg) {
	dst.Body, dst.blk, dst.gen, dst.pipe = m.Body, m.blk, m.gen, m.pipe
	dst.Header = dst.Header[:0]
	if h := m.Header; cap(h) > 0 && &h[:cap(h)][cap(h)-1] == &m.hbuf[len(m.hbuf)-1] {
		off := len(m.hbuf) - cap(h)
		dst.Header = append(dst.hbuf[:off], h...)[off:]
	} else {
		dst.Header = h
	}
	m.Header, m.Body, m.blk, m.pipe = nil, nil, nil, nil
}

// msgPool recycles the library's own Msg structs. A struct that has been
// handed to a caller (by Recv) never comes back here, so a stale handle
// can never alias a recycled struct.
var msgPool = sync.Pool{New: func() any { return new(Msg) }}

func getMsg() *Msg {
	m := msgPool.Get().(*Msg)
	m.state.Store(msgLive)
	return m
}

// recycle frees m's storage and returns the struct to msgPool. Only for
// structs the library has never handed out.
func recycle(m *Msg) {
	m.dropBlock()
	m.Header, m.Body, m.pipe = nil, nil, nil
	m.clearTrace()
	msgPool.Put(m)
}

// takeForSend moves the caller's content into a library-owned Msg. On
// success the caller's handle is left empty in the sent state.
func (m *Msg) takeForSend() (*Msg, error) {
	if m == nil {
		return nil, ErrState
	}
	if m.state.Load() != msgLive {
		if debugMsgs.Load() {
			m.misuse("Send")
		}
		return nil, ErrState
	}
	im := getMsg()
	m.moveTo(im)
	m.state.Store(msgSent)
	if debugMsgs.Load() {
		m.dbg.Store(trace("sent"))
	}
	return im, nil
}

// clearTrace forgets a debug-mode trace. It stores only if there is one:
// an atomic store is a locked instruction, and receives clear the trace
// of every message (CopyQueue.take spent 6% of a PULL receiver's CPU on
// it at 64 B, with debug mode off).
func (m *Msg) clearTrace() {
	if m.dbg.Load() != nil {
		m.dbg.Store(nil)
	}
}

// giveBack undoes takeForSend after a failed send.
func (m *Msg) giveBack(im *Msg) {
	im.moveTo(m)
	m.state.Store(msgLive)
	m.clearTrace()
	recycle(im)
}

// Clone returns a copy of m that the caller owns.
func (m *Msg) Clone() *Msg {
	c := new(Msg)
	m.copyInto(c)
	return c
}

// CopyMsg returns a library-owned copy of m, for protocols that keep a
// message and send copies of it (REQ resends).
func CopyMsg(m *Msg) *Msg {
	c := getMsg()
	m.copyInto(c)
	return c
}

// shareMin: ShareMsg shares bodies this large; it copies smaller ones,
// for which a copy costs less than counting the holders.
const shareMin = 1 << 10

// ShareMsg returns a library-owned message for pipe p with m's header and
// body, for fan-out protocols (PUB, BUS, SURVEYOR) that send one message
// to many pipes, and for REQ, which keeps the request it sends for
// resending. A body of shareMin bytes or more is shared, not copied,
// when p only reads it (a transport's writer): pooled storage is counted
// (block.refs) and goes back to the pool when the last holder lets go; a
// lent body (SetBodyShared) is shared as lent. For an inproc pipe, whose
// receiver gets the very Msg and may write to its body, it is a copy, as
// is a small body. m must be live and library-owned.
func ShareMsg(m *Msg, p *Pipe) *Msg {
	if p.ic != nil || len(m.Body) < shareMin {
		return CopyMsg(m)
	}
	c := getMsg()
	if b := m.blk; b != nil {
		b.refs.Add(1)
		c.blk, c.gen = b, m.gen
	}
	c.Body = m.Body
	c.SetHeader(m.Header)
	c.pipe = m.pipe
	return c
}

func (m *Msg) copyInto(c *Msg) {
	c.allocBody(len(m.Body))
	copy(c.Body, m.Body)
	c.SetHeader(m.Header)
	c.pipe = m.pipe
}

// NewLibMsg returns a library-owned message for protocol packages.
func NewLibMsg() *Msg { return getMsg() }

// RecycleMsg frees a library-owned message a protocol drops. The message
// must never have been handed to a caller.
func RecycleMsg(m *Msg) { recycle(m) }

// headroom is the space kept in front of every pooled body, so that a
// header can be joined to its body without copying the body.
const headroom = 64

// getBodyBlock returns a block for a body of n bytes and the offset the
// body starts at: headroom, unless the body is large and the headroom
// would double its block (a 64 KiB body would take 128 KiB).
func getBodyBlock(n int) (*block, uint32, int) {
	if c := classOf(n); n >= 4096 && c >= 0 && classOf(n+headroom) != c {
		b, gen := getBlock(n)
		return b, gen, 0
	}
	b, gen := getBlock(n + headroom)
	return b, gen, headroom
}

// bodyAtStart reports whether Body starts where getBodyBlock put it, so
// reusing it keeps the headroom.
func (m *Msg) bodyAtStart() bool {
	buf, c := m.blk.buf, cap(m.Body)
	return c > 0 && &m.Body[:c][c-1] == &buf[len(buf)-1] && (c == len(buf) || c == len(buf)-headroom)
}

// allocBody gives m a pooled body of n bytes.
func (m *Msg) allocBody(n int) {
	b, gen, off := getBodyBlock(n)
	m.blk, m.gen, m.Body = b, gen, b.buf[off:off+n]
}

// joinHeader moves the header in front of the body so that Body holds the
// whole SP payload and Header is empty, as messages read off a stream
// are. It uses the headroom in front of a pooled body when it can and
// copies otherwise. A body that is not pooled storage (SetBodyShared), or
// is shared with other messages (ShareMsg), is always copied: the
// receiver this message goes to may write to it.
func (m *Msg) joinHeader() {
	h := m.Header
	own := m.blk != nil && m.blk.refs.Load() == 0 // pooled, and not shared (ShareMsg)
	if len(h) == 0 && (own || len(m.Body) == 0) {
		return
	}
	if b := m.blk; own {
		buf, body := b.buf, m.Body
		if c := cap(body); c > 0 && &body[:c][c-1] == &buf[len(buf)-1] {
			if off := len(buf) - c; off >= len(h) {
				start := off - len(h)
				copy(buf[start:off], h)
				m.Body = buf[start : off+len(body)]
				m.Header = m.Header[:0]
				return
			}
		}
	}
	nb, gen := getBlock(len(h) + len(m.Body) + headroom)
	body := append(append(nb.buf[headroom:headroom], h...), m.Body...)
	m.dropBlock()
	m.blk, m.gen, m.Body = nb, gen, body
	m.Header = m.Header[:0]
}
