// Package pull is the PULL side of PUSH/PULL, version 0.
//
// Messages from every pipe go to one receive queue of
// SocketConfig.RecvQueueLen. A pipe's reader that finds the queue full
// waits for room (and the peer, through TCP flow control, waits for it),
// so nothing is dropped. Readers waiting on a full queue are served in
// the order they started waiting (Go channels queue blocked senders
// first in, first out), which makes PULL fair across busy pipes: each
// gets one message in per turn. On stream transports small messages
// (at most ferry.CopyRecvMax) go through the socket's copy queue
// instead: a reader copies in every whole one it has read, up to a full
// queue, and readers waiting for room are all woken when half of it is
// free, so a busy pipe gets a run of messages per turn. Order within a
// pipe holds either way. Send is ErrNotSupported. Raw mode behaves the
// same.
package pull

import (
	"context"

	"github.com/ferrymq/ferry"
)

// Protocol numbers.
const (
	ProtoPush = 0x50
	ProtoPull = 0x51
)

// New opens a PULL socket.
func New(cfg ferry.SocketConfig) (*ferry.Socket, error) {
	return ferry.NewSocket(&sock{}, cfg)
}

type sock struct {
	s     *ferry.Socket
	recvq chan *ferry.Msg
	cq    *ferry.CopyQueue
}

func (k *sock) Info() ferry.ProtocolInfo {
	return ferry.ProtocolInfo{Self: ProtoPull, Peer: ProtoPush, SelfName: "pull", PeerName: "push"}
}

func (k *sock) Init(s *ferry.Socket) {
	k.s = s
	k.recvq = make(chan *ferry.Msg, s.Config().RecvQueueLen)
	k.cq = ferry.NewCopyQueue(k.recvq)
}

// CopyQueue and CopyFrame implement ferry.CopyReceiver: every frame is
// delivered as it is, so a pipe's reader may copy any small one in.
func (k *sock) CopyQueue() *ferry.CopyQueue { return k.cq }

func (k *sock) CopyFrame(_ *ferry.Pipe, b []byte) (hdr, body []byte, ok bool) { return nil, b, true }

// AddPipe gives the pipe no send queue: a puller never sends.
func (k *sock) AddPipe(*ferry.Pipe) error { return nil }
func (k *sock) RemovePipe(*ferry.Pipe)    {}

func (k *sock) Receive(p *ferry.Pipe, m *ferry.Msg) {
	ferry.Deliver(p, k.recvq, m)
}

func (k *sock) Send(context.Context, *ferry.Msg) error { return ferry.ErrNotSupported }

func (k *sock) Recv(ctx context.Context) (*ferry.Msg, error) {
	return k.cq.Take(ctx, k.s, nil)
}

func (k *sock) Close() {
	k.cq.Close()
	ferry.DrainQueue(k.recvq, ferry.RecycleMsg)
}
