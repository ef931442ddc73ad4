// Package wire holds the byte-level facts of the SP protocol as NNG speaks
// it on stream transports (tcp, ipc, tls+tcp): the 8-byte connection header
// and the length-prefixed frames that follow it. It uses the standard
// library only and is fuzzed (see wire_fuzz_test.go).
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// HeaderSize is the size of the connection header each side sends first.
const HeaderSize = 8

// Framing says how frames are delimited on a stream.
type Framing uint8

const (
	// TCP framing: a uint64 big-endian length, then the payload.
	TCP Framing = iota
	// IPC framing: one 0x01 byte, then the uint64 length, then the payload.
	IPC
)

// PrefixSize is the number of bytes before each payload.
func (f Framing) PrefixSize() int {
	if f == IPC {
		return 9
	}
	return 8
}

// IPCMsgType is the byte that starts every ipc frame.
const IPCMsgType = 0x01

// Errors returned by the decoders. Each one means the stream is unusable and
// the connection must be closed.
var (
	ErrBadMagic    = errors.New("wire: bad SP header magic")
	ErrBadVersion  = errors.New("wire: unsupported SP version")
	ErrBadReserved = errors.New("wire: non-zero reserved bytes in SP header")
	ErrBadIPCType  = errors.New("wire: ipc frame does not start with 0x01")
	ErrTooLarge    = errors.New("wire: frame larger than the receive limit")
)

// AppendHeader appends the connection header announcing proto.
func AppendHeader(dst []byte, proto uint16) []byte {
	return append(dst, 0, 'S', 'P', 0, byte(proto>>8), byte(proto), 0, 0)
}

// ParseHeader checks a peer's connection header and returns its protocol
// number. The protocol number itself is not judged here.
func ParseHeader(h []byte) (proto uint16, err error) {
	if len(h) < HeaderSize {
		return 0, io.ErrUnexpectedEOF
	}
	if h[0] != 0 || h[1] != 'S' || h[2] != 'P' {
		return 0, ErrBadMagic
	}
	if h[3] != 0 {
		return 0, ErrBadVersion
	}
	if h[6] != 0 || h[7] != 0 {
		return 0, ErrBadReserved
	}
	return binary.BigEndian.Uint16(h[4:6]), nil
}

// PutPrefix writes the frame prefix for a payload of n bytes into dst, which
// must have room for f.PrefixSize() bytes, and returns the bytes written.
func (f Framing) PutPrefix(dst []byte, n int) int {
	if f == IPC {
		dst[0] = IPCMsgType
		binary.BigEndian.PutUint64(dst[1:9], uint64(n))
		return 9
	}
	binary.BigEndian.PutUint64(dst[:8], uint64(n))
	return 8
}

// ParsePrefix decodes a frame prefix (exactly f.PrefixSize() bytes) and
// checks the length against max before anything is allocated. The returned
// length is at most max, so it always fits in an int when max does.
func (f Framing) ParsePrefix(p []byte, max uint64) (int, error) {
	if len(p) < f.PrefixSize() {
		return 0, io.ErrUnexpectedEOF
	}
	if f == IPC {
		if p[0] != IPCMsgType {
			return 0, ErrBadIPCType
		}
		p = p[1:]
	}
	n := binary.BigEndian.Uint64(p[:8])
	if n > max {
		return 0, &SizeError{Size: n, Max: max}
	}
	return int(n), nil
}

// SizeError reports a frame whose announced length is over the limit. It
// matches ErrTooLarge with errors.Is.
type SizeError struct {
	Size, Max uint64
}

func (e *SizeError) Error() string {
	return fmt.Sprintf("wire: frame of %d bytes exceeds the receive limit of %d", e.Size, e.Max)
}

// Is reports whether target is ErrTooLarge.
func (e *SizeError) Is(target error) bool { return target == ErrTooLarge }
