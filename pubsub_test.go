package ferry_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/pub"
	"github.com/ferrymq/ferry/protocol/sub"
)

// recvNone checks that s has nothing to hand over within d.
func recvNone(t *testing.T, r interface {
	Recv(context.Context) (*ferry.Msg, error)
}, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if m, err := r.Recv(ctx); !errors.Is(err, ferry.ErrTimeout) {
		t.Fatalf("Recv: got %v, %v; want nothing", m, err)
	}
}

func recvString(t *testing.T, r interface {
	Recv(context.Context) (*ferry.Msg, error)
}) string {
	t.Helper()
	m, err := r.Recv(testutil.Ctx(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	return string(m.Body)
}

// TestPubSubTopics, over every transport: prefix filtering, the empty
// topic, no subscription (nothing kept, though messages arrive),
// Unsubscribe, and the operations each side does not support.
func TestPubSubTopics(t *testing.T) {
	testutil.NoLeaks(t)
	for _, scheme := range testutil.Transports {
		t.Run(scheme, func(t *testing.T) {
			t.Parallel()
			ps, subs, _ := fanIn(t, scheme, pub.New, ferry.SocketConfig{}, sub.New, ferry.SocketConfig{}, 1)
			ss := subs[0]
			ctx := testutil.Ctx(t, 10*time.Second)
			if _, err := ps.Recv(ctx); !errors.Is(err, ferry.ErrNotSupported) {
				t.Fatalf("pub Recv: %v", err)
			}
			if err := ss.SendBytes(ctx, []byte("x")); !errors.Is(err, ferry.ErrNotSupported) {
				t.Fatalf("sub Send: %v", err)
			}
			if err := sub.Subscribe(ps, []byte("a")); !errors.Is(err, ferry.ErrNotSupported) {
				t.Fatalf("Subscribe on a PUB socket: %v", err)
			}
			// No subscription: messages arrive and are dropped by the filter.
			ps.SendBytes(ctx, []byte("alpha"))
			pollUntil(t, "the message to arrive", func() bool { return ss.Stats().MsgsIn == 1 })
			recvNone(t, ss, 20*time.Millisecond)

			for _, topic := range []string{"al", "be", "be"} { // twice is once
				if err := sub.Subscribe(ss, []byte(topic)); err != nil {
					t.Fatal(err)
				}
			}
			for _, b := range []string{"alpha", "a", "gamma", "beta", "", "al"} {
				ps.SendBytes(ctx, []byte(b))
			}
			for _, want := range []string{"alpha", "beta", "al"} {
				if got := recvString(t, ss); got != want {
					t.Fatalf("got %q, want %q", got, want)
				}
			}
			if err := sub.Unsubscribe(ss, []byte("al")); err != nil {
				t.Fatal(err)
			}
			if err := sub.Unsubscribe(ss, []byte("al")); !errors.Is(err, sub.ErrNotSubscribed) {
				t.Fatalf("second Unsubscribe: %v", err)
			}
			if err := sub.Subscribe(ss, nil); err != nil { // everything
				t.Fatal(err)
			}
			for _, b := range []string{"alpha", "", "zeta"} {
				ps.SendBytes(ctx, []byte(b))
			}
			for _, want := range []string{"alpha", "", "zeta"} {
				if got := recvString(t, ss); got != want {
					t.Fatalf("got %q, want %q", got, want)
				}
			}
			if st := ss.Stats(); st.MsgsIn != 10 || st.Dropped != 0 {
				t.Fatalf("sub stats: %+v", st)
			}
		})
	}
}

// TestSubContexts: each context has its own topics and queue; a message
// matching several contexts reaches each; a full queue drops its oldest
// (counted); closing a context or the socket ends its Recv with
// ErrClosed.
func TestSubContexts(t *testing.T) {
	testutil.NoLeaks(t)
	ps, subs, _ := fanIn(t, "inproc", pub.New, ferry.SocketConfig{}, sub.New, ferry.SocketConfig{RecvQueueLen: 4}, 1)
	ss := subs[0]
	ctx := testutil.Ctx(t, 10*time.Second)
	a, _ := ss.OpenContext()
	b, _ := ss.OpenContext()
	defer a.Close()
	sub.Subscribe(a, []byte("a"))
	sub.Subscribe(b, []byte("b"))
	sub.Subscribe(b, []byte("ab"))
	sub.Subscribe(ss, []byte("")) // the socket's own context: everything
	for _, s := range []string{"a1", "b1", "ab1", "c1"} {
		ps.SendBytes(ctx, []byte(s))
	}
	for _, c := range []struct {
		r interface {
			Recv(context.Context) (*ferry.Msg, error)
		}
		want []string
	}{{a, []string{"a1", "ab1"}}, {b, []string{"b1", "ab1"}}, {ss, []string{"a1", "b1", "ab1", "c1"}}} {
		for _, want := range c.want {
			if got := recvString(t, c.r); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		}
		recvNone(t, c.r, 10*time.Millisecond)
	}
	// Overflow context a (queue of 4) with 10 messages: the last 4 stay.
	for i := range 10 {
		ps.SendBytes(ctx, fmt.Appendf(nil, "a%d", i))
	}
	pollUntil(t, "10 more messages", func() bool { return ss.Stats().MsgsIn == 14 })
	for i := 6; i < 10; i++ {
		if got, want := recvString(t, a), fmt.Sprintf("a%d", i); got != want {
			t.Fatalf("after overflow got %q, want %q", got, want)
		}
	}
	if st := ss.Stats(); st.Dropped != 12 { // 6 from a, 6 from the socket's own
		t.Fatalf("dropped %d, want 12", st.Dropped)
	}
	errc := make(chan error)
	go func() { _, err := b.Recv(ctx); errc <- err }()
	b.Close()
	if err := <-errc; !errors.Is(err, ferry.ErrClosed) {
		t.Fatalf("Recv on a closed context: %v", err)
	}
	if err := sub.Subscribe(b, []byte("x")); !errors.Is(err, ferry.ErrClosed) {
		t.Fatalf("Subscribe on a closed context: %v", err)
	}
	go func() { _, err := a.Recv(ctx); errc <- err }()
	ss.Close()
	if err := <-errc; !errors.Is(err, ferry.ErrClosed) {
		t.Fatalf("Recv after socket close: %v", err)
	}
	if _, err := ss.OpenContext(); !errors.Is(err, ferry.ErrClosed) {
		t.Fatalf("OpenContext after close: %v", err)
	}
}

// stalledSubscriber connects to url over tcp, sends SUB's handshake, and
// never reads again, with a small receive buffer so the kernel holds
// little: PUB's queue for it must overflow.
func stalledSubscriber(t *testing.T, url string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		c.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return err
	}}
	c, err := d.Dial("tcp", url[len("tcp://"):])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write([]byte{0, 'S', 'P', 0, 0, 0x21, 0, 0}); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPubFanOut100: one PUB over tcp to 100 subscribers: 98 that keep
// up, one ferry SUB that stops calling Recv (its own queue drops its
// oldest, counted on its side) and one peer that stops reading its
// connection; plus, over inproc, a peer that stops reading (PUB's queue
// for it drops its oldest, counted on PUB's side). The 98 get all 2,000
// messages in order; PUB never blocks; the heap stays bounded; closing
// everything leaves no goroutine.
func TestPubFanOut100(t *testing.T) {
	testutil.NoLeaks(t)
	const healthy, n, round, size = 98, 2000, 100, 512
	heap0 := testutil.HeapInUse()
	ps, subs, url := fanIn(t, "tcp", pub.New, ferry.SocketConfig{SendQueueLen: 128}, sub.New, ferry.SocketConfig{RecvQueueLen: n}, healthy)
	lazyCfg := ferry.SocketConfig{RecvQueueLen: 16}
	lazy, err := sub.New(lazyCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer lazy.Close()
	sub.Subscribe(lazy, nil)
	if _, err := lazy.Dial(testutil.Ctx(t, 5*time.Second), url); err != nil {
		t.Fatal(err)
	}
	stalledSubscriber(t, url)
	// The kernel buffers of a loopback connection hold megabytes, more
	// than this whole run, so the subscriber that must make PUB drop is
	// on inproc, where a pipe holds 16 messages: a SUB-speaking peer
	// that never takes what it received, so its pipe stops reading.
	il, err := ps.Listen(testutil.Addr(t, "inproc"))
	if err != nil {
		t.Fatal(err)
	}
	stuck, err := ferry.NewSocket(&fanProto{info: ferry.ProtocolInfo{Self: 0x21, Peer: 0x20, SelfName: "sub", PeerName: "pub"}}, ferry.SocketConfig{RecvQueueLen: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	if _, err := stuck.Dial(testutil.Ctx(t, 5*time.Second), il.URL()); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "101 subscribers", func() bool { return ps.Stats().PipesOpen == healthy+3 })

	ctx := testutil.Ctx(t, 60*time.Second)
	var got atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, healthy)
	for _, ss := range subs {
		sub.Subscribe(ss, nil)
		wg.Go(func() {
			var m ferry.Msg
			defer m.Free()
			for i := range n {
				if err := ss.RecvMsg(ctx, &m); err != nil {
					errc <- err
					return
				}
				if v := binary.BigEndian.Uint64(m.Body); v != uint64(i) {
					errc <- fmt.Errorf("message %d arrived as %d", i, v)
					return
				}
				got.Add(1)
			}
		})
	}
	start := time.Now()
	body := make([]byte, size)
	m := ferry.NewMsg(size)
	for i := range n {
		binary.BigEndian.PutUint64(body, uint64(i))
		m.SetBody(body)
		if err := ps.Send(ctx, m); err != nil { // never waits
			t.Fatal(err)
		}
		if (i+1)%round == 0 { // pace: the healthy ones never fall a queue behind
			pollUntil(t, "the healthy subscribers to keep up", func() bool {
				select {
				case err := <-errc:
					t.Fatal(err)
				default:
				}
				return got.Load() == int64(healthy*(i+1))
			})
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	heap1 := testutil.HeapInUse()
	pst, lst := ps.Stats(), lazy.Stats()
	t.Logf("%d x %d B to %d healthy subscribers in %v; PUB dropped %d (stalled peer), lazy SUB dropped %d; heap %d -> %d KiB",
		n, size, healthy, elapsed, pst.Dropped, lst.Dropped, heap0>>10, heap1>>10)
	if pst.Dropped == 0 {
		t.Errorf("PUB counted no drop for the peer that stopped reading")
	}
	for _, p := range pst.Pipes {
		if p.Dropped != 0 && p.Remote != il.URL() && p.MsgsOut == n {
			t.Errorf("pipe %d (%s) wrote every message and dropped %d", p.ID, p.Remote, p.Dropped)
		}
	}
	pollUntil(t, "the lazy SUB to have everything", func() bool { return lazy.Stats().MsgsIn == n })
	if lst = lazy.Stats(); lst.Dropped != n-uint64(lazyCfg.RecvQueueLen) {
		t.Errorf("lazy SUB dropped %d, want %d", lst.Dropped, n-lazyCfg.RecvQueueLen)
	}
	if grow := int64(heap1) - int64(heap0); grow > 32<<20 {
		t.Errorf("heap grew %d MiB", grow>>20)
	}
}
