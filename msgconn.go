package ferry

import (
	"io"
	"time"

	"github.com/ferrymq/ferry/internal/wire"
	"github.com/ferrymq/ferry/transport"
)

// transportOpts is the transport.Options a dialer or listener of s passes
// down: the connection settings plus the socket's protocol names (for ws
// subprotocols).
func (s *Socket) transportOpts(c ConnConfig) transport.Options {
	o := c.transportOptions()
	o.HandshakeTimeout = c.HandshakeTimeout
	o.IdleTimeout = c.IdleTimeout
	o.SelfName, o.PeerName = s.info.SelfName, s.info.PeerName
	return o
}

// newPipeConn wraps what a transport produced: a framed byte stream, or a
// message connection.
func (s *Socket) newPipeConn(tc transport.Conn) pipeConn {
	if tc.Msgs != nil {
		return &msgConn{c: tc.Msgs, peer: s.info.Peer, wt: s.cfg.WriteTimeout}
	}
	return newStreamConn(tc, s.cfg.WriteTimeout)
}

// msgConn carries one SP message (protocol header and body) per transport
// message (ws, wss): no SP header exchange, no length prefix.
type msgConn struct {
	c    transport.MsgConn
	peer uint16        // the protocol the transport's handshake agreed on
	wt   time.Duration // write timeout; <= 0 for none

	lastWD time.Time // writer-owned: when the write deadline was last pushed out
}

// firstReadSize is the body a receive starts with; it doubles as the
// message turns out larger, so memory follows what actually arrived and
// never exceeds the receive limit.
const firstReadSize = 4 << 10

// handshake sends nothing: the transport matched the two protocols before
// the connection was handed over (a ws dialer offers its peer's
// subprotocol and a listener accepts only its own), so the peer is the
// one the socket expects.
func (c *msgConn) handshake(uint16, time.Duration) (uint16, error) { return c.peer, nil }

func (c *msgConn) recv(max int) (*Msg, error) {
	r, err := c.c.NextReader(max)
	if err != nil {
		return nil, err
	}
	m := getMsg()
	m.allocBody(min(firstReadSize, max))
	n := 0
	for {
		if n == len(m.Body) {
			if n >= max {
				// Full at the limit: one more byte makes it too large.
				var one [1]byte
				k, err := io.ReadFull(r, one[:])
				if k > 0 {
					recycle(m)
					return nil, &wire.SizeError{Size: uint64(n) + 1, Max: uint64(max)}
				}
				if err == io.EOF {
					break
				}
				recycle(m)
				return nil, err
			}
			m.growBody(min(2*n, max), n)
		}
		k, err := r.Read(m.Body[n:])
		n += k
		if err == io.EOF {
			break
		}
		if err != nil {
			recycle(m)
			return nil, err
		}
	}
	m.Body = m.Body[:n]
	return m, nil
}

// growBody moves the first keep bytes of m's body into a pooled body of n
// bytes, releasing the old one.
func (m *Msg) growBody(n, keep int) {
	b, gen, off := getBodyBlock(n)
	nb := b.buf[off : off+n]
	copy(nb, m.Body[:keep])
	m.dropBlock()
	m.blk, m.gen, m.Body = b, gen, nb
}

func (c *msgConn) send(batch []*Msg) error {
	if c.wt > 0 {
		if now := time.Now(); now.Sub(c.lastWD) > c.wt/4 {
			c.c.SetWriteDeadline(now.Add(c.wt))
			c.lastWD = now
		}
	}
	for _, m := range batch {
		if err := c.c.WriteMsg(m.Header, m.Body); err != nil {
			return err
		}
	}
	return nil
}

func (c *msgConn) close()             { c.c.Close() }
func (c *msgConn) closeWrite()        { c.c.CloseWrite() }
func (c *msgConn) localAddr() string  { return addrString(c.c.LocalAddr()) }
func (c *msgConn) remoteAddr() string { return addrString(c.c.RemoteAddr()) }
