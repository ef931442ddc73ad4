package ferry_test

// The transport conformance suite: every transport (inproc, ipc, tcp,
// tls+tcp, ws, wss, quic) is held to the same behaviour. Each test is a
// table over tspecs; cases that need a raw byte stream run on the stream
// transports, WebSocket's own raw cases are in TestConformWSBadInput.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/pair"
	"github.com/ferrymq/ferry/protocol/pair1"
	"github.com/ferrymq/ferry/transport"
	ftls "github.com/ferrymq/ferry/transport/tls"
)

// exchange sends body from one socket and checks that the other receives
// it intact.
func exchange(t testing.TB, from, to *ferry.Socket, body []byte) {
	t.Helper()
	ctx := testutil.Ctx(t, 20*time.Second)
	if err := from.SendBytes(ctx, body); err != nil {
		t.Fatalf("send %d bytes: %v", len(body), err)
	}
	m, err := to.Recv(ctx)
	if err != nil {
		t.Fatalf("recv %d bytes: %v", len(body), err)
	}
	defer m.Free()
	if !bytes.Equal(m.Body, body) {
		t.Fatalf("sent %d bytes, received %d (equal: false)", len(body), len(m.Body))
	}
}

func tfill(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7+i>>9)
	}
	return b
}

// rawHandshake does the SP handshake by hand as a PAIR1 peer.
func rawSPHandshake(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(pair1Header); err != nil {
		t.Fatalf("raw handshake write: %v", err)
	}
	var h [8]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		t.Fatalf("raw handshake read: %v", err)
	}
	if !bytes.Equal(h[:], pair1Header) {
		t.Fatalf("listener sent header % x", h)
	}
}

// prefixMark in a case's bytes stands for the ipc frame type byte, sent
// on ipc only.
var prefixMark = []byte{1}

// prefix is the frame prefix for n bytes on e's stream transport.
func (e *tenv) prefix(n uint64) []byte {
	var b []byte
	if e.scheme == "ipc" {
		b = append(b, 1)
	}
	return binary.BigEndian.AppendUint64(b, n)
}

// TestConformHandshake: two PAIR1 sockets connect and talk; a peer of the
// wrong protocol is refused (by the SP header, or for ws by the
// subprotocol, HTTP 400) without disturbing the good pipe.
func TestConformHandshake(t *testing.T) {
	for _, s := range tspecs {
		t.Run(s.scheme, func(t *testing.T) {
			testutil.NoLeaks(t)
			e := newTenv(t, s)
			ls, ds, l := e.pair(t, ferry.SocketConfig{}, ferry.SocketConfig{})
			twait(t, 5*time.Second, "both pipes admitted", func() bool {
				return ls.Stats().PipesOpen == 1 && ds.Stats().PipesOpen == 1
			})
			exchange(t, ds, ls, []byte("hello"))
			exchange(t, ls, ds, []byte("world"))
			if p := ls.Stats().Pipes[0]; p.Local == "" || p.Remote == "" || p.Dialed {
				t.Errorf("listener pipe stats: %+v", p)
			}

			wrong, err := pair.New(ferry.SocketConfig{})
			if err != nil {
				t.Fatal(err)
			}
			defer wrong.Close()
			d, err := wrong.NewDialer(l.URL(), e.dcfg(ferry.DialerConfig{}))
			if err != nil {
				t.Fatal(err)
			}
			err = d.Start(testutil.Ctx(t, 5*time.Second))
			if err == nil {
				t.Fatal("a PAIR0 peer was admitted by a PAIR1 listener")
			}
			t.Logf("PAIR0 dialer: %v", err)
			if s.scheme == "ws" || s.scheme == "wss" {
				if !errors.Is(err, transport.ErrHandshake) {
					t.Errorf("ws dial with the wrong subprotocol: %v, want ErrHandshake", err)
				}
			} else {
				twaitReason(t, ls, ferry.ReasonWrongPeer)
			}
			exchange(t, ds, ls, []byte("still here"))
		})
	}
}

// TestConformFraming: messages from 0 bytes to 5 MiB cross both ways
// intact (ws fragments past 64 KiB), and 2,000 small ones keep order.
func TestConformFraming(t *testing.T) {
	sizes := []int{0, 1, 3, 4, 100, 600, 4095, 4096, 65535, 65536, 65537, 1<<20 + 5, 5 << 20}
	for _, s := range tspecs {
		t.Run(s.scheme, func(t *testing.T) {
			testutil.NoLeaks(t)
			e := newTenv(t, s)
			cfg := ferry.SocketConfig{RecvMaxSize: 8 << 20}
			ls, ds, _ := e.pair(t, cfg, cfg)
			for i, n := range sizes {
				body := tfill(n, byte(i))
				exchange(t, ds, ls, body)
				exchange(t, ls, ds, body)
			}
			const n = 2000
			ctx := testutil.Ctx(t, 20*time.Second)
			errc := make(chan error, 1)
			go func() {
				var b []byte
				for i := range n {
					b = binary.BigEndian.AppendUint32(b[:0], uint32(i))
					if err := ds.SendBytes(ctx, b); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			var m ferry.Msg
			for i := range n {
				if err := ls.RecvMsg(ctx, &m); err != nil {
					t.Fatal(err)
				}
				if len(m.Body) != 4 || binary.BigEndian.Uint32(m.Body) != uint32(i) {
					t.Fatalf("message %d: got % x", i, m.Body)
				}
			}
			m.Free()
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestConformRecvLimit: a message at the limit passes, one byte more
// closes the pipe as too large; on stream transports a frame announcing
// 2^62 bytes is refused before anything is allocated.
func TestConformRecvLimit(t *testing.T) {
	const limit = 64 << 10
	for _, s := range tspecs {
		t.Run(s.scheme, func(t *testing.T) {
			testutil.NoLeaks(t)
			e := newTenv(t, s)
			ls, ds, _ := e.pair(t, ferry.SocketConfig{RecvMaxSize: limit}, ferry.SocketConfig{})
			exchange(t, ds, ls, tfill(limit-4, 1)) // PAIR1's 4-byte header counts
			if err := ds.SendBytes(testutil.Ctx(t, 5*time.Second), tfill(limit-3, 2)); err != nil {
				t.Fatal(err)
			}
			st := twaitReason(t, ls, ferry.ReasonTooLarge)
			if st.ProtocolErrors == 0 {
				t.Errorf("too large not counted as a protocol error: %+v", st)
			}
			if !s.stream {
				return
			}
			// A raw peer announcing 2^62 bytes.
			rs, err := pair1.New(ferry.SocketConfig{RecvMaxSize: limit})
			if err != nil {
				t.Fatal(err)
			}
			defer rs.Close()
			l := e.listen(t, rs, "", ferry.ListenerConfig{})
			c := e.rawConn(t, l.URL())
			rawSPHandshake(t, c)
			twait(t, 5*time.Second, "raw pipe admitted", func() bool { return rs.Stats().PipesOpen == 1 })
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			c.Write(e.prefix(1 << 62))
			twaitReason(t, rs, ferry.ReasonTooLarge)
			runtime.ReadMemStats(&after)
			if d := after.TotalAlloc - before.TotalAlloc; d >= 512<<10 {
				t.Errorf("a 2^62-byte frame made the process allocate %d bytes", d)
			}
		})
	}
}

// TestConformClose: either side closing its socket closes the other's
// pipe as "peer closed", promptly, and nothing stays open.
func TestConformClose(t *testing.T) {
	for _, s := range tspecs {
		for _, side := range []string{"dialer", "listener"} {
			t.Run(s.scheme+"/"+side+"-closes", func(t *testing.T) {
				testutil.NoLeaks(t)
				e := newTenv(t, s)
				ls, ds, _ := e.pair(t, ferry.SocketConfig{}, ferry.SocketConfig{})
				exchange(t, ds, ls, []byte("x"))
				closer, other := ds, ls
				if side == "listener" {
					closer, other = ls, ds
				}
				start := time.Now()
				closer.Close()
				if d := time.Since(start); d > time.Second {
					t.Errorf("Close took %v", d)
				}
				twaitReason(t, other, ferry.ReasonPeerClosed)
				twait(t, 5*time.Second, "no open pipes", func() bool { return other.Stats().PipesOpen == 0 })
				if st := closer.Stats(); st.PipesOpen != 0 {
					t.Errorf("closed socket still has pipes: %+v", st)
				}
			})
		}
	}
}

// TestConformNeverReads: a peer that stops reading makes Send wait
// (bounded queues) and, on network transports, the write timeout closes
// the pipe. inproc has no write timeout: its peer is in the same process.
func TestConformNeverReads(t *testing.T) {
	for _, s := range tspecs {
		t.Run(s.scheme, func(t *testing.T) {
			testutil.NoLeaks(t)
			e := newTenv(t, s)
			ls, _, _ := e.pair(t,
				ferry.SocketConfig{WriteTimeout: 300 * time.Millisecond, SendQueueLen: 8},
				ferry.SocketConfig{RecvQueueLen: 1}) // the dialer never calls Recv
			body := make([]byte, 64<<10)
			accepted := 0
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				err := ls.SendBytes(ctx, body)
				cancel()
				if err != nil {
					if !errors.Is(err, ferry.ErrTimeout) {
						t.Fatalf("send: %v", err)
					}
					break
				}
				accepted++
				if accepted > 4096 { // 256 MiB
					t.Fatal("sends to a peer that never reads never blocked")
				}
			}
			t.Logf("accepted %d messages of 64 KiB before Send waited", accepted)
			if s.scheme != "inproc" {
				start := time.Now()
				twaitReason(t, ls, ferry.ReasonWriteTimeout)
				t.Logf("write timeout closed the pipe %v after Send waited", time.Since(start))
			}
		})
	}
}

// TestConformVanish: a peer whose connection disappears (reset, or for
// quic a UDP socket gone without a CONNECTION_CLOSE) has its pipe closed,
// by the reset or by the idle timeout.
func TestConformVanish(t *testing.T) {
	for _, s := range tspecs {
		if s.scheme == "inproc" {
			continue
		}
		t.Run(s.scheme, func(t *testing.T) {
			testutil.NoLeaks(t)
			e := newTenv(t, s)
			ls, err := pair1.New(ferry.SocketConfig{})
			if err != nil {
				t.Fatal(err)
			}
			defer ls.Close()
			l := e.listen(t, ls, "", ferry.ListenerConfig{ConnConfig: ferry.ConnConfig{IdleTimeout: 300 * time.Millisecond}})
			var vanish func()
			switch s.scheme {
			case "quic":
				vanish = rawQUICVanisher(t, e, l.URL())
			case "ws", "wss":
				c := rawWS(t, e, l.URL(), "pair1.sp.nanomsg.org")
				vanish = func() { resetClose(c.NetConn()) }
			default:
				c := e.rawConn(t, l.URL())
				rawSPHandshake(t, c)
				vanish = func() { resetClose(c) }
			}
			twait(t, 5*time.Second, "raw pipe admitted", func() bool { return ls.Stats().PipesOpen == 1 })
			start := time.Now()
			vanish()
			twait(t, 10*time.Second, "the pipe closed", func() bool {
				st := ls.Stats()
				return st.PipesOpen == 0 && st.PipesClosed == 1
			})
			st := ls.Stats()
			t.Logf("pipe closed after %v: %s: %v", time.Since(start), st.Closed[0].Reason, st.Closed[0].Err)
			if r := st.Closed[0].Reason; r != ferry.ReasonPeerClosed && r != ferry.ReasonIO {
				t.Errorf("reason %q, want peer closed or i/o error", r)
			}
		})
	}
}

// resetClose closes c's TCP connection with a reset where it can (the
// peer vanished), plainly otherwise.
func resetClose(c net.Conn) {
	if tc, ok := c.(*ftls.Conn); ok {
		c = tc.NetConn()
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// TestConformStreamBadInput: the bad input of wire.md on every stream
// transport closes only the offending pipe, with its reason, and the
// listener serves the next peer.
func TestConformStreamBadInput(t *testing.T) {
	const limit = 1 << 20
	cases := []struct {
		name   string
		reason ferry.Reason
		write  [][]byte // after a good SP header unless hdr is set
		hdr    bool     // write replaces the SP header
		cut    bool     // half-close after writing
	}{
		{"bad magic", ferry.ReasonHandshake, [][]byte{{0, 'S', 'Q', 0, 0, 0x11, 0, 0}}, true, false},
		{"bad version", ferry.ReasonHandshake, [][]byte{{0, 'S', 'P', 1, 0, 0x11, 0, 0}}, true, false},
		{"reserved bytes", ferry.ReasonHandshake, [][]byte{{0, 'S', 'P', 0, 0, 0x11, 0, 1}}, true, false},
		{"wrong protocol", ferry.ReasonWrongPeer, [][]byte{{0, 'S', 'P', 0, 0, 0x50, 0, 0}}, true, false},
		{"length 2^63", ferry.ReasonTooLarge, [][]byte{prefixMark, binary.BigEndian.AppendUint64(nil, 1<<63)}, false, false},
		{"length limit+1", ferry.ReasonTooLarge, [][]byte{prefixMark, binary.BigEndian.AppendUint64(nil, limit+1)}, false, false},
		{"truncated frame", ferry.ReasonTruncated, [][]byte{prefixMark, binary.BigEndian.AppendUint64(nil, 100), make([]byte, 10)}, false, true},
		{"silent peer", ferry.ReasonHandshakeTimeout, nil, true, false},
	}
	for _, s := range tspecs {
		if !s.stream {
			continue
		}
		for _, tc := range cases {
			t.Run(s.scheme+"/"+tc.name, func(t *testing.T) {
				testutil.NoLeaks(t)
				e := newTenv(t, s)
				ls, err := pair1.New(ferry.SocketConfig{RecvMaxSize: limit})
				if err != nil {
					t.Fatal(err)
				}
				defer ls.Close()
				l := e.listen(t, ls, "", ferry.ListenerConfig{ConnConfig: ferry.ConnConfig{HandshakeTimeout: 300 * time.Millisecond}})
				c := e.rawConn(t, l.URL())
				if tc.hdr {
					if tc.write != nil {
						c.Write(bytes.Join(tc.write, nil))
					}
				} else {
					rawSPHandshake(t, c)
					w := tc.write
					if &w[0][0] == &prefixMark[0] {
						w = w[1:]
						if s.scheme == "ipc" {
							w = append([][]byte{{1}}, w...) // ipc frames start with 0x01
						}
					}
					c.Write(bytes.Join(w, nil))
				}
				if tc.cut {
					c.(interface{ CloseWrite() error }).CloseWrite()
				}
				st := twaitReason(t, ls, tc.reason)
				t.Logf("%s: %v", st.Closed[0].Reason, st.Closed[0].Err)
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				var ne net.Error
				if _, err := io.Copy(io.Discard, c); errors.As(err, &ne) && ne.Timeout() {
					t.Errorf("the listener left the bad connection open: %v", err)
				}
				good, err := pair1.New(ferry.SocketConfig{})
				if err != nil {
					t.Fatal(err)
				}
				defer good.Close()
				e.dial(t, good, l.URL(), ferry.DialerConfig{})
				exchange(t, good, ls, []byte("after"))
			})
		}
	}
}

// TestConformRedial: a dialer reconnects after its listener closes and a
// new one binds the same address.
func TestConformRedial(t *testing.T) {
	for _, s := range tspecs {
		t.Run(s.scheme, func(t *testing.T) {
			testutil.NoLeaks(t)
			e := newTenv(t, s)
			ls, ds, l := e.pair(t, ferry.SocketConfig{}, ferry.SocketConfig{})
			exchange(t, ds, ls, []byte("one"))
			u := l.URL()
			l.Close()
			twait(t, 5*time.Second, "the dialer's pipe gone", func() bool { return ds.Stats().PipesOpen == 0 })
			e.listen(t, ls, u, ferry.ListenerConfig{})
			twait(t, 10*time.Second, "the dialer back", func() bool { return ds.Stats().PipesOpen == 1 })
			exchange(t, ds, ls, []byte("two"))
			exchange(t, ls, ds, []byte("three"))
		})
	}
}
