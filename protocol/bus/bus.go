// Package bus is BUS, version 0: every socket is everyone's peer.
//
// Send goes to every directly connected peer (a copy each), never back to
// the sender and never further: BUS does not forward. Each pipe has its
// own queue of SocketConfig.SendQueueLen; Send never waits, and a message
// for a pipe whose queue is full is dropped for that pipe and counted
// (NNG's BUS drops too). With no peer the message is discarded and
// counted as a socket drop.
//
// Recv takes messages from every pipe through one queue of
// SocketConfig.RecvQueueLen; a pipe's reader waits when it is full
// (nothing is dropped on receipt), and waiting readers are served first
// in, first out.
//
// Raw mode (SocketConfig.Raw, for devices): Recv hands over Header = the
// 4-byte id of the pipe the message came on; Send with such a header goes
// to every pipe but that one (its header is not sent), so a device built
// on one raw BUS socket never echoes a message back to its origin.
package bus

import (
	"context"
	"encoding/binary"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/fanout"
)

// ProtoBus is BUS's protocol number; its peers speak it too.
const ProtoBus = 0x70

// New opens a BUS socket.
func New(cfg ferry.SocketConfig) (*ferry.Socket, error) {
	return ferry.NewSocket(&sock{}, cfg)
}

type sock struct {
	s     *ferry.Socket
	raw   bool
	recvq chan *ferry.Msg
	pipes fanout.Set
}

func (k *sock) Info() ferry.ProtocolInfo {
	return ferry.ProtocolInfo{Self: ProtoBus, Peer: ProtoBus, SelfName: "bus", PeerName: "bus"}
}

func (k *sock) Init(s *ferry.Socket) {
	cfg := s.Config()
	k.s, k.raw = s, cfg.Raw
	k.recvq = make(chan *ferry.Msg, cfg.RecvQueueLen)
	k.pipes.Init(s, fanout.DropNew)
}

func (k *sock) AddPipe(p *ferry.Pipe) error { k.pipes.Add(p); return nil }
func (k *sock) RemovePipe(p *ferry.Pipe)    { k.pipes.Remove(p) }

func (k *sock) Receive(p *ferry.Pipe, m *ferry.Msg) {
	if k.raw {
		m.Header = m.Header[:0]
		m.AppendHeaderU32(p.ID())
	}
	ferry.Deliver(p, k.recvq, m)
}

func (k *sock) Send(_ context.Context, m *ferry.Msg) error {
	var except uint32
	if k.raw && len(m.Header) >= 4 {
		except = binary.BigEndian.Uint32(m.Header)
		m.Header = m.Header[:0]
	}
	k.pipes.Broadcast(m, except)
	return nil
}

func (k *sock) Recv(ctx context.Context) (*ferry.Msg, error) {
	return ferry.Take(ctx, k.s, k.recvq, nil)
}

func (k *sock) Close() {
	k.pipes.Close()
	ferry.DrainQueue(k.recvq, ferry.RecycleMsg)
}
