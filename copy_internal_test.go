package ferry

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// copyProto is the least protocol that sends by copying: one pipe, one
// send queue of qlen, PUSH's numbers.
type copyProto struct {
	s    *Socket
	q    chan *Msg
	qlen int
	cur  atomic.Pointer[Pipe]
}

func (o *copyProto) Info() ProtocolInfo {
	return ProtocolInfo{Self: 0x50, Peer: 0x51, SelfName: "push", PeerName: "pull"}
}
func (o *copyProto) Init(s *Socket)                     { o.s, o.q = s, make(chan *Msg, o.qlen) }
func (o *copyProto) AddPipe(p *Pipe) error              { p.SetSendQueue(o.q); o.cur.Store(p); return nil }
func (o *copyProto) RemovePipe(p *Pipe)                 { o.cur.CompareAndSwap(p, nil) }
func (o *copyProto) Receive(_ *Pipe, m *Msg)            { recycle(m) }
func (o *copyProto) Recv(context.Context) (*Msg, error) { return nil, ErrNotSupported }
func (o *copyProto) Close()                             { DrainQueue(o.q, RecycleMsg) }
func (o *copyProto) SendCopy(h, b []byte) bool {
	p := o.cur.Load()
	return p != nil && p.SendCopy(h, b)
}
func (o *copyProto) Send(ctx context.Context, m *Msg) error {
	select {
	case o.q <- m:
		return nil
	case <-ctx.Done():
		return ctxErr(ctx)
	}
}

// writerBusy waits until p's writer has taken everything queued and is
// not waiting for work: it is stuck on the write mutex the test holds.
func writerBusy(t *testing.T, p *Pipe) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		p.bmu.Lock()
		busy := !p.wwait && len(p.sendq) == 0
		p.bmu.Unlock()
		if busy {
			return
		}
		if time.Now().After(end) {
			t.Fatal("the writer never took the queue")
		}
	}
}

func copySetup(t *testing.T) (*Socket, *Pipe, net.Conn) {
	t.Helper()
	return copySetupQ(t, 16)
}

func copySetupQ(t *testing.T, qlen int) (*Socket, *Pipe, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	o := &copyProto{qlen: qlen}
	s, err := NewSocket(o, SocketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Dial completes the handshake: answer it from here.
	dialed := make(chan error, 1)
	go func() { _, err := s.Dial(ctx, "tcp://"+ln.Addr().String()); dialed <- err }()
	c, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte{0, 'S', 'P', 0, 0, 0x51, 0, 0}); err != nil {
		t.Fatal(err)
	}
	var h [8]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		t.Fatal(err)
	}
	if err := <-dialed; err != nil {
		t.Fatal(err)
	}
	for o.cur.Load() == nil {
		time.Sleep(time.Millisecond)
	}
	return s, o.cur.Load(), c
}

// TestSendCopyRules: with the pipe's writer busy (held on its write
// mutex while it holds message 0) and its queue empty, small sends are
// copied until the copy buffer is full; then, and for anything over
// CopySendMax, and for everything after a message that went to the
// queue, sends use the queue. On the wire the frames come in send order.
func TestSendCopyRules(t *testing.T) {
	s, p, c := copySetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body := numbered
	sizes := []int{CopySendMax + 1} // 0: queued (too large to copy), taken by the writer
	for range copyBufSize / 1008 {  // 1..32: 1008-byte frames fill the copy buffer
		sizes = append(sizes, 1000)
	}
	sizes = append(sizes, 1000, 8, 8) // no room: queued, and what follows
	p.wmu.Lock()
	if err := s.SendBytes(ctx, body(0, sizes[0])); err != nil {
		t.Fatal(err)
	}
	writerBusy(t, p)
	m := NewMsg(0)
	defer m.Free()
	for i := 1; i < len(sizes); i++ {
		m.SetBody(body(i, sizes[i]))
		if err := s.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	p.bmu.Lock()
	copied := p.pendN
	p.bmu.Unlock()
	if want := copyBufSize / 1008; copied != want {
		t.Errorf("%d sends copied, want %d (the buffer's worth)", copied, want)
	}
	big := body(len(sizes), CopySendMax+1) // over the limit: queued even with room
	if err := s.SendBytes(ctx, big); err != nil {
		t.Fatal(err)
	}
	sizes = append(sizes, len(big))
	p.wmu.Unlock()
	readFrames(t, c, sizes, body)
	waitUntil(t, "everything counted as written", func() bool { return s.unsent.Load() == 0 })
	if st := s.Stats(); st.MsgsCopied != uint64(copied) || st.MsgsOut != uint64(len(sizes)) {
		t.Errorf("MsgsCopied %d, MsgsOut %d; want %d, %d", st.MsgsCopied, st.MsgsOut, copied, len(sizes))
	}
}

// readFrames reads len(sizes) PUSH frames from c and checks that frame i
// is body(i, sizes[i]).
func readFrames(t *testing.T, c net.Conn, sizes []int, body func(i, size int) []byte) {
	t.Helper()
	br := bufio.NewReader(c)
	for i, size := range sizes {
		var pfx [8]byte
		if _, err := io.ReadFull(br, pfx[:]); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		got := make([]byte, binary.BigEndian.Uint64(pfx[:]))
		if _, err := io.ReadFull(br, got); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(got, body(i, size)) {
			t.Fatalf("frame %d: %d bytes starting % x, want message %d of %d bytes", i, len(got), got[:min(4, len(got))], i, size)
		}
	}
}

// numbered is message i of size bytes: i in its first 4 bytes.
func numbered(i, size int) []byte {
	b := bytes.Repeat([]byte{byte(i)}, size)
	binary.BigEndian.PutUint32(b, uint32(i))
	return b
}

// TestSendCopyBehindQueue: small sends are copied even while queued
// messages wait for the writer, and go out after them; a message queued
// after the copies began goes out after the copies, and the small sends
// after it are queued behind it. The copies also wait behind a queue
// longer than one of the writer's batches (maxBatch).
func TestSendCopyBehindQueue(t *testing.T) {
	cases := []struct {
		name   string
		queued int // large messages queued before the small ones
	}{
		{"short queue", 3},
		{"queue over one batch", maxBatch + 40},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, p, c := copySetupQ(t, 512)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var sizes []int
			send := func(size int) {
				t.Helper()
				if err := s.SendBytes(ctx, numbered(len(sizes), size)); err != nil {
					t.Fatal(err)
				}
				sizes = append(sizes, size)
			}
			p.wmu.Lock()
			send(CopySendMax + 1) // 0: queued, taken by the writer, which then waits for wmu
			writerBusy(t, p)
			for range tc.queued {
				send(CopySendMax + 1) // queued behind it
			}
			for range 10 {
				send(8) // copied: the writer is busy, whatever its queue holds
			}
			p.bmu.Lock()
			copied := p.pendN
			p.bmu.Unlock()
			if copied != 10 {
				t.Errorf("%d of 10 small sends behind a queue were copied", copied)
			}
			send(CopySendMax + 1) // queued: it follows the copies
			for range 5 {
				send(8) // queued too: they follow it
			}
			p.bmu.Lock()
			copied = p.pendN
			p.bmu.Unlock()
			if copied != 10 {
				t.Errorf("%d copies, want 10: sends after a queued one must be queued", copied)
			}
			p.wmu.Unlock()
			readFrames(t, c, sizes, numbered)
			waitUntil(t, "everything counted as written", func() bool { return s.unsent.Load() == 0 })
			if st := s.Stats(); st.MsgsCopied != 10 || st.MsgsOut != uint64(len(sizes)) {
				t.Errorf("MsgsCopied %d, MsgsOut %d; want 10, %d", st.MsgsCopied, st.MsgsOut, len(sizes))
			}
		})
	}
}

// TestSendCopyPipeDies: frames copied into a pipe that dies before its
// writer wrote them are lost with it, as a batch the writer took is, and
// stop counting as unsent: Shutdown does not wait for them. Copies after
// the writer exited are refused.
func TestSendCopyPipeDies(t *testing.T) {
	s, p, _ := copySetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p.wmu.Lock()
	// Too large to copy: queued, it wakes the writer, which then waits
	// for the mutex held here.
	if err := s.SendBytes(ctx, bytes.Repeat([]byte("f"), CopySendMax+1)); err != nil {
		t.Fatal(err)
	}
	writerBusy(t, p)
	for i := range 10 {
		if err := s.SendBytes(ctx, fmt.Appendf(nil, "copied %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.unsent.Load(); n != 11 {
		t.Fatalf("unsent %d, want 11", n)
	}
	p.closeWith(ReasonIO, fmt.Errorf("test"))
	p.wmu.Unlock()
	<-p.wdone
	waitUntil(t, "nothing unsent", func() bool { return s.unsent.Load() == 0 })
	if p.SendCopy(nil, []byte("late")) {
		t.Fatal("a dead pipe took a copy")
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
