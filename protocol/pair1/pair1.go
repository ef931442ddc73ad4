// Package pair1 is PAIR version 1 (monogamous): one peer, a 32-bit hop
// count header, and a MaxTTL (SocketConfig.MaxTTL) past which messages
// are dropped. Polyamorous mode, deprecated in NNG, is not offered.
package pair1

import (
	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/pairs"
)

// New opens a PAIR1 socket.
func New(cfg ferry.SocketConfig) (*ferry.Socket, error) {
	return ferry.NewSocket(pairs.New(true), cfg)
}
