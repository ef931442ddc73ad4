// Package pub is the PUB (publisher) side of PUB/SUB, version 0.
//
// Send never waits: the message goes to every connected subscriber, each
// pipe getting its own copy in its own queue of SocketConfig.SendQueueLen
// messages. When a subscriber's queue is full the oldest message queued
// for it is dropped to make room, and counted (Pipe and Socket
// Stats.Dropped). With no subscriber connected the message is discarded
// and counted as a socket drop; Send still succeeds. Subscribers filter by
// topic themselves: a publisher sends every message to every subscriber,
// as NNG does. Recv is ErrNotSupported; anything a peer sends is
// discarded. Raw mode behaves the same.
package pub

import (
	"context"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/fanout"
)

// Protocol numbers.
const (
	ProtoPub = 0x20
	ProtoSub = 0x21
)

// New opens a PUB socket.
func New(cfg ferry.SocketConfig) (*ferry.Socket, error) {
	return ferry.NewSocket(&sock{}, cfg)
}

type sock struct {
	pipes fanout.Set
}

func (k *sock) Info() ferry.ProtocolInfo {
	return ferry.ProtocolInfo{Self: ProtoPub, Peer: ProtoSub, SelfName: "pub", PeerName: "sub"}
}

func (k *sock) Init(s *ferry.Socket)                { k.pipes.Init(s, fanout.DropOldest) }
func (k *sock) AddPipe(p *ferry.Pipe) error         { k.pipes.Add(p); return nil }
func (k *sock) RemovePipe(p *ferry.Pipe)            { k.pipes.Remove(p) }
func (k *sock) Receive(_ *ferry.Pipe, m *ferry.Msg) { ferry.RecycleMsg(m) } // subscribers send nothing
func (k *sock) Close()                              { k.pipes.Close() }

func (k *sock) Send(_ context.Context, m *ferry.Msg) error {
	k.pipes.Broadcast(m, 0)
	return nil
}

func (k *sock) Recv(context.Context) (*ferry.Msg, error) { return nil, ferry.ErrNotSupported }
