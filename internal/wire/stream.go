package wire

import (
	"bufio"
	"io"
)

// Handshake writes the connection header for self and reads the peer's,
// returning the peer's protocol number. Both sides write first, so two
// peers calling Handshake at once never deadlock: 8 bytes always fit in
// the kernel's buffers. Deadlines are the caller's job.
func Handshake(rw io.ReadWriter, self uint16) (peer uint16, err error) {
	var out [HeaderSize]byte
	if _, err := rw.Write(AppendHeader(out[:0], self)); err != nil {
		return 0, err
	}
	var in [HeaderSize]byte
	if _, err := io.ReadFull(rw, in[:]); err != nil {
		return 0, err
	}
	return ParseHeader(in[:])
}

// Reader decodes frames from a buffered stream. It never allocates: the
// caller learns the length from Next, checked against the limit, and
// provides the memory to ReadPayload.
type Reader struct {
	r   *bufio.Reader
	f   Framing
	max uint64
	pfx [9]byte
}

// NewReader returns a Reader of frames at most max bytes long.
func NewReader(r *bufio.Reader, f Framing, max uint64) *Reader {
	return &Reader{r: r, f: f, max: max}
}

// Next reads the next frame prefix and returns the payload length. An error
// means the stream is unusable.
func (r *Reader) Next() (int, error) {
	p := r.pfx[:r.f.PrefixSize()]
	if _, err := io.ReadFull(r.r, p); err != nil {
		return 0, err
	}
	return r.f.ParsePrefix(p, r.max)
}

// ReadPayload fills dst, whose length must be the one Next returned. A
// frame cut short by the end of the stream is io.ErrUnexpectedEOF.
func (r *Reader) ReadPayload(dst []byte) error {
	_, err := io.ReadFull(r.r, dst)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}
