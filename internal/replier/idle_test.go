package replier

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/req"
)

func TestMain(m *testing.M) { testutil.VerifyMain(m) }

func newRep(t *testing.T, cfg ferry.SocketConfig) (*ferry.Socket, *sock) {
	t.Helper()
	s, err := ferry.NewSocket(New(ferry.ProtocolInfo{Self: 0x31, Peer: 0x30, SelfName: "rep", PeerName: "req"}), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, s.Proto().(*sock)
}

// serveEcho serves s with workers workers whose handler runs h first; it
// returns the function that stops Serve and waits for it.
func serveEcho(t *testing.T, s *ferry.Socket, workers int, h func()) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Serve(ctx, func(_ context.Context, q, r *ferry.Msg) error {
			if h != nil {
				h()
			}
			r.SetBody(q.Body)
			return nil
		}, ferry.ServeConfig{Workers: workers})
	}()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}
}

// dialReq returns a REQ socket, resends off, dialed to url; closed when
// the test ends.
func dialReq(t *testing.T, ctx context.Context, url string) *ferry.Socket {
	t.Helper()
	rq, err := req.New(ferry.SocketConfig{ResendTime: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rq.Close() })
	if _, err := rq.Dial(ctx, url); err != nil {
		t.Fatal(err)
	}
	return rq
}

// exchange runs contexts contexts on rq at once, each sending rounds
// requests one at a time and checking each echo.
func exchange(t *testing.T, ctx context.Context, rq *ferry.Socket, contexts, rounds int) {
	var wg sync.WaitGroup
	for range contexts {
		c, err := rq.OpenContext()
		if err != nil {
			t.Error(err) // not Fatal: exchange may run off the test's goroutine
			break
		}
		wg.Go(func() {
			defer c.Close()
			for i := range rounds {
				want := fmt.Sprint(i)
				if err := c.SendBytes(ctx, []byte(want)); err != nil {
					t.Error(err)
					return
				}
				got, err := c.RecvBytes(ctx, nil)
				if err != nil || string(got) != want {
					t.Errorf("reply %d = %q, %v", i, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// waitIdleCount waits until k lists n contexts idle.
func waitIdleCount(t *testing.T, k *sock, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		k.imu.Lock()
		got := len(k.idle)
		k.imu.Unlock()
		if got == n && int(k.nidle.Load()) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d contexts idle, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestIdleHandoff: with no pipe that reads inline (here inproc), Serve's
// workers wait idle on their own inboxes, Receive hands each request to
// one of them directly, the worker that answered lists itself idle again,
// and stopping Serve or closing a context takes them off the list.
func TestIdleHandoff(t *testing.T) {
	testutil.NoLeaks(t)
	rp, k := newRep(t, ferry.SocketConfig{})
	l, err := rp.Listen(testutil.Addr(t, "inproc"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testutil.Ctx(t, 10*time.Second)
	rq := dialReq(t, ctx, l.URL())
	const workers = 4
	stop := serveEcho(t, rp, workers, nil)
	waitIdleCount(t, k, workers)
	for i := range 100 {
		want := fmt.Sprint("q", i)
		if err := rq.SendBytes(ctx, []byte(want)); err != nil {
			t.Fatal(err)
		}
		got, err := rq.RecvBytes(ctx, nil)
		if err != nil || string(got) != want {
			t.Fatalf("reply %d = %q, %v", i, got, err)
		}
	}
	waitIdleCount(t, k, workers)
	if n := len(k.recvq); n != 0 {
		t.Fatalf("%d requests went through the shared queue", n)
	}
	stop()
	waitIdleCount(t, k, 0)

	// A context's Close ends its idle wait.
	c, err := rp.OpenContext()
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Recv(context.Background())
		errc <- err
	}()
	waitIdleCount(t, k, 1)
	c.Close()
	if err := <-errc; !errors.Is(err, ferry.ErrClosed) {
		t.Fatalf("Recv after Close = %v, want ErrClosed", err)
	}
	waitIdleCount(t, k, 0)

	// So does its ctx's end; and a request handed to a context whose
	// ctx has ended wins.
	c, err = rp.OpenContext()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, err := c.Recv(rctx)
		errc <- err
	}()
	waitIdleCount(t, k, 1)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Recv after its ctx's end = %v, want context.Canceled", err)
	}
	waitIdleCount(t, k, 0)
}

// TestIdleQueued: a request that reaches the shared queue by a path the
// protocol's Receive does not see through (a delivery an inproc sender
// deferred to the pipe's reader, or a full queue's wait, both of which
// end in ferry.Deliver) still reaches a context that went idle meanwhile
// (Queued). Then a stress: a one-deep queue, many requesters and handlers
// that now and then take a while make those paths common; resends are
// off, so a request lost on the way is never answered.
func TestIdleQueued(t *testing.T) {
	testutil.NoLeaks(t)
	rp, k := newRep(t, ferry.SocketConfig{RecvQueueLen: 1})
	l, err := rp.Listen(testutil.Addr(t, "inproc"))
	if err != nil {
		t.Fatal(err)
	}

	// Deliver's own put, with a context idle: as a deferred delivery.
	ctx := testutil.Ctx(t, 20*time.Second)
	dialReq(t, ctx, l.URL())
	var p *ferry.Pipe
	for p == nil {
		k.mu.Lock()
		for _, x := range k.pipes {
			p = x
		}
		k.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	c, err := rp.OpenContext()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		m, err := c.Recv(context.Background())
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(m.Body)
		m.Free()
	}()
	waitIdleCount(t, k, 1)
	m := ferry.NewMsg(8)
	m.Header = append(m.Header, 0x80, 0, 0, 1) // a request's id, as Receive leaves it
	m.Body = append(m.Body, "deferred"...)
	ferry.Deliver(p, k.recvq, m)
	select {
	case s := <-got:
		if s != "deferred" {
			t.Fatalf("idle context's Recv = %q, want the request", s)
		}
	case <-time.After(5 * time.Second):
		c.Close()
		<-got
		t.Fatal("a request Deliver queued did not reach the idle context")
	}
	c.Close()

	stop := serveEcho(t, rp, 3, func() {
		if rand.N(8) == 0 {
			time.Sleep(time.Duration(rand.N(200)) * time.Microsecond)
		}
	})
	defer stop()
	var wg sync.WaitGroup
	for range 4 {
		rq := dialReq(t, ctx, l.URL())
		wg.Go(func() { exchange(t, ctx, rq, 8, 150) })
	}
	wg.Wait()
}

// TestIdleThenStream: workers idle on a socket with no pipe yet, then a
// tcp pipe arrives, whose requests are read inline (the socket now
// lends its reads): the idle workers are handed one request each by the
// pipe's reader and then wait the lent way; every request is answered
// and Serve stops.
func TestIdleThenStream(t *testing.T) {
	testutil.NoLeaks(t)
	rp, k := newRep(t, ferry.SocketConfig{})
	l, err := rp.Listen(testutil.Addr(t, "tcp"))
	if err != nil {
		t.Fatal(err)
	}
	const workers = 4
	stop := serveEcho(t, rp, workers, nil)
	defer stop()
	waitIdleCount(t, k, workers)
	ctx := testutil.Ctx(t, 20*time.Second)
	exchange(t, ctx, dialReq(t, ctx, l.URL()), 8, 100)
	waitIdleCount(t, k, 0) // each was handed a request and then waited the lent way
}
