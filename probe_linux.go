package ferry

import "syscall"

// peerGone reports whether p's connection has ended on the far side with
// nothing left for the kernel to deliver (the next read would see end of
// stream or an error). It peeks without consuming and without waiting,
// so it may run beside whoever reads p.
func (p *Pipe) peerGone() bool {
	c := p.sc
	if c == nil || c.rc == nil {
		return false
	}
	gone := false
	c.rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		gone = (n == 0 && err == nil) || (err != nil && err != syscall.EAGAIN && err != syscall.EINTR)
	})
	return gone
}
