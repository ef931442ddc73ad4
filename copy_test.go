package ferry_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/pair1"
	"github.com/ferrymq/ferry/protocol/pull"
	"github.com/ferrymq/ferry/protocol/push"
)

// Copied sends and receives (Pipe.SendCopy, CopyQueue) are fast paths for
// small messages on stream transports. These tests drive them from raw
// peers that write or read the wire themselves, so the frames arrive in
// big runs (many whole frames per read, frames split across reads) and
// the bytes on the wire are checked exactly.

var (
	pushHeader = []byte{0, 'S', 'P', 0, 0, 0x50, 0, 0}
	pullHeader = []byte{0, 'S', 'P', 0, 0, 0x51, 0, 0}
	hopOne     = []byte{0, 0, 0, 1}
)

// spPrefix is the length prefix of a frame of n bytes on scheme.
func spPrefix(scheme string, n int) []byte {
	if scheme == "ipc" {
		return binary.BigEndian.AppendUint64([]byte{1}, uint64(n))
	}
	return tcpPrefix(uint64(n))
}

// wirePeer dials url, sends mine and expects theirs.
func wirePeer(t *testing.T, url string, mine, theirs []byte) net.Conn {
	t.Helper()
	c := rawDial(t, url)
	mustWrite(t, c, mine)
	var h [8]byte
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, h[:]); err != nil {
		t.Fatalf("raw handshake: %v", err)
	}
	if !bytes.Equal(h[:], theirs) {
		t.Fatalf("peer sent header % x, want % x", h, theirs)
	}
	c.SetReadDeadline(time.Time{})
	return c
}

// listenSock opens a socket made by mk with cfg, listening on scheme; it
// closes when the test ends. It returns the socket and its URL.
func listenSock(tb testing.TB, mk newSock, cfg ferry.SocketConfig, scheme string) (*ferry.Socket, string) {
	tb.Helper()
	s, err := mk(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	l, err := s.Listen(testutil.Addr(tb, scheme))
	if err != nil {
		tb.Fatal(err)
	}
	return s, l.URL()
}

// copySize is message i's body size in these tests: mostly small (copied),
// every ninth over CopyRecvMax and CopySendMax (the ordinary path).
func copySize(i int) int {
	if i%9 == 4 {
		return 3000
	}
	return 8 + (i*37)%300
}

// copyBody is message i's body: its number, then filler.
func copyBody(i int) []byte { return bodyOf(i, copySize(i)) }

// sendSize is message i's body size in TestCopiedSendWire: mixed in the
// first half, then all small (the writer is then mostly busy while the
// sender copies).
func sendSize(i int) int {
	if i < copySendN/2 {
		return copySize(i)
	}
	return 8 + i%100
}

func bodyOf(i, size int) []byte {
	b := make([]byte, size)
	binary.BigEndian.PutUint64(b, uint64(i))
	for j := 8; j < len(b); j++ {
		b[j] = byte(i + j)
	}
	return b
}

// writeSplit writes b to c in pieces of odd sizes, so frames straddle
// reads.
func writeSplit(c net.Conn, b []byte) error {
	for k := 0; len(b) > 0; k++ {
		n := min(len(b), 1+(k*7919)%6000)
		if _, err := c.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

type copyRecvCase struct {
	name   string
	mk     func(ferry.SocketConfig) (*ferry.Socket, error)
	mine   []byte // the raw sender's SP header
	theirs []byte
	hop    bool // cooked PAIR1: 4-byte hop count in front
}

var copyRecvCases = []copyRecvCase{
	{"pair1", pair1.New, pair1Header, pair1Header, true},
	{"pull", pull.New, pushHeader, pullHeader, false},
}

// TestCopiedReceiveOrder: a raw peer streams messages of mixed sizes
// (small ones the reader copies in, large ones it hands to Receive) in
// odd-sized writes into a socket with a short receive queue, and the
// receiver takes them with Recv, RecvMsg and RecvBytes in turn. Every
// message arrives once, in order, intact; PAIR1 messages whose hop count
// is over MaxTTL are dropped and counted, on either path.
func TestCopiedReceiveOrder(t *testing.T) {
	testutil.NoLeaks(t)
	const n = 6000
	for _, tc := range copyRecvCases {
		for _, scheme := range []string{"tcp", "ipc"} {
			t.Run(tc.name+"/"+scheme, func(t *testing.T) {
				ls, url := listenSock(t, tc.mk, ferry.SocketConfig{RecvQueueLen: 8}, scheme)
				c := wirePeer(t, url, tc.mine, tc.theirs)
				dropped := func(i int) bool { return tc.hop && i%50 == 7 } // hop count 200 > MaxTTL
				var wire []byte
				want := 0
				for i := range n {
					b := copyBody(i)
					if tc.hop {
						hop := hopOne
						if dropped(i) {
							hop = []byte{0, 0, 0, 200}
						}
						wire = append(append(append(wire, spPrefix(scheme, 4+len(b))...), hop...), b...)
					} else {
						wire = append(append(wire, spPrefix(scheme, len(b))...), b...)
					}
					if !dropped(i) {
						want++
					}
				}
				werr := make(chan error, 1)
				go func() { werr <- writeSplit(c, wire) }()

				ctx := testutil.Ctx(t, 20*time.Second)
				var m ferry.Msg
				defer m.Free()
				var dst []byte
				next := 0
				for k := range want {
					for dropped(next) {
						next++
					}
					var body []byte
					switch k % 3 {
					case 0:
						rm, err := ls.Recv(ctx)
						if err != nil {
							t.Fatalf("message %d: %v", next, err)
						}
						body = append([]byte(nil), rm.Body...)
						if len(rm.Header) != 0 {
							t.Fatalf("message %d: header % x, want none", next, rm.Header)
						}
						rm.Free()
					case 1:
						if err := ls.RecvMsg(ctx, &m); err != nil {
							t.Fatalf("message %d: %v", next, err)
						}
						body = m.Body
						if m.Pipe() == nil {
							t.Fatalf("message %d: no pipe", next)
						}
					case 2:
						var err error
						if dst, err = ls.RecvBytes(ctx, dst[:0]); err != nil {
							t.Fatalf("message %d: %v", next, err)
						}
						body = dst
					}
					if !bytes.Equal(body, copyBody(next)) {
						got := -1
						if len(body) >= 8 {
							got = int(binary.BigEndian.Uint64(body))
						}
						t.Fatalf("message %d: got message %d (%d bytes), want %d bytes", next, got, len(body), copySize(next))
					}
					next++
				}
				if err := <-werr; err != nil {
					t.Fatal(err)
				}
				st := ls.Stats()
				t.Logf("in %d, copied in %d, dropped %d", st.MsgsIn, st.MsgsCopiedIn, st.Dropped)
				if st.MsgsIn != n {
					t.Errorf("MsgsIn %d, want %d", st.MsgsIn, n)
				}
				if st.MsgsCopiedIn == 0 || st.MsgsCopiedIn >= uint64(want) {
					t.Errorf("MsgsCopiedIn %d, want some but not all of %d (the large ones are not copied)", st.MsgsCopiedIn, want)
				}
				if drops := uint64(n - want); st.Dropped != drops {
					t.Errorf("Dropped %d, want %d", st.Dropped, drops)
				}
			})
		}
	}
}

// TestCopiedReceiveBadFrame: the copy path leaves a bad frame to the
// ordinary read, which closes that pipe only, after delivering what came
// before it: a PAIR1 hop count over 255 (a protocol error) and a length
// over RecvMaxSize (refused before anything is allocated).
func TestCopiedReceiveBadFrame(t *testing.T) {
	testutil.NoLeaks(t)
	cases := []struct {
		name   string
		bad    []byte
		reason ferry.Reason
	}{
		{"hop over 255", append(tcpPrefix(6), 1, 0, 0, 1, 'x', 'y'), ferry.ReasonProtocol},
		{"too large", tcpPrefix(1 << 40), ferry.ReasonTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ls, url := listenSock(t, pair1.New, ferry.SocketConfig{RecvMaxSize: 4096}, "tcp")
			c := wirePeer(t, url, pair1Header, pair1Header)
			var wire []byte
			frame := func(i int) {
				b := binary.BigEndian.AppendUint64(nil, uint64(i))
				wire = append(append(append(wire, tcpPrefix(uint64(4+len(b)))...), hopOne...), b...)
			}
			for i := range 10 {
				frame(i)
			}
			wire = append(wire, tc.bad...)
			for i := 10; i < 20; i++ {
				frame(i)
			}
			mustWrite(t, c, wire)
			ctx := testutil.Ctx(t, 5*time.Second)
			for i := range 10 {
				b, err := ls.RecvBytes(ctx, nil)
				if err != nil || len(b) != 8 || binary.BigEndian.Uint64(b) != uint64(i) {
					t.Fatalf("message %d: % x %v", i, b, err)
				}
			}
			expectClosed(t, c)
			waitFor(t, "the pipe to close with "+string(tc.reason), func() bool { return ls.Stats().CloseReasons[tc.reason] == 1 })
			short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			if b, err := ls.RecvBytes(short, nil); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("after the bad frame: got % x %v, want nothing", b, err)
			}
			// The socket still serves a new peer.
			c2 := wirePeer(t, url, pair1Header, pair1Header)
			mustWrite(t, c2, tcpPrefix(7), hopOne, []byte("new"))
			if b, err := ls.RecvBytes(ctx, nil); err != nil || string(b) != "new" {
				t.Fatalf("new peer: %q %v", b, err)
			}
		})
	}
}

// TestCopiedReceiveCloseWhileFull: readers waiting for room in a full
// copy queue (nobody receives) leave when the socket closes: Close
// returns and no goroutine is left. And when the receiver comes back
// instead, every message arrives and a peer that left is then noticed.
func TestCopiedReceiveCloseWhileFull(t *testing.T) {
	testutil.NoLeaks(t)
	const n = 2000
	for _, tc := range copyRecvCases {
		for _, receive := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/receive=%v", tc.name, receive), func(t *testing.T) {
				peers := 3
				if tc.hop {
					peers = 1 // PAIR takes one peer
				}
				ls, url := listenSock(t, tc.mk, ferry.SocketConfig{RecvQueueLen: 4}, "tcp")
				var wire []byte
				for i := range n {
					b := binary.BigEndian.AppendUint64(nil, uint64(i))
					if tc.hop {
						wire = append(append(append(wire, tcpPrefix(12)...), hopOne...), b...)
					} else {
						wire = append(append(wire, tcpPrefix(8)...), b...)
					}
				}
				for range peers {
					c := wirePeer(t, url, tc.mine, tc.theirs)
					mustWrite(t, c, wire)
					c.Close()
				}
				waitFor(t, "the copy queue to fill", func() bool { return ls.Stats().MsgsCopiedIn >= 4 })
				if !receive {
					done := make(chan struct{})
					go func() { ls.Close(); close(done) }()
					select {
					case <-done:
					case <-time.After(5 * time.Second):
						t.Fatal("Close hangs against readers waiting for room")
					}
					return
				}
				ctx := testutil.Ctx(t, 20*time.Second)
				last := make(map[*ferry.Pipe]int)
				var m ferry.Msg
				defer m.Free()
				for k := range n * peers {
					if err := ls.RecvMsg(ctx, &m); err != nil {
						t.Fatalf("message %d: %v", k, err)
					}
					i := int(binary.BigEndian.Uint64(m.Body))
					if prev, ok := last[m.Pipe()]; (ok && i != prev+1) || (!ok && i != 0) {
						t.Fatalf("pipe %v: message %d after %d", m.Pipe(), i, prev)
					}
					last[m.Pipe()] = i
				}
				waitFor(t, "the peers' pipes to close", func() bool { return ls.Stats().CloseReasons[ferry.ReasonPeerClosed] == uint64(peers) })
				if st := ls.Stats(); st.MsgsCopiedIn == 0 {
					t.Errorf("nothing copied in")
				}
			})
		}
	}
}

// readFrames reads n SP frames from a stream (tcp framing) and checks
// each: header hdr, body bodyOf(i, sendSize(i)).
func readFrames(c net.Conn, n int, hdr []byte) error {
	br := bufio.NewReader(c)
	var pfx [8]byte
	for i := range n {
		if _, err := io.ReadFull(br, pfx[:]); err != nil {
			return fmt.Errorf("frame %d: %v", i, err)
		}
		size := binary.BigEndian.Uint64(pfx[:])
		if want := uint64(len(hdr) + sendSize(i)); size != want {
			return fmt.Errorf("frame %d: length %d, want %d", i, size, want)
		}
		b := make([]byte, size)
		if _, err := io.ReadFull(br, b); err != nil {
			return fmt.Errorf("frame %d: %v", i, err)
		}
		if !bytes.Equal(b[:len(hdr)], hdr) || !bytes.Equal(b[len(hdr):], bodyOf(i, sendSize(i))) {
			return fmt.Errorf("frame %d: wrong bytes (header % x)", i, b[:min(8, len(b))])
		}
	}
	return nil
}

const copySendN = 20000

// TestCopiedSendWire: a sender streams messages of mixed sizes (small ones
// copied into the pipe's buffer, large ones queued), then small ones, with
// Send and SendBytes to a raw peer that starts reading late, then shuts
// down: every frame
// is on the wire, in order, framed exactly as the queued path frames it
// (PAIR1 with its hop count). How many were copied depends on timing (a
// slow sender writes directly instead); TestSendCopyRules pins the rules.
func TestCopiedSendWire(t *testing.T) {
	testutil.NoLeaks(t)
	cases := []struct {
		name         string
		mk           func(ferry.SocketConfig) (*ferry.Socket, error)
		mine, theirs []byte // the raw peer's SP header and the sender's
		hdr          []byte
	}{
		{"pair1", pair1.New, pair1Header, pair1Header, hopOne},
		{"push", push.New, pullHeader, pushHeader, nil},
	}
	const n = copySendN
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			read := make(chan error, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					read <- err
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				var h [8]byte
				if _, err := c.Write(tc.mine); err != nil {
					read <- err
					return
				}
				if _, err := io.ReadFull(c, h[:]); err != nil || !bytes.Equal(h[:], tc.theirs) {
					read <- fmt.Errorf("handshake: % x %v", h, err)
					return
				}
				time.Sleep(20 * time.Millisecond) // the sender's writer blocks meanwhile: busy
				read <- readFrames(c, n, tc.hdr)
			}()
			ds, err := tc.mk(ferry.SocketConfig{SendQueueLen: 16})
			if err != nil {
				t.Fatal(err)
			}
			defer ds.Close()
			ctx := testutil.Ctx(t, 20*time.Second)
			if _, err := ds.Dial(ctx, "tcp://"+ln.Addr().String()); err != nil {
				t.Fatal(err)
			}
			m := ferry.NewMsg(0)
			defer m.Free()
			for i := range n {
				if i%2 == 0 {
					m.SetBody(bodyOf(i, sendSize(i)))
					err = ds.Send(ctx, m)
				} else {
					err = ds.SendBytes(ctx, bodyOf(i, sendSize(i)))
				}
				if err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
			}
			if err := ds.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			if err := <-read; err != nil {
				t.Fatal(err)
			}
			st := ds.Stats()
			t.Logf("out %d, copied %d", st.MsgsOut, st.MsgsCopied)
			if st.MsgsOut != n {
				t.Errorf("MsgsOut %d, want %d", st.MsgsOut, n)
			}
		})
	}
}

// TestCopiedSendMsgState: a message sent by copying is left as any sent
// message is: empty and in the sent state (a second Send of it is
// ErrState), reusable after SetBody; raw and header-carrying messages
// keep the ordinary rules.
func TestCopiedSendMsgState(t *testing.T) {
	testutil.NoLeaks(t)
	ls, ds := connect(t, "tcp", pair1.New, ferry.SocketConfig{})
	ctx := testutil.Ctx(t, 5*time.Second)
	m := ferry.NewMsg(0)
	defer m.Free()
	for i := range 1000 {
		m.SetBody([]byte(strings.Repeat("x", i%50+1)))
		if err := ds.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
		if len(m.Body) != 0 || len(m.Header) != 0 {
			t.Fatalf("send %d: message not emptied", i)
		}
		if err := ds.Send(ctx, m); !errors.Is(err, ferry.ErrState) {
			t.Fatalf("second send of message %d: %v, want ErrState", i, err)
		}
	}
	for i := range 1000 {
		b, err := ls.RecvBytes(ctx, nil)
		if err != nil || len(b) != i%50+1 {
			t.Fatalf("message %d: %q %v", i, b, err)
		}
	}
}

// TestCopiedSendOrder: a sender streams small messages from before its
// pipe is up (the first ones wait in the queue, and the writer takes
// them while later ones are being copied) to a raw peer: the frames come
// in send order. Several rounds: the interleavings differ.
func TestCopiedSendOrder(t *testing.T) {
	testutil.NoLeaks(t)
	cases := []struct {
		name         string
		mk           func(ferry.SocketConfig) (*ferry.Socket, error)
		mine, theirs []byte
		hdr          int
	}{
		{"pair1", pair1.New, pair1Header, pair1Header, 4},
		{"push", push.New, pullHeader, pushHeader, 0},
	}
	const n, rounds = 3000, 5
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for range rounds {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				ds, err := tc.mk(ferry.SocketConfig{})
				if err != nil {
					t.Fatal(err)
				}
				defer ds.Close()
				ctx := testutil.Ctx(t, 10*time.Second)
				dialed := make(chan error, 1)
				go func() { _, err := ds.Dial(ctx, "tcp://"+ln.Addr().String()); dialed <- err }()
				sent := make(chan error, 1)
				go func() {
					for i := range n {
						if err := ds.SendBytes(ctx, seqBody(i)); err != nil {
							sent <- err
							return
						}
					}
					sent <- nil
				}()
				c, err := ln.Accept()
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				var h [8]byte
				if _, err := c.Write(tc.mine); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(c, h[:]); err != nil || !bytes.Equal(h[:], tc.theirs) {
					t.Fatalf("handshake: % x %v", h, err)
				}
				if err := <-dialed; err != nil {
					t.Fatal(err)
				}
				br := bufio.NewReader(c)
				b := make([]byte, 8+tc.hdr+8)
				for i := range n {
					if _, err := io.ReadFull(br, b); err != nil {
						t.Fatalf("frame %d: %v", i, err)
					}
					if got := binary.BigEndian.Uint64(b[8+tc.hdr:]); got != uint64(i) {
						t.Fatalf("frame %d holds message %d", i, got)
					}
				}
				if err := <-sent; err != nil {
					t.Fatal(err)
				}
				ds.Close()
			}
		})
	}
}

// TestCopiedReceiveManyReaders: several pipes feed one PULL socket with a
// tiny queue, each a mix of small frames and large ones (a reader holding
// a large frame waits for the copy queue to empty, while others wait for
// room): every message arrives, in order per pipe, and no reader is left
// waiting on a queue that has emptied.
func TestCopiedReceiveManyReaders(t *testing.T) {
	testutil.NoLeaks(t)
	const peers, perPeer, rounds = 4, 600, 3
	for range rounds {
		ls, url := listenSock(t, pull.New, ferry.SocketConfig{RecvQueueLen: 4}, "tcp")
		for k := range peers {
			var wire []byte
			for i := range perPeer {
				size := 16
				if (i+k)%25 == 0 {
					size = 2000
				}
				b := make([]byte, size)
				binary.BigEndian.PutUint64(b, uint64(k))
				binary.BigEndian.PutUint64(b[8:], uint64(i))
				wire = append(append(wire, tcpPrefix(uint64(size))...), b...)
			}
			c := wirePeer(t, url, pushHeader, pullHeader)
			mustWrite(t, c, wire)
		}
		ctx := testutil.Ctx(t, 10*time.Second)
		next := make([]uint64, peers)
		var m ferry.Msg
		for n := range peers * perPeer {
			if err := ls.RecvMsg(ctx, &m); err != nil {
				t.Fatalf("message %d of %d: %v (next per peer %v)", n, peers*perPeer, err, next)
			}
			k, i := binary.BigEndian.Uint64(m.Body), binary.BigEndian.Uint64(m.Body[8:])
			if i != next[k] {
				t.Fatalf("peer %d: message %d, want %d", k, i, next[k])
			}
			next[k]++
		}
		m.Free()
		ls.Close()
	}
}

// TestCopiedReceiveStaleHandle: RecvMsg into a stale copy of a freed
// handle (the nbio #445 shape) must not write into the block that handle
// once had, which may be another message's now: the copy path takes
// fresh storage, as the ordinary path does.
func TestCopiedReceiveStaleHandle(t *testing.T) {
	testutil.NoLeaks(t)
	ls, ds := connect(t, "tcp", pair1.New, ferry.SocketConfig{})
	ctx := testutil.Ctx(t, 5*time.Second)
	for i := range 200 {
		if err := ds.SendBytes(ctx, fmt.Appendf(nil, "message %03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	for round := range 50 {
		m := ferry.NewMsg(0)
		if err := ls.RecvMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
		got++
		stale := new(ferry.Msg)
		reflect.ValueOf(stale).Elem().Set(reflect.ValueOf(m).Elem())
		m.Free()
		owner := ferry.NewMsg(0) // may get the freed block from the pool
		owner.SetBody([]byte(fmt.Sprintf("owner %02d", round)))
		if err := ls.RecvMsg(ctx, stale); err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("message %03d", got); string(stale.Body) != want {
			t.Fatalf("round %d: stale handle got %q, want %q", round, stale.Body, want)
		}
		got++
		if want := fmt.Sprintf("owner %02d", round); string(owner.Body) != want {
			t.Fatalf("round %d: the block's new owner now holds %q: the receive wrote into it", round, owner.Body)
		}
		owner.Free()
	}
	if st := ls.Stats(); st.MsgsCopiedIn == 0 {
		t.Fatal("nothing was copied in: the test did not exercise the copy path")
	}
}

// TestCopiedSendOrderMixed: several goroutines stream on one socket, a
// mix of small messages (copied while the writer is busy) and large
// ones (queued), so copies keep being made while queued messages wait:
// every goroutine's messages come in its order, none lost. Several
// rounds: the interleavings differ.
func TestCopiedSendOrderMixed(t *testing.T) {
	testutil.NoLeaks(t)
	cases := []struct {
		name         string
		mk           newSock
		mine, theirs []byte
		hdr          int
	}{
		{"pair1", pair1.New, pair1Header, pair1Header, 4},
		{"push", push.New, pullHeader, pushHeader, 0},
	}
	const senders, n, rounds = 4, 2000, 3
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for range rounds {
				s, url := listenSock(t, tc.mk, ferry.SocketConfig{SendQueueLen: 16}, "tcp")
				c := wirePeer(t, url, tc.mine, tc.theirs)
				ctx := testutil.Ctx(t, 10*time.Second)
				errs := make(chan error, senders)
				for g := range senders {
					go func() {
						b := make([]byte, ferry.CopySendMax+100)
						for i := range n {
							size := 5
							if i%7 == 3 {
								size = len(b) // too large to copy
							}
							b[0] = byte(g)
							binary.BigEndian.PutUint32(b[1:], uint32(i))
							if err := s.SendBytes(ctx, b[:size]); err != nil {
								errs <- err
								return
							}
						}
						errs <- nil
					}()
				}
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				var next [senders]uint32
				var pfx [8]byte
				for k := range senders * n {
					if _, err := io.ReadFull(br, pfx[:]); err != nil {
						t.Fatalf("frame %d: %v", k, err)
					}
					f := make([]byte, binary.BigEndian.Uint64(pfx[:]))
					if _, err := io.ReadFull(br, f); err != nil || len(f) < tc.hdr+5 {
						t.Fatalf("frame %d: %d bytes, %v", k, len(f), err)
					}
					g, i := f[tc.hdr], binary.BigEndian.Uint32(f[tc.hdr+1:])
					if int(g) >= senders || i != next[g] {
						t.Fatalf("frame %d: sender %d's message %d, want its %d", k, g, i, next[min(int(g), senders-1)])
					}
					next[g]++
				}
				for range senders {
					if err := <-errs; err != nil {
						t.Fatal(err)
					}
				}
				c.Close()
				s.Close()
			}
		})
	}
}

// TestPlainWaitersSeeStreamPipe: receivers that wait on a socket with no
// stream pipe (no pipe at all, or inproc only) wait on its channel alone;
// a tcp pipe admitted meanwhile copies small frames into the copy queue
// instead, and must end those waits. Four receivers take one message
// each: each must get one, the copied frames as much as the inproc one.
func TestPlainWaitersSeeStreamPipe(t *testing.T) {
	testutil.NoLeaks(t)
	for _, withInproc := range []bool{false, true} {
		t.Run(fmt.Sprintf("inproc=%v", withInproc), func(t *testing.T) {
			ls, url := listenSock(t, pull.New, ferry.SocketConfig{}, "tcp")
			var ip *ferry.Socket
			if withInproc {
				l, err := ls.Listen(testutil.Addr(t, "inproc"))
				if err != nil {
					t.Fatal(err)
				}
				ip, err = push.New(ferry.SocketConfig{})
				if err != nil {
					t.Fatal(err)
				}
				defer ip.Close()
				if _, err := ip.Dial(testutil.Ctx(t, 5*time.Second), l.URL()); err != nil {
					t.Fatal(err)
				}
			}
			const n = 4
			got := make(chan string, n)
			for range n {
				go func() {
					b, err := ls.RecvBytes(testutil.Ctx(t, 10*time.Second), nil)
					if err != nil {
						got <- err.Error()
						return
					}
					got <- string(b)
				}()
			}
			time.Sleep(20 * time.Millisecond) // let them wait
			if ls.ReadsInline() {
				t.Fatal("the socket has a stream pipe before the tcp peer dialled")
			}
			var wire []byte
			for i := range n {
				if i == 0 && withInproc {
					continue
				}
				wire = append(append(wire, tcpPrefix(5)...), fmt.Sprintf("msg-%d", i)...)
			}
			c := wirePeer(t, url, pushHeader, pullHeader)
			mustWrite(t, c, wire)
			if withInproc {
				time.Sleep(20 * time.Millisecond) // after the copies
				if err := ip.SendBytes(context.Background(), []byte("msg-0")); err != nil {
					t.Fatal(err)
				}
			}
			seen := map[string]bool{}
			for i := range n {
				select {
				case s := <-got:
					if !strings.HasPrefix(s, "msg-") || seen[s] {
						t.Fatalf("receiver %d: %q (seen %v)", i, s, seen)
					}
					seen[s] = true
				case <-time.After(5 * time.Second):
					t.Fatalf("%d of %d receivers still waiting 5 s after the tcp peer sent (got %v)", n-i, n, seen)
				}
			}
		})
	}
}
