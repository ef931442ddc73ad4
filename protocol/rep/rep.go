// Package rep is the REP (reply) side of REQ/REP, version 0.
//
// Cooked: a context receives a request (the caller sees the body) and
// keeps its backtrace and pipe; Send replies there. Send with no request
// pending is ErrState; a reply whose pipe has gone is dropped quietly and
// counted. Requests deeper than SocketConfig.MaxTTL hops are dropped; a
// request that ends before its id closes its pipe.
//
// Raw (SocketConfig.Raw, for devices): Recv hands over Header = [pipe
// id][backtrace]; Send pops the pipe id to choose the pipe.
package rep

import (
	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/replier"
)

// Protocol numbers.
const (
	ProtoReq = 0x30
	ProtoRep = 0x31
)

// New opens a REP socket.
func New(cfg ferry.SocketConfig) (*ferry.Socket, error) {
	return ferry.NewSocket(replier.New(ferry.ProtocolInfo{Self: ProtoRep, Peer: ProtoReq, SelfName: "rep", PeerName: "req"}), cfg)
}
