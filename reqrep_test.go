package ferry_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/rep"
	"github.com/ferrymq/ferry/protocol/req"
)

// reqrep returns a REQ socket dialed to a REP socket over scheme.
func reqrep(t testing.TB, scheme string, cfg ferry.SocketConfig) (rq, rp *ferry.Socket) {
	t.Helper()
	rp, err := rep.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rq, err = req.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rq.Close(); rp.Close() })
	l, err := rp.Listen(testutil.Addr(t, scheme))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rq.Dial(testutil.Ctx(t, 5*time.Second), l.URL()); err != nil {
		t.Fatal(err)
	}
	return rq, rp
}

// echo serves rp: the reply is "re:" + the request.
func echo(t testing.TB, rp *ferry.Socket, workers int) (stop func()) {
	return serveWith(t, rp, workers, func(_ context.Context, q, r *ferry.Msg) error {
		r.Grow(len(q.Body) + 3)
		r.Body = append(append(r.Body[:0], "re:"...), q.Body...)
		return nil
	})
}

// serveWith runs rp.Serve with h until the returned stop is called.
func serveWith(t testing.TB, rp *ferry.Socket, workers int, h ferry.Handler) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- rp.Serve(ctx, h, ferry.ServeConfig{Workers: workers})
	}()
	return func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, ferry.ErrClosed) {
			t.Errorf("Serve: %v", err)
		}
	}
}

func TestReqRepBasic(t *testing.T) {
	testutil.NoLeaks(t)
	for _, scheme := range testutil.Transports {
		t.Run(scheme, func(t *testing.T) {
			t.Parallel()
			rq, rp := reqrep(t, scheme, ferry.SocketConfig{})
			ctx := testutil.Ctx(t, 10*time.Second)
			// State errors first.
			if _, err := rq.Recv(ctx); !errors.Is(err, ferry.ErrState) {
				t.Fatalf("REQ Recv with nothing outstanding = %v", err)
			}
			if err := rp.SendBytes(ctx, []byte("x")); !errors.Is(err, ferry.ErrState) {
				t.Fatalf("REP Send with no request = %v", err)
			}
			for i := range 10 {
				body := fmt.Appendf(nil, "request %d", i)
				if err := rq.SendBytes(ctx, body); err != nil {
					t.Fatal(err)
				}
				m, err := rp.Recv(ctx)
				if err != nil || string(m.Body) != string(body) || len(m.Header) != 0 {
					t.Fatalf("REP got %q header %x, %v", m.Body, m.Header, err)
				}
				m.SetBody(append([]byte("reply "), body...))
				if err := rp.Send(ctx, m); err != nil {
					t.Fatal(err)
				}
				r, err := rq.Recv(ctx)
				if err != nil || string(r.Body) != "reply "+string(body) {
					t.Fatalf("REQ got %q, %v", r.Body, err)
				}
				r.Free()
			}
			if err := rp.SendBytes(ctx, []byte("x")); !errors.Is(err, ferry.ErrState) {
				t.Fatalf("second reply = %v", err)
			}
		})
	}
}

// TestReqNewSendCancels: a new request on a context cancels the old one;
// a Recv waiting for it fails with ErrCanceled, and its reply is dropped.
func TestReqNewSendCancels(t *testing.T) {
	testutil.NoLeaks(t)
	rq, rp := reqrep(t, "inproc", ferry.SocketConfig{})
	ctx := testutil.Ctx(t, 10*time.Second)
	c, _ := rq.OpenContext()
	defer c.Close()
	if err := c.SendBytes(ctx, []byte("old")); err != nil {
		t.Fatal(err)
	}
	waiting := make(chan error, 1)
	go func() { _, err := c.Recv(ctx); waiting <- err }()
	old, err := rp.Recv(ctx) // the server holds the old request
	if err != nil {
		t.Fatal(err)
	}
	for !func() bool { runtime.Gosched(); return len(waiting) == 0 }() {
	}
	time.Sleep(5 * time.Millisecond) // let the Recv above start waiting
	if err := c.SendBytes(ctx, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if err := <-waiting; !errors.Is(err, ferry.ErrCanceled) {
		t.Fatalf("old Recv = %v, want ErrCanceled", err)
	}
	old.SetBody([]byte("late reply"))
	if err := rp.Send(ctx, old); err != nil {
		t.Fatal(err)
	}
	nw, err := rp.Recv(ctx)
	if err != nil || string(nw.Body) != "new" {
		t.Fatal(nw, err)
	}
	nw.SetBody([]byte("fresh reply"))
	rp.Send(ctx, nw)
	r, err := c.Recv(ctx)
	if err != nil || string(r.Body) != "fresh reply" {
		t.Fatalf("got %v %v", r, err)
	}
	r.Free()
	waitFor(t, "the late reply to be counted", func() bool { return rq.Stats().Dropped == 1 })
}

// checked builds a request carrying its client, sequence and a checksum.
func checked(client, seq int) []byte {
	b := make([]byte, 16+rand.IntN(64))
	binary.BigEndian.PutUint32(b, uint32(client))
	binary.BigEndian.PutUint32(b[4:], uint32(seq))
	for i := 8; i < len(b)-4; i++ {
		b[i] = byte(rand.Uint32())
	}
	binary.BigEndian.PutUint32(b[len(b)-4:], crc32.ChecksumIEEE(b[:len(b)-4]))
	return b
}

// TestContextChurn is the NNG #2111 scenario: 64 clients x 2,000 requests,
// each on a fresh context opened and closed around it, against a server of
// 16 reused contexts. Every reply matches its request. Over three rounds
// goroutines and heap stay flat. Then a chaos goroutine closes random
// client contexts mid-request: those calls fail with ErrClosed, all
// others succeed.
func TestContextChurn(t *testing.T) {
	testutil.NoLeaks(t)
	clients, perClient := 64, 2000
	if testing.Short() {
		perClient = 200
	}
	for _, scheme := range []string{"tcp", "inproc"} {
		t.Run(scheme, func(t *testing.T) {
			rq, rp := reqrep(t, scheme, ferry.SocketConfig{})
			defer echo(t, rp, 16)()
			ctx := testutil.Ctx(t, 5*time.Minute)
			round := func(chaos bool) (closed, ok int64) {
				var nClosed, nOK atomic.Int64
				var live sync.Map // client -> *ferry.Context, for the chaos goroutine
				stop := make(chan struct{})
				var chaosDone sync.WaitGroup
				if chaos {
					chaosDone.Go(func() {
						for {
							select {
							case <-stop:
								return
							default:
							}
							if v, ok := live.Load(rand.IntN(clients)); ok {
								v.(*ferry.Context).Close()
							}
							runtime.Gosched()
						}
					})
				}
				var wg sync.WaitGroup
				for cl := range clients {
					wg.Go(func() {
						for seq := range perClient {
							c, err := rq.OpenContext()
							if err != nil {
								t.Error(err)
								return
							}
							live.Store(cl, c)
							body := checked(cl, seq)
							reply, err := func() ([]byte, error) {
								if err := c.SendBytes(ctx, body); err != nil {
									return nil, err
								}
								return c.RecvBytes(ctx, nil)
							}()
							live.Delete(cl)
							c.Close()
							if errors.Is(err, ferry.ErrClosed) && chaos {
								nClosed.Add(1)
								continue
							}
							if err != nil {
								t.Errorf("client %d request %d: %v", cl, seq, err)
								return
							}
							if string(reply) != "re:"+string(body) {
								t.Errorf("client %d request %d: reply does not match", cl, seq)
								return
							}
							nOK.Add(1)
						}
					})
				}
				wg.Wait()
				close(stop)
				chaosDone.Wait()
				return nClosed.Load(), nOK.Load()
			}
			var g1, h1 uint64
			for r := range 3 {
				_, ok := round(false)
				if ok != int64(clients*perClient) {
					t.Fatalf("round %d: %d of %d succeeded", r, ok, clients*perClient)
				}
				g, h := uint64(runtime.NumGoroutine()), testutil.HeapInUse()
				t.Logf("round %d: %d goroutines, heap %d KiB", r, g, h>>10)
				if r == 0 {
					g1, h1 = g, h
					continue
				}
				if g > g1+g1/10 || h > h1+h1/10+256<<10 {
					t.Errorf("round %d: goroutines %d (first %d), heap %d KiB (first %d KiB): not flat", r, g, g1, h>>10, h1>>10)
				}
			}
			closed, ok := round(true)
			t.Logf("chaos: %d closed mid-request, %d succeeded", closed, ok)
			if closed+ok != int64(clients*perClient) {
				t.Fatalf("chaos: %d + %d != %d", closed, ok, clients*perClient)
			}
		})
	}
}

// TestContextScale: 100,000 REQ contexts with a request in flight at once
// on one socket; all complete.
func TestContextScale(t *testing.T) {
	testutil.NoLeaks(t)
	n := 100000
	if testing.Short() {
		n = 10000
	}
	rq, rp := reqrep(t, "tcp", ferry.SocketConfig{})
	defer echo(t, rp, 16)()
	ctx := testutil.Ctx(t, 5*time.Minute)
	before := testutil.HeapInUse()
	ctxs := make([]*ferry.Context, n)
	for i := range ctxs {
		c, err := rq.OpenContext()
		if err != nil {
			t.Fatal(err)
		}
		ctxs[i] = c
		if err := c.SendBytes(ctx, binary.BigEndian.AppendUint32(nil, uint32(i))); err != nil {
			t.Fatal(err)
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("%d contexts in flight: heap %d MiB (from %d MiB)", n, ms.HeapAlloc>>20, before>>20)
	for i, c := range ctxs {
		b, err := c.RecvBytes(ctx, nil)
		if err != nil || len(b) != 7 || binary.BigEndian.Uint32(b[3:]) != uint32(i) {
			t.Fatalf("context %d: %x %v", i, b, err)
		}
		c.Close()
	}
}

// TestCloseWithContextsPending: 10,000 contexts blocked in Recv; Close
// ends them all with ErrClosed within 100 ms.
func TestCloseWithContextsPending(t *testing.T) {
	testutil.NoLeaks(t)
	const n = 10000
	rq, _ := reqrep(t, "inproc", ferry.SocketConfig{SendQueueLen: 2 * n})
	ctx := testutil.Ctx(t, 30*time.Second)
	var wg sync.WaitGroup
	var started sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		c, err := rq.OpenContext()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SendBytes(ctx, []byte("never answered")); err != nil {
			t.Fatal(err)
		}
		started.Add(1)
		wg.Go(func() {
			started.Done()
			_, err := c.Recv(ctx)
			errs <- err
		})
	}
	started.Wait()
	time.Sleep(20 * time.Millisecond) // let the receives block
	start := time.Now()
	rq.Close()
	wg.Wait()
	el := time.Since(start)
	t.Logf("%d pending contexts ended in %v (race detector: %v)", n, el, testutil.Race)
	if el > testutil.WakeBound(100*time.Millisecond) {
		t.Fatalf("closing with %d pending contexts took %v", n, el)
	}
	close(errs)
	for err := range errs {
		if !errors.Is(err, ferry.ErrClosed) {
			t.Fatalf("pending Recv = %v", err)
		}
	}
}

// TestServePanics: a handler panic is counted and the server keeps
// serving; ctx ending stops Serve.
func TestServePanics(t *testing.T) {
	testutil.NoLeaks(t)
	rq, rp := reqrep(t, "inproc", ferry.SocketConfig{ResendTime: 50 * time.Millisecond})
	var st ferry.ServeStats
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var calls atomic.Int64
	go func() {
		done <- rp.Serve(ctx, func(_ context.Context, q, r *ferry.Msg) error {
			if calls.Add(1) == 1 {
				panic("first call explodes")
			}
			r.SetBody(q.Body)
			return nil
		}, ferry.ServeConfig{Workers: 2, Stats: &st, Logger: discardLogger()})
	}()
	rctx := testutil.Ctx(t, 10*time.Second)
	b, err := rq.Request(rctx, []byte("hi")) // resent after the panic
	if err != nil || string(b) != "hi" {
		t.Fatalf("Request = %q, %v", b, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if st.Panics.Load() != 1 || st.Handled.Load() != 1 {
		t.Fatalf("panics %d handled %d", st.Panics.Load(), st.Handled.Load())
	}
}

// TestServeGraceful: when Serve's ctx ends, a handler already running
// finishes and its reply is delivered; MaxInFlight caps running handlers.
func TestServeGraceful(t *testing.T) {
	testutil.NoLeaks(t)
	rq, rp := reqrep(t, "inproc", ferry.SocketConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	entered := make(chan struct{}, 8)
	release := make(chan struct{})
	var st ferry.ServeStats
	var peak atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- rp.Serve(ctx, func(_ context.Context, q, r *ferry.Msg) error {
			if n := st.InFlight.Load(); n > peak.Load() {
				peak.Store(n)
			}
			entered <- struct{}{}
			<-release
			r.SetBody(q.Body)
			return nil
		}, ferry.ServeConfig{Workers: 8, MaxInFlight: 2, Stats: &st})
	}()
	rctx := testutil.Ctx(t, 10*time.Second)
	results := make(chan error, 4)
	for i := range 4 {
		go func() {
			b, err := rq.Request(rctx, []byte{byte(i)})
			if err == nil && (len(b) != 1 || b[0] != byte(i)) {
				err = fmt.Errorf("request %d got %x", i, b)
			}
			results <- err
		}()
	}
	<-entered
	<-entered // two handlers running, the cap
	time.Sleep(10 * time.Millisecond)
	if n := st.InFlight.Load(); n != 2 {
		t.Fatalf("%d handlers running, cap is 2", n)
	}
	cancel() // stop while two handlers run and two requests wait
	close(release)
	for range 4 {
		if err := <-results; err != nil {
			// Requests taken before the stop are answered; one still queued
			// when Serve stopped may be left to its resend.
			t.Logf("request: %v", err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if peak.Load() > 2 || st.Handled.Load() < 2 {
		t.Fatalf("peak in flight %d, handled %d", peak.Load(), st.Handled.Load())
	}
}

// TestRepReplyToGonePipe: a reply whose requester has gone is dropped
// quietly and counted.
func TestRepReplyToGonePipe(t *testing.T) {
	testutil.NoLeaks(t)
	rq, rp := reqrep(t, "tcp", ferry.SocketConfig{})
	ctx := testutil.Ctx(t, 10*time.Second)
	if err := rq.SendBytes(ctx, []byte("q")); err != nil {
		t.Fatal(err)
	}
	m, err := rp.Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rq.Close()
	waitFor(t, "the requester's pipe to close", func() bool { return rp.Stats().PipesOpen == 0 })
	if err := rp.Send(ctx, m); err != nil {
		t.Fatalf("reply to a gone pipe = %v, want nil", err)
	}
	if st := rp.Stats(); st.Dropped != 1 {
		t.Fatalf("dropped %d", st.Dropped)
	}
}
