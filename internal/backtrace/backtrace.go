// Package backtrace reads the SP backtrace that leads REQ/REP and
// SURVEYOR/RESPONDENT messages: 32-bit big-endian words up to and
// including the first with the high bit set (the request or survey id);
// the words before it are pipe ids pushed by devices.
package backtrace

import (
	"encoding/binary"
	"errors"
)

var (
	// ErrNoID: the message ends before its id. The pipe must be closed.
	ErrNoID = errors.New("backtrace: message ends before its id")
	// ErrTooDeep: more words than the TTL allows. The message is dropped;
	// the pipe stays open.
	ErrTooDeep = errors.New("backtrace: more hops than MaxTTL")
)

// Len returns the length in bytes of the backtrace at the front of b,
// allowing at most maxTTL words.
func Len(b []byte, maxTTL int) (int, error) {
	for i := 0; ; i += 4 {
		if len(b) < i+4 {
			return 0, ErrNoID
		}
		if i/4 >= maxTTL {
			return 0, ErrTooDeep
		}
		if binary.BigEndian.Uint32(b[i:])&0x80000000 != 0 {
			return i + 4, nil
		}
	}
}
