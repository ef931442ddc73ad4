// Package respondent is the RESPONDENT side of SURVEYOR/RESPONDENT,
// version 0. It behaves like REP: a context receives a survey and keeps
// its backtrace; Send answers it. Socket.Serve works on it as on REP.
package respondent

import (
	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/replier"
)

// Protocol numbers.
const (
	ProtoSurveyor   = 0x62
	ProtoRespondent = 0x63
)

// New opens a RESPONDENT socket.
func New(cfg ferry.SocketConfig) (*ferry.Socket, error) {
	return ferry.NewSocket(replier.New(ferry.ProtocolInfo{Self: ProtoRespondent, Peer: ProtoSurveyor, SelfName: "respondent", PeerName: "surveyor"}), cfg)
}
