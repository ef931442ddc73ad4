// Package pair is PAIR version 0: one peer, no header.
package pair

import (
	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/pairs"
)

// New opens a PAIR0 socket.
func New(cfg ferry.SocketConfig) (*ferry.Socket, error) {
	return ferry.NewSocket(pairs.New(false), cfg)
}
