package ferry

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ferrymq/ferry/internal/wire"
	"github.com/ferrymq/ferry/transport"
)

// TestWriteNowPartial fills a tcp connection whose peer does not read
// until a direct write is taken only in part (or not at all), then lets
// the peer read: the rest written by flushRest must complete the frame,
// and the stream must hold exactly the frames writeNow accepted, in order.
func TestWriteNowPartial(t *testing.T) {
	a, b := tcpPair(t)
	a.(*net.TCPConn).SetWriteBuffer(8 << 10)
	b.(*net.TCPConn).SetReadBuffer(8 << 10)
	c := newStreamConn(transport.Conn{Conn: a, Framing: wire.TCP}, 5*time.Second)
	if !c.canDirect() {
		t.Fatal("a tcp conn cannot write directly")
	}
	var sent [][]byte
	partial, refused := false, false
	for i := 0; i < 10000 && !partial; i++ {
		m := getMsg()
		m.SetBody(bytes.Repeat([]byte{byte(i)}, 7000+i%13))
		ok, part := c.writeNow(m)
		if ok {
			sent = append(sent, bytes.Clone(m.Body))
			partial = part
		} else {
			refused = true // EAGAIN: the buffer is full and nothing was written
			if len(sent) > 0 {
				break
			}
		}
		recycle(m)
	}
	if !partial && !refused {
		t.Fatalf("%d frames went out without the buffer ever filling", len(sent))
	}
	t.Logf("%d frames written directly, partial %v, refused %v", len(sent), partial, refused)
	if partial {
		m := getMsg()
		m.SetBody([]byte("x"))
		if ok, _ := c.writeNow(m); ok {
			t.Fatal("a direct write was taken while a rest was pending")
		}
		recycle(m)
	}
	got := make(chan [][]byte, 1)
	b.SetReadDeadline(time.Now().Add(10 * time.Second)) // a lost rest fails, not hangs
	go func() {
		r := wire.NewReader(bufio.NewReader(b), wire.TCP, 1<<20)
		var frames [][]byte
		for range sent {
			n, err := r.Next()
			if err != nil {
				break
			}
			p := make([]byte, n)
			if r.ReadPayload(p) != nil {
				break
			}
			frames = append(frames, p)
		}
		got <- frames
		io.Copy(io.Discard, b)
	}()
	had, err := c.flushRest()
	if err != nil || had != partial {
		t.Fatalf("flushRest: had %v, err %v; want had %v", had, err, partial)
	}
	frames := <-got
	if len(frames) != len(sent) {
		t.Fatalf("peer read %d frames, %d were written", len(frames), len(sent))
	}
	for i := range sent {
		if !bytes.Equal(frames[i], sent[i]) {
			t.Fatalf("frame %d differs", i)
		}
	}
}

// tcpPair returns both ends of a loopback tcp connection, closed when the
// test ends.
func tcpPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b
}
