//go:build !linux

package ferry

// peerGone: see probe_linux.go; elsewhere the reader's lendCheck bounds
// how long a lent pipe's end goes unnoticed.
func (p *Pipe) peerGone() bool { return false }

// kernelInput: see probe_linux.go; elsewhere it cannot tell, and says
// there may be input.
func (p *Pipe) kernelInput() bool { return true }
