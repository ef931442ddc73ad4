package ferry

import (
	"sync"
	"sync/atomic"
)

// Reason says why a pipe closed.
type Reason string

// The reasons a pipe closes.
const (
	ReasonPeerClosed       Reason = "peer closed"
	ReasonSocketClosed     Reason = "socket closed"
	ReasonDialerClosed     Reason = "dialer closed"
	ReasonListenerClosed   Reason = "listener closed"
	ReasonHandshake        Reason = "bad handshake"
	ReasonHandshakeTimeout Reason = "handshake timeout"
	ReasonWrongPeer        Reason = "wrong peer protocol"
	ReasonRefused          Reason = "refused by protocol"
	ReasonTooLarge         Reason = "message too large"
	ReasonProtocol         Reason = "protocol error"
	ReasonWriteTimeout     Reason = "write timeout"
	ReasonIO               Reason = "i/o error"
	ReasonTruncated        Reason = "truncated frame"
)

// counts a peer's misbehaviour: these reasons also add to ProtocolErrors.
func (r Reason) isProtocolError() bool {
	switch r {
	case ReasonHandshake, ReasonWrongPeer, ReasonTooLarge, ReasonProtocol:
		return true
	}
	return false
}

// PipeStats are one pipe's counters.
type PipeStats struct {
	ID             uint32
	Local, Remote  string // addresses, as the transport prints them
	Dialed         bool   // true if this side dialed
	MsgsIn         uint64
	MsgsOut        uint64
	BytesIn        uint64
	BytesOut       uint64
	Dropped        uint64 // messages dropped by protocol policy or limits
	ProtocolErrors uint64
	MsgsDirect     uint64 // of MsgsOut, written by the sender itself (see Pipe.SendDirect)
	MsgsDirectIn   uint64 // of MsgsIn, handed to the protocol by an inproc peer's sender, not this pipe's reader
	MsgsCopied     uint64 // of MsgsOut, copied into the pipe's copy buffer by the sender (see Pipe.SendCopy)
	MsgsCopiedIn   uint64 // of MsgsIn, copied by the reader into the socket's CopyQueue
	MsgsInline     uint64 // of MsgsIn, read by a receiver on its own goroutine (inline reads), not the reader
}

// ClosedPipe records a pipe that closed and why.
type ClosedPipe struct {
	PipeStats
	Reason Reason
	Err    error // the error behind the reason, if any
}

// Stats is a snapshot of a socket's counters. The totals include pipes
// that have closed.
type Stats struct {
	PipesOpen      int
	PipesOpened    uint64 // pipes that completed the handshake and were admitted
	PipesClosed    uint64 // every pipe that closed, admitted or not
	MsgsIn         uint64
	MsgsOut        uint64
	BytesIn        uint64
	BytesOut       uint64
	Dropped        uint64
	ProtocolErrors uint64
	MsgsDirect     uint64 // of MsgsOut, written by the sender itself, not the pipe's writer
	MsgsDirectIn   uint64 // of MsgsIn, handed to the protocol by an inproc peer's sender, not the pipe's reader
	MsgsCopied     uint64 // of MsgsOut, copied into a pipe's copy buffer by the sender, not queued
	MsgsCopiedIn   uint64 // of MsgsIn, copied by a pipe's reader into the socket's CopyQueue
	MsgsInline     uint64 // of MsgsIn, read by a receiver on its own goroutine, not the pipe's reader
	// Pipes are the open pipes.
	Pipes []PipeStats
	// Closed are the most recently closed pipes, oldest first (at most
	// 64).
	Closed []ClosedPipe
	// CloseReasons counts every closed pipe by reason.
	CloseReasons map[Reason]uint64
}

const closedHistory = 64

// pipeCounters are written by the pipe's reader (in) and writer (out)
// goroutines and read by Stats.
type pipeCounters struct {
	msgsIn, msgsOut, bytesIn, bytesOut, dropped, protoErrs atomic.Uint64
	direct, directIn, copied, copiedIn, inline             atomic.Uint64
	directBack                                             atomic.Uint64 // see Pipe.DirectRefused
}

func (c *pipeCounters) addTo(s *Stats) {
	s.MsgsIn += c.msgsIn.Load()
	s.MsgsOut += c.msgsOut.Load()
	s.BytesIn += c.bytesIn.Load()
	s.BytesOut += c.bytesOut.Load()
	s.Dropped += c.dropped.Load()
	s.ProtocolErrors += c.protoErrs.Load()
	s.MsgsDirect += c.direct.Load()
	s.MsgsDirectIn += c.directIn.Load()
	s.MsgsCopied += c.copied.Load()
	s.MsgsCopiedIn += c.copiedIn.Load()
	s.MsgsInline += c.inline.Load()
}

// sockCounters hold what outlives pipes. Live pipes' counters are summed
// in at snapshot time, so the hot path touches only per-pipe counters.
type sockCounters struct {
	mu      sync.Mutex // guards all below
	closed  pipeCounters
	opened  uint64
	nclosed uint64
	history []ClosedPipe // ring of the last closedHistory
	next    int
	reasons map[Reason]uint64
	dropped atomic.Uint64 // drops not tied to a pipe
}

func (c *sockCounters) recordClose(cp ClosedPipe, pc *pipeCounters) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed.msgsIn.Add(pc.msgsIn.Load())
	c.closed.msgsOut.Add(pc.msgsOut.Load())
	c.closed.bytesIn.Add(pc.bytesIn.Load())
	c.closed.bytesOut.Add(pc.bytesOut.Load())
	c.closed.dropped.Add(pc.dropped.Load())
	c.closed.protoErrs.Add(pc.protoErrs.Load())
	c.closed.direct.Add(pc.direct.Load())
	c.closed.directIn.Add(pc.directIn.Load())
	c.closed.copied.Add(pc.copied.Load())
	c.closed.copiedIn.Add(pc.copiedIn.Load())
	c.closed.inline.Add(pc.inline.Load())
	c.nclosed++
	if c.reasons == nil {
		c.reasons = make(map[Reason]uint64)
	}
	c.reasons[cp.Reason]++
	if len(c.history) < closedHistory {
		c.history = append(c.history, cp)
	} else {
		c.history[c.next] = cp
		c.next = (c.next + 1) % closedHistory
	}
}

// Stats returns a snapshot of the socket's counters.
func (s *Socket) Stats() Stats {
	var st Stats
	s.mu.Lock()
	for p := range s.pipes {
		if !p.admitted.Load() {
			continue
		}
		ps := p.Stats()
		st.Pipes = append(st.Pipes, ps)
		p.ctr.addTo(&st)
	}
	s.mu.Unlock()
	c := &s.ctr
	c.mu.Lock()
	c.closed.addTo(&st)
	st.PipesOpened = c.opened
	st.PipesClosed = c.nclosed
	st.Closed = append(append([]ClosedPipe(nil), c.history[c.next:]...), c.history[:c.next]...)
	st.CloseReasons = make(map[Reason]uint64, len(c.reasons))
	for k, v := range c.reasons {
		st.CloseReasons[k] = v
	}
	c.mu.Unlock()
	st.Dropped += c.dropped.Load()
	st.PipesOpen = len(st.Pipes)
	return st
}

// Stats returns the pipe's counters.
func (p *Pipe) Stats() PipeStats {
	return PipeStats{
		ID: p.id, Local: p.c.localAddr(), Remote: p.c.remoteAddr(), Dialed: p.dialer != nil,
		MsgsIn: p.ctr.msgsIn.Load(), MsgsOut: p.ctr.msgsOut.Load(),
		BytesIn: p.ctr.bytesIn.Load(), BytesOut: p.ctr.bytesOut.Load(),
		Dropped: p.ctr.dropped.Load(), ProtocolErrors: p.ctr.protoErrs.Load(),
		MsgsDirect:   p.ctr.direct.Load(),
		MsgsDirectIn: p.ctr.directIn.Load(),
		MsgsCopied:   p.ctr.copied.Load(),
		MsgsCopiedIn: p.ctr.copiedIn.Load(),
		MsgsInline:   p.ctr.inline.Load(),
	}
}
