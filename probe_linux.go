package ferry

import "syscall"

// peerGone reports whether p's connection has ended on the far side with
// nothing left for the kernel to deliver (the next read would see end of
// stream or an error). It peeks without consuming and without waiting,
// so it may run beside whoever reads p.
func (p *Pipe) peerGone() bool {
	n, err, ok := p.peek()
	return ok && ((n == 0 && err == nil) || (err != nil && err != syscall.EAGAIN && err != syscall.EINTR))
}

// kernelInput reports whether the kernel holds input for p's connection
// (bytes, its end, or an error): a read would not wait. Peeks as
// peerGone does; false where it cannot tell.
func (p *Pipe) kernelInput() bool {
	n, err, ok := p.peek()
	return ok && (n > 0 || (err != syscall.EAGAIN && err != syscall.EINTR))
}

// peek reads one byte of p's connection without consuming it or
// waiting. ok is false for connections it cannot peek at.
func (p *Pipe) peek() (n int, err error, ok bool) {
	c := p.sc
	if c == nil || c.rc == nil {
		return 0, nil, false
	}
	c.rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	})
	return n, err, true
}
