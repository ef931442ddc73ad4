package ferry_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/pair1"
)

// fanProto is a test-only protocol that speaks pair1's number (or the
// one in info, to stand in for a raw REQ or REP peer) but admits
// any number of pipes, each with its own send queue. Received messages go
// to one socket queue; Send is not offered, sendTo targets one pipe.
type fanProto struct {
	info  ferry.ProtocolInfo // zero: pair1's
	s     *ferry.Socket
	qlen  int
	recvq chan *ferry.Msg

	mu    sync.Mutex
	pipes map[*ferry.Pipe]chan *ferry.Msg
}

func (p *fanProto) Info() ferry.ProtocolInfo {
	if p.info.Self != 0 {
		return p.info
	}
	return ferry.ProtocolInfo{Self: 0x11, Peer: 0x11, SelfName: "pair1", PeerName: "pair1"}
}

func (p *fanProto) Init(s *ferry.Socket) {
	cfg := s.Config()
	p.s = s
	p.qlen = cfg.SendQueueLen
	p.recvq = make(chan *ferry.Msg, cfg.RecvQueueLen)
	p.pipes = make(map[*ferry.Pipe]chan *ferry.Msg)
}

func (p *fanProto) AddPipe(pp *ferry.Pipe) error {
	q := make(chan *ferry.Msg, p.qlen)
	pp.SetSendQueue(q)
	p.mu.Lock()
	p.pipes[pp] = q
	p.mu.Unlock()
	return nil
}

func (p *fanProto) RemovePipe(pp *ferry.Pipe) {
	p.mu.Lock()
	q := p.pipes[pp]
	delete(p.pipes, pp)
	p.mu.Unlock()
	drainQ(q) // the writer has exited and sendTo can no longer find q
}

func (p *fanProto) Receive(pp *ferry.Pipe, m *ferry.Msg) {
	select {
	case p.recvq <- m:
	case <-pp.Closing():
		ferry.RecycleMsg(m)
	case <-p.s.Closed():
		ferry.RecycleMsg(m)
	}
}

func (p *fanProto) Send(context.Context, *ferry.Msg) error { return ferry.ErrNotSupported }

func (p *fanProto) Recv(ctx context.Context) (*ferry.Msg, error) {
	select {
	case m := <-p.recvq:
		return m, nil
	case <-ctx.Done():
		return nil, ferry.CtxErr(ctx)
	case <-p.s.Closed():
		return nil, ferry.ErrClosed
	}
}

func (p *fanProto) Close() {
	drainQ(p.recvq)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, q := range p.pipes {
		drainQ(q)
	}
}

func drainQ(q chan *ferry.Msg) {
	for len(q) > 0 {
		ferry.RecycleMsg(<-q)
	}
}

// sendTo queues a copy of body for pipe pp without waiting. It reports
// whether the message was accepted.
func (p *fanProto) sendTo(pp *ferry.Pipe, body []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	q, ok := p.pipes[pp]
	if !ok {
		return false
	}
	m := ferry.NewLibMsg()
	m.SetBody(body)
	select {
	case q <- m:
		return true
	default:
		ferry.RecycleMsg(m)
		return false
	}
}

func (p *fanProto) list() []*ferry.Pipe {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ps []*ferry.Pipe
	for pp := range p.pipes {
		ps = append(ps, pp)
	}
	return ps
}

// badEnv is one case's world: a fanProto listener and a good pair1 peer.
type badEnv struct {
	proto    *fanProto
	ls       *ferry.Socket
	url      string
	good     *ferry.Socket
	goodPipe *ferry.Pipe // the listener's end of the good peer's pipe
}

const (
	badRecvMax = 1 << 20
	pollEvery  = 5 * time.Millisecond
	pollFor    = 5 * time.Second
)

var pair1Header = []byte{0, 'S', 'P', 0, 0, 0x11, 0, 0}

func newBadEnv(t *testing.T, scheme string, hs time.Duration) *badEnv {
	t.Helper()
	e := &badEnv{proto: &fanProto{}}
	var err error
	e.ls, err = ferry.NewSocket(e.proto, ferry.SocketConfig{RecvMaxSize: badRecvMax, WriteTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.ls.Close() })
	l, err := e.ls.NewListener(testutil.Addr(t, scheme), ferry.ListenerConfig{ConnConfig: ferry.ConnConfig{HandshakeTimeout: hs}})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	e.url = l.URL()
	e.good, err = pair1.New(ferry.SocketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.good.Close() })
	if _, err := e.good.Dial(testutil.Ctx(t, 5*time.Second), e.url); err != nil {
		t.Fatal(err)
	}
	e.goodPipe = e.waitPipe(t, nil)
	return e
}

// waitPipe waits for an admitted listener pipe other than not.
func (e *badEnv) waitPipe(t *testing.T, not *ferry.Pipe) *ferry.Pipe {
	t.Helper()
	for end := time.Now().Add(pollFor); time.Now().Before(end); time.Sleep(pollEvery) {
		for _, p := range e.proto.list() {
			if p != not {
				return p
			}
		}
	}
	t.Fatal("no new pipe admitted")
	return nil
}

// roundTrip proves the socket still serves the good pipe.
func (e *badEnv) roundTrip(t *testing.T, tag string) {
	t.Helper()
	ctx := testutil.Ctx(t, 5*time.Second)
	want := []byte("good peer " + tag)
	if err := e.good.SendBytes(ctx, want); err != nil {
		t.Fatalf("good peer send (%s): %v", tag, err)
	}
	m, err := e.ls.Recv(ctx)
	if err != nil {
		t.Fatalf("listener recv (%s): %v", tag, err)
	}
	defer m.Free()
	// pair1 puts its hop count (00 00 00 01) in front; fanProto keeps it.
	if !bytes.Equal(m.Body, append([]byte{0, 0, 0, 1}, want...)) {
		t.Fatalf("listener recv (%s): body %q", tag, m.Body)
	}
	if m.Pipe() != e.goodPipe {
		t.Fatalf("listener recv (%s): message came on pipe %v, want the good pipe", tag, m.Pipe())
	}
}

// waitStats polls the listener's Stats until cond holds.
func (e *badEnv) waitStats(t *testing.T, what string, cond func(ferry.Stats) bool) ferry.Stats {
	t.Helper()
	var st ferry.Stats
	for end := time.Now().Add(pollFor); ; time.Sleep(pollEvery) {
		st = e.ls.Stats()
		if cond(st) {
			return st
		}
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s; stats: %+v", what, st)
		}
	}
}

func (e *badEnv) waitReason(t *testing.T, r ferry.Reason) ferry.Stats {
	t.Helper()
	return e.waitStats(t, "a pipe closed with "+string(r), func(st ferry.Stats) bool { return st.CloseReasons[r] > 0 })
}

// rawDial opens a plain connection to the listener.
func rawDial(t *testing.T, url string) net.Conn {
	t.Helper()
	network, addr := "tcp", strings.TrimPrefix(url, "tcp://")
	if strings.HasPrefix(url, "ipc://") {
		network, addr = "unix", strings.TrimPrefix(url, "ipc://")
	}
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustWrite(t *testing.T, c net.Conn, parts ...[]byte) {
	t.Helper()
	// One write: the listener may close as soon as it has seen the first
	// bad byte, and a second write could then fail with EPIPE.
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(bytes.Join(parts, nil)); err != nil {
		t.Fatalf("raw write: %v", err)
	}
}

// rawHandshake dials, sends a pair1 header and reads the listener's.
func rawHandshake(t *testing.T, url string) net.Conn {
	t.Helper()
	return wirePeer(t, url, pair1Header, pair1Header)
}

func tcpPrefix(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// expectClosed reads c to its end: the listener must have closed it (EOF
// or reset), not left it hanging.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("raw conn: want EOF or reset, got %v", err)
	}
}

// kernelBufMax is the most a loopback TCP connection's two socket buffers
// can hold.
func kernelBufMax() int {
	total := 0
	for _, f := range []string{"/proc/sys/net/ipv4/tcp_wmem", "/proc/sys/net/ipv4/tcp_rmem"} {
		b, err := os.ReadFile(f)
		fs := strings.Fields(string(b))
		if err != nil || len(fs) != 3 {
			return 64 << 20
		}
		n, err := strconv.Atoi(fs[2])
		if err != nil {
			return 64 << 20
		}
		total += n
	}
	return total
}

func TestBadInput(t *testing.T) {
	// Not parallel: the too-large case measures TotalAlloc.
	testutil.NoLeaks(t)
	cases := []struct {
		name   string
		scheme string
		hs     time.Duration // listener handshake timeout; 0 for the default
		reason ferry.Reason
		run    func(t *testing.T, e *badEnv) net.Conn
	}{
		{"bad magic", "tcp", 0, ferry.ReasonHandshake, func(t *testing.T, e *badEnv) net.Conn {
			c := rawDial(t, e.url)
			mustWrite(t, c, []byte{0, 'S', 'Q', 0, 0, 0x11, 0, 0})
			return c
		}},
		{"bad version", "tcp", 0, ferry.ReasonHandshake, func(t *testing.T, e *badEnv) net.Conn {
			c := rawDial(t, e.url)
			mustWrite(t, c, []byte{0, 'S', 'P', 1, 0, 0x11, 0, 0})
			return c
		}},
		{"wrong protocol", "tcp", 0, ferry.ReasonWrongPeer, func(t *testing.T, e *badEnv) net.Conn {
			c := rawDial(t, e.url)
			mustWrite(t, c, []byte{0, 'S', 'P', 0, 0, 0x50, 0, 0}) // push0
			return c
		}},
		{"reserved bytes", "tcp", 0, ferry.ReasonHandshake, func(t *testing.T, e *badEnv) net.Conn {
			c := rawDial(t, e.url)
			mustWrite(t, c, []byte{0, 'S', 'P', 0, 0, 0x11, 0, 1})
			return c
		}},
		{"length 2^63", "tcp", 0, ferry.ReasonTooLarge, func(t *testing.T, e *badEnv) net.Conn {
			c := rawHandshake(t, e.url)
			e.waitStats(t, "the raw pipe admitted", func(st ferry.Stats) bool { return st.PipesOpen == 2 })
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			mustWrite(t, c, tcpPrefix(1<<63), []byte("x"))
			e.waitReason(t, ferry.ReasonTooLarge)
			runtime.ReadMemStats(&after)
			if d := after.TotalAlloc - before.TotalAlloc; d >= 512<<10 {
				t.Errorf("a 2^63-byte frame made the process allocate %d bytes (limit %d)", d, badRecvMax)
			} else {
				t.Logf("allocated %d bytes while refusing the frame", d)
			}
			return c
		}},
		{"length limit+1", "tcp", 0, ferry.ReasonTooLarge, func(t *testing.T, e *badEnv) net.Conn {
			c := rawHandshake(t, e.url)
			mustWrite(t, c, tcpPrefix(badRecvMax+1))
			return c
		}},
		{"truncated frame", "tcp", 0, ferry.ReasonTruncated, func(t *testing.T, e *badEnv) net.Conn {
			c := rawHandshake(t, e.url)
			mustWrite(t, c, tcpPrefix(100), make([]byte, 10))
			if err := c.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			return c
		}},
		{"silent peer", "tcp", 200 * time.Millisecond, ferry.ReasonHandshakeTimeout, func(t *testing.T, e *badEnv) net.Conn {
			start := time.Now()
			c := rawDial(t, e.url)
			e.waitReason(t, ferry.ReasonHandshakeTimeout)
			if d := time.Since(start); d < 150*time.Millisecond || d > 3*time.Second {
				t.Errorf("silent peer dropped after %v, want about 200ms", d)
			}
			return c
		}},
		{"never reads", "tcp", 0, ferry.ReasonWriteTimeout, func(t *testing.T, e *badEnv) net.Conn {
			c := rawHandshake(t, e.url)
			p := e.waitPipe(t, e.goodPipe)
			qlen := e.ls.Config().SendQueueLen
			heap0 := testutil.HeapInUse()
			body := make([]byte, 64<<10)
			accepted, last := 0, time.Now()
			for end := time.Now().Add(pollFor); ; {
				if e.proto.sendTo(p, body) {
					accepted++
					last = time.Now()
					continue
				}
				if time.Since(last) > 50*time.Millisecond {
					break // the queue stayed full: the writer is stuck
				}
				if time.Now().After(end) {
					t.Fatalf("sends to a peer that never reads were still accepted after %v (%d messages)", pollFor, accepted)
				}
				time.Sleep(time.Millisecond)
			}
			heap1 := testutil.HeapInUse()
			const batch = 256 // the writer's largest batch (pipe.go maxBatch)
			if limit := qlen + batch + kernelBufMax()/len(body) + 16; accepted > limit {
				t.Errorf("accepted %d messages of 64 KiB for a peer that never reads, want <= %d", accepted, limit)
			}
			// A stuck pipe pins at most its queue plus the writer's batch.
			// Each 64 KiB body lives in a 128 KiB pooled block (the 64 B
			// headroom tips it into the next power of two), so the design
			// bound is (SendQueueLen + maxBatch) * 128 KiB; 16 MiB slack.
			growth := int64(heap1) - int64(heap0)
			if limit := int64(qlen+batch)*128<<10 + 16<<20; growth > limit {
				t.Errorf("heap grew by %d bytes while the pipe was stuck, want <= %d", growth, limit)
			}
			t.Logf("accepted %d messages; heap grew by %.1f MiB", accepted, float64(growth)/(1<<20))
			st := e.waitReason(t, ferry.ReasonWriteTimeout)
			if time.Since(last) > 3*time.Second {
				t.Errorf("stuck pipe closed %v after the last accepted send", time.Since(last))
			}
			if e.proto.sendTo(p, body) {
				t.Errorf("send to the closed pipe was accepted; stats %+v", st)
			}
			return c
		}},
		{"ipc bad frame type", "ipc", 0, ferry.ReasonProtocol, func(t *testing.T, e *badEnv) net.Conn {
			c := rawHandshake(t, e.url)
			mustWrite(t, c, append([]byte{0x02}, tcpPrefix(5)...), []byte("hello"))
			return c
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newBadEnv(t, tc.scheme, tc.hs)
			e.roundTrip(t, "before")
			c := tc.run(t, e)
			st := e.waitReason(t, tc.reason)
			expectClosed(t, c)
			st = e.waitStats(t, "one pipe closed, one open", func(st ferry.Stats) bool {
				return st.PipesClosed == 1 && st.PipesOpen == 1
			})
			if st.CloseReasons[tc.reason] != 1 || len(st.CloseReasons) != 1 {
				t.Errorf("CloseReasons = %v, want only %q: 1", st.CloseReasons, tc.reason)
			}
			if len(st.Closed) != 1 || st.Closed[0].Reason != tc.reason {
				t.Errorf("Closed = %+v, want one pipe closed with %q", st.Closed, tc.reason)
			} else if st.Closed[0].Err == nil {
				t.Errorf("closed pipe has reason %q but no error", tc.reason)
			} else {
				t.Logf("closed: %s: %v", st.Closed[0].Reason, st.Closed[0].Err)
			}
			wantPE := uint64(0)
			switch tc.reason {
			case ferry.ReasonHandshake, ferry.ReasonWrongPeer, ferry.ReasonTooLarge, ferry.ReasonProtocol:
				wantPE = 1
			}
			if st.ProtocolErrors != wantPE {
				t.Errorf("ProtocolErrors = %d, want %d", st.ProtocolErrors, wantPE)
			}
			if len(st.Pipes) != 1 || st.Pipes[0].ID != e.goodPipe.ID() {
				t.Errorf("open pipes = %+v, want only the good pipe %d", st.Pipes, e.goodPipe.ID())
			}
			if gst := e.good.Stats(); gst.PipesClosed != 0 || gst.PipesOpen != 1 {
				t.Errorf("good peer lost its pipe: %+v", gst)
			}
			e.roundTrip(t, "after")
			// The listener still accepts newcomers.
			late, err := pair1.New(ferry.SocketConfig{})
			if err != nil {
				t.Fatal(err)
			}
			defer late.Close()
			ctx := testutil.Ctx(t, 5*time.Second)
			if _, err := late.Dial(ctx, e.url); err != nil {
				t.Fatalf("new peer after the bad one: %v", err)
			}
			if err := late.SendBytes(ctx, []byte("late")); err != nil {
				t.Fatal(err)
			}
			m, err := e.ls.Recv(ctx)
			if err != nil {
				t.Fatalf("message from a new peer after the bad one: %v", err)
			}
			if !bytes.HasSuffix(m.Body, []byte("late")) {
				t.Errorf("late peer's message: %q", m.Body)
			}
			m.Free()
		})
	}
}
