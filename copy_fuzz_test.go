package ferry

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"net"
	"testing"

	"github.com/ferrymq/ferry/internal/wire"
)

// bytesConn is a net.Conn that only reads, from a fixed stream.
type bytesConn struct {
	net.Conn
	r *bytes.Reader
}

func (c *bytesConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// hopReceiver copies as cooked PAIR1 does: a 4-byte hop count 00 00 00 hh
// with hh at most 8, stripped.
type hopReceiver struct{ q *CopyQueue }

func (h *hopReceiver) CopyQueue() *CopyQueue { return h.q }
func (h *hopReceiver) CopyFrame(_ *Pipe, b []byte) (hdr, body []byte, ok bool) {
	if len(b) < 4 || b[0] != 0 || b[1] != 0 || b[2] != 0 || b[3] > 8 {
		return nil, nil, false
	}
	return nil, b[4:], true
}

// FuzzCopyIn: the copy path (copyIn over a reader's buffer) yields exactly
// the messages the ordinary decoder (wire.Reader) yields from the same
// bytes, in order, up to the first frame it must leave to the ordinary
// path (too large, refused by the protocol, malformed or cut short), with
// any queue size.
func FuzzCopyIn(f *testing.F) {
	frame := func(dst []byte, hop byte, body string) []byte {
		dst = binary.BigEndian.AppendUint64(dst, uint64(4+len(body)))
		return append(append(dst, 0, 0, 0, hop), body...)
	}
	f.Add(frame(frame(nil, 1, "hello"), 1, "world"), false, uint8(4))
	f.Add(frame(frame(frame(nil, 1, "a"), 9, "over ttl"), 1, "after"), false, uint8(1))
	f.Add(append(frame(nil, 1, "x"), binary.BigEndian.AppendUint64(nil, 5000)...), false, uint8(2))
	f.Add(append(frame(nil, 1, "x"), 0, 0, 0, 0, 0, 0, 0, 9, 0, 0), false, uint8(3))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 1, 'h', 'i', 2, 0}, true, uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, ipc bool, qlen uint8) {
		fr := wire.TCP
		if ipc {
			fr = wire.IPC
		}
		const max = 4096
		cr := &hopReceiver{}
		var want [][]byte
		rd := wire.NewReader(bufio.NewReader(bytes.NewReader(data)), fr, max)
		for {
			n, err := rd.Next()
			if err != nil || n > CopyRecvMax {
				break
			}
			b := make([]byte, n)
			if rd.ReadPayload(b) != nil {
				break
			}
			_, body, ok := cr.CopyFrame(nil, b)
			if !ok {
				break
			}
			want = append(want, body)
		}

		cr.q = NewCopyQueue(make(chan *Msg, int(qlen)%600+1))
		c := &streamConn{c: &bytesConn{r: bytes.NewReader(data)}, f: fr}
		c.initRead(max)
		p := &Pipe{}
		var got [][]byte
		drain := func() {
			for {
				b, ok := cr.q.takeBytes(nil)
				if !ok {
					return
				}
				got = append(got, b)
			}
		}
		ps := fr.PrefixSize()
		for {
			pfx, err := c.br.Peek(ps)
			if err != nil {
				break
			}
			size, err := fr.ParsePrefix(pfx, max)
			if err != nil {
				break
			}
			if size <= CopyRecvMax {
				if _, err := c.br.Peek(ps + size); err != nil {
					break
				}
			}
			n, _, why := c.copyIn(p, cr.q, cr, max)
			drain()
			if why == copyNot || why == copyClosed || (why == copyDone && n == 0) {
				break
			}
		}
		drain()
		if len(got) != len(want) {
			t.Fatalf("copied %d messages, the decoder found %d", len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("message %d: copied %q, decoded %q", i, got[i], want[i])
			}
		}
	})
}
