// Package fanout is the per-pipe queueing PUB and BUS share: each pipe
// has its own send queue of SendQueueLen messages, and a broadcast puts a
// copy on every queue without ever waiting. What a full queue does is the
// caller's policy: PUB drops the oldest queued message, BUS the new one.
//
// Accounting, so that Socket.Shutdown stays exact: Send counted the
// message once; a broadcast to k pipes counts k-1 more, and every copy
// that is dropped (from a full queue, or left queued when its pipe closes)
// uncounts itself and counts a drop on its pipe. A broadcast with no pipe
// to go to discards the message with Socket.DiscardSent (a socket drop).
package fanout

import (
	"runtime"
	"sync"

	"github.com/ferrymq/ferry"
)

// Policy says what a broadcast does when a pipe's queue is full.
type Policy int

const (
	// DropOldest removes the oldest queued message to make room (PUB).
	DropOldest Policy = iota
	// DropNew drops the message being queued (BUS).
	DropNew
)

type entry struct {
	p *ferry.Pipe
	q chan *ferry.Msg
}

// Set is the pipes of one socket and their queues.
type Set struct {
	s      *ferry.Socket
	qlen   int
	policy Policy

	// mu guards pipes. Broadcasts hold it shared while they queue, so
	// that once Remove has taken it exclusively no broadcast can still
	// reach the removed pipe's queue, and draining it is final.
	mu    sync.RWMutex
	pipes []entry
}

// Init prepares the set for socket s.
func (f *Set) Init(s *ferry.Socket, policy Policy) {
	f.s, f.qlen, f.policy = s, s.Config().SendQueueLen, policy
}

// Add gives p its queue. Call it from Protocol.AddPipe.
func (f *Set) Add(p *ferry.Pipe) {
	q := make(chan *ferry.Msg, f.qlen)
	p.SetSendQueue(q)
	f.mu.Lock()
	f.pipes = append(f.pipes, entry{p, q})
	f.mu.Unlock()
}

// Remove forgets p and drops what is still queued for it (counted on p).
// Call it from Protocol.RemovePipe: p's writer has exited.
func (f *Set) Remove(p *ferry.Pipe) {
	var q chan *ferry.Msg
	f.mu.Lock()
	for i, e := range f.pipes {
		if e.p == p {
			q = e.q
			last := len(f.pipes) - 1
			f.pipes[i] = f.pipes[last]
			f.pipes[last] = entry{}
			f.pipes = f.pipes[:last]
			break
		}
	}
	f.mu.Unlock()
	if q != nil {
		ferry.DrainQueue(q, func(m *ferry.Msg) { f.drop(p, m) })
	}
}

// Broadcast queues m, which Send accepted, or a message of its own with
// m's content (ferry.ShareMsg: a large body is shared, not copied, except
// with inproc pipes) on every pipe but the one whose id is except (0:
// none). It never waits.
func (f *Set) Broadcast(m *ferry.Msg, except uint32) {
	f.mu.RLock()
	n := len(f.pipes)
	if except != 0 {
		for _, e := range f.pipes {
			if e.p.ID() == except {
				n--
			}
		}
	}
	if n == 0 {
		f.mu.RUnlock()
		f.s.DiscardSent(m)
		return
	}
	f.s.CountQueued(n - 1)
	i := 0
	for _, e := range f.pipes {
		if e.p.ID() == except {
			continue
		}
		i++
		cp := m
		if i < n {
			cp = ferry.ShareMsg(m, e.p)
		} else if n == 1 && e.p.SendDirect(m) {
			// A lone message to a lone pipe (one subscriber, one peer):
			// written by the sender, as PAIR's are, not handed to the
			// pipe's writer. With more pipes the writers write in
			// parallel, and SendDirect refuses anyway (more than one
			// message unwritten).
			break
		}
		f.put(e, cp)
	}
	f.mu.RUnlock()
}

// put queues m on e without waiting, applying the policy when the queue
// is full. Each round either queues m or takes one message out, so it
// ends even while the writer and other broadcasts race it.
func (f *Set) put(e entry, m *ferry.Msg) {
	for {
		select {
		case e.q <- m:
			return
		default:
		}
		if f.policy == DropNew {
			f.drop(e.p, m)
			return
		}
		select {
		case old := <-e.q:
			f.drop(e.p, old)
		default:
		}
		// The queue was full: this sender is outrunning the pipe's writer.
		// Yield, or a sender in a tight loop keeps winning the queue's
		// lock from the writer and delivery collapses (measured: one
		// subscriber fell to ~10k msg/s from 1M+).
		runtime.Gosched()
	}
}

// drop discards a message Send accepted (or a copy counted with
// CountQueued) and counts the drop on p.
func (f *Set) drop(p *ferry.Pipe, m *ferry.Msg) {
	f.s.CountQueued(-1)
	ferry.RecycleMsg(m)
	p.CountDrop()
}

// Close frees whatever is still queued; the socket's goroutines have all
// stopped. Call it from Protocol.Close.
func (f *Set) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.pipes {
		ferry.DrainQueue(e.q, ferry.RecycleMsg)
	}
}
