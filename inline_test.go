package ferry_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/pair1"
	"github.com/ferrymq/ferry/protocol/pull"
	"github.com/ferrymq/ferry/protocol/push"
)

// roundTrips runs n requests on c against an echo server.
func roundTrips(t *testing.T, c *ferry.Context, n int) {
	t.Helper()
	ctx := testutil.Ctx(t, 10*time.Second)
	m := ferry.NewMsg(16)
	defer m.Free()
	for i := range n {
		want := fmt.Sprintf("q%d", i)
		m.SetBody([]byte(want))
		if err := c.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
		if err := c.RecvMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
		if string(m.Body) != "re:"+want {
			t.Fatalf("reply %q to %q", m.Body, want)
		}
	}
}

// inlineReady returns a REQ socket dialed over tcp to a REP socket that
// no longer serves, and a context whose pipe's reader has stepped aside:
// 50 round trips went first, read inline. restart serves rp again.
func inlineReady(t *testing.T) (rq, rp *ferry.Socket, c *ferry.Context, restart func() (stop func())) {
	t.Helper()
	rq, rp = reqrep(t, "tcp", ferry.SocketConfig{})
	stop := echo(t, rp, 1)
	c, err := rq.OpenContext()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	roundTrips(t, c, 50)
	stop()
	if rq.Stats().MsgsInline == 0 {
		t.Fatal("no inline reads")
	}
	return rq, rp, c, func() func() { return echo(t, rp, 1) }
}

// TestInlineReads: on a socket with one stream pipe, receivers read
// their messages themselves (no hand-off from the pipe's reader), on
// both sides of REQ/REP, with one server worker or several.
func TestInlineReads(t *testing.T) {
	for _, scheme := range []string{"tcp", "ipc"} {
		for _, workers := range []int{1, 4} {
			t.Run(fmt.Sprintf("%s/workers=%d", scheme, workers), func(t *testing.T) {
				rq, rp := reqrep(t, scheme, ferry.SocketConfig{})
				stop := echo(t, rp, workers)
				defer stop()
				c, err := rq.OpenContext()
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				const n = 300
				roundTrips(t, c, n)
				cs, ss := rq.Stats(), rp.Stats()
				t.Logf("client: %d of %d inline; server: %d of %d", cs.MsgsInline, cs.MsgsIn, ss.MsgsInline, ss.MsgsIn)
				// The first few go through the readers, until they step aside.
				if cs.MsgsInline < n/2 || ss.MsgsInline < n/2 {
					t.Errorf("inline: client %d, server %d of %d; want most", cs.MsgsInline, ss.MsgsInline, n)
				}
			})
		}
	}
}

// TestInlineInterrupted: a REQ context's Recv blocked in a read of its
// own (inline) ends at once when its ctx ends, its context closes, a new
// Send cancels its request, or the socket closes; the pipe survives all
// but the last, and the next request goes through.
func TestInlineInterrupted(t *testing.T) {
	tests := []struct {
		name  string
		end   func(rq *ferry.Socket, c *ferry.Context, cancel context.CancelFunc)
		want  error
		after bool // the socket is still usable
	}{
		{"ctx", func(_ *ferry.Socket, _ *ferry.Context, cancel context.CancelFunc) { cancel() }, context.Canceled, true},
		{"context close", func(_ *ferry.Socket, c *ferry.Context, _ context.CancelFunc) { c.Close() }, ferry.ErrClosed, true},
		{"new send", func(_ *ferry.Socket, c *ferry.Context, _ context.CancelFunc) {
			m := ferry.NewMsg(4)
			m.SetBody([]byte("next"))
			if err := c.Send(context.Background(), m); err != nil {
				m.Free()
			}
		}, ferry.ErrCanceled, true},
		{"socket close", func(rq *ferry.Socket, _ *ferry.Context, _ context.CancelFunc) { rq.Close() }, ferry.ErrClosed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rq, _, c, restart := inlineReady(t) // nobody answers now
			if err := c.Send(testutil.Ctx(t, 5*time.Second), ferry.NewMsg(0)); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			res := make(chan error, 1)
			go func() {
				m, err := c.Recv(ctx)
				if err == nil {
					m.Free()
				}
				res <- err
			}()
			time.Sleep(50 * time.Millisecond) // Recv is reading by now
			tt.end(rq, c, cancel)
			select {
			case err := <-res:
				if !errors.Is(err, tt.want) {
					t.Fatalf("Recv: %v, want %v", err, tt.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Recv still blocked 5 s after it was ended")
			}
			if !tt.after {
				return
			}
			if st := rq.Stats(); st.PipesOpen != 1 {
				t.Fatalf("pipes open %d after the interrupt, want 1", st.PipesOpen)
			}
			defer restart()()
			c2, err := rq.OpenContext()
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			roundTrips(t, c2, 5)
		})
	}
}

// TestInlineIdleNoticesClose: once receivers stop coming, the pipe's
// reader takes reading back, so a socket nobody receives on still sees
// its peer go.
func TestInlineIdleNoticesClose(t *testing.T) {
	rq, rp, _, _ := inlineReady(t)
	rp.Close()
	deadline := time.Now().Add(5 * time.Second)
	for rq.Stats().PipesOpen != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the client never noticed its peer close")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestInlineFullQueue: a receiver reading for others never waits on the
// queue it would take from. Many clients' requests on one REP socket
// with a queue of one and a pipe at a time in inline mode; all answered.
func TestInlineFullQueue(t *testing.T) {
	rq, rp := reqrep(t, "tcp", ferry.SocketConfig{RecvQueueLen: 1})
	stop := echo(t, rp, 3)
	defer stop()
	const ctxs, each = 8, 100
	errs := make(chan error, ctxs)
	for range ctxs {
		go func() {
			c, err := rq.OpenContext()
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			ctx := testutil.Ctx(t, 20*time.Second)
			for i := range each {
				want := []byte(fmt.Sprint(i))
				m := ferry.NewMsg(8)
				m.SetBody(want)
				if err := c.Send(ctx, m); err != nil {
					m.Free()
					errs <- err
					return
				}
				r, err := c.Recv(ctx)
				if err != nil {
					errs <- err
					return
				}
				ok := bytes.Equal(r.Body, append([]byte("re:"), want...))
				r.Free()
				if !ok {
					errs <- fmt.Errorf("wrong reply")
					return
				}
			}
			errs <- nil
		}()
	}
	for range ctxs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestInlineLarge: frames larger than the read buffer are read inline
// too (as they come, not by Peek), intact.
func TestInlineLarge(t *testing.T) {
	rq, rp := reqrep(t, "tcp", ferry.SocketConfig{})
	stop := echo(t, rp, 2)
	defer stop()
	c, err := rq.OpenContext()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := testutil.Ctx(t, 10*time.Second)
	const n = 100
	for i := range n {
		q := bytes.Repeat([]byte{byte(i)}, 64<<10+i)
		m := ferry.NewMsg(len(q))
		m.SetBody(q)
		if err := c.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
		r, err := c.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ok := bytes.Equal(r.Body, append([]byte("re:"), q...))
		r.Free()
		if !ok {
			t.Fatalf("round %d: reply differs", i)
		}
	}
	cs, ss := rq.Stats(), rp.Stats()
	t.Logf("client: %d of %d inline; server: %d of %d", cs.MsgsInline, cs.MsgsIn, ss.MsgsInline, ss.MsgsIn)
	if cs.MsgsInline < n/2 || ss.MsgsInline < n/2 {
		t.Errorf("inline: client %d, server %d of %d; want most", cs.MsgsInline, ss.MsgsInline, n)
	}
}

// TestInlineKeepRole: a Serve worker whose requests are handled quickly
// keeps the reading role while it handles the next (no hand-off to
// another worker per request). A handler that then turns slow holds up
// the requests behind it only until the reader takes the role back:
// four slow handlers still run side by side. A worker that stops while
// away frees the role at once.
func TestInlineKeepRole(t *testing.T) {
	testutil.NoLeaks(t)
	// Under the race detector a quick echo can take longer than 50 us
	// (slow ones nobody waited for count for nothing); the slow phase
	// below sleeps 3 ms, well under the reader's 10 ms check.
	defer ferry.SetKeepQuick(2 * time.Millisecond)()
	rq, rp := reqrep(t, "tcp", ferry.SocketConfig{})
	const (
		echoing = iota
		together
		holding
		sleeping
	)
	var mode, inflight atomic.Int32
	var apart atomic.Bool
	all := make(chan struct{}) // closed once four handlers run at once
	started := make(chan struct{}, 4)
	hold := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- rp.Serve(ctx, func(_ context.Context, q, r *ferry.Msg) error {
			switch mode.Load() {
			case together:
				started <- struct{}{}
				if inflight.Add(1) == 4 {
					close(all)
				}
				select {
				case <-all:
				case <-time.After(5 * time.Second):
					apart.Store(true)
				}
			case holding:
				started <- struct{}{}
				<-hold
			case sleeping:
				time.Sleep(3 * time.Millisecond) // slow: over the 2 ms set above
			}
			r.Grow(len(q.Body) + 3)
			r.Body = append(append(r.Body[:0], "re:"...), q.Body...)
			return nil
		}, ferry.ServeConfig{Workers: 4})
	}()
	c, err := rq.OpenContext()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// Workers take turns until one has handled enough quick requests.
	roundTrips(t, c, 2000)
	if k := ferry.RoleKept(rp); k < 500 {
		t.Fatalf("the role was kept %d times in 2000 quick requests; want most", k)
	}

	// Slow requests that nobody waited for (one requester, waiting for
	// each reply) do not count against keeping it. A stall of the
	// machine that stretches a 3 ms sleep past lendCheck (10 ms) lets
	// the reader take the role back, which rightly counts: up to three
	// tries, each after quick requests that restore the score.
	for try := 1; ; try++ {
		mode.Store(sleeping)
		k0 := ferry.RoleKept(rp)
		roundTrips(t, c, 20)
		k := ferry.RoleKept(rp) - k0
		mode.Store(echoing)
		if k >= 10 {
			break
		}
		if try == 3 {
			// Counted against it, three would end the keep.
			t.Fatalf("the role was kept %d times in 20 slow requests with nobody waiting (try %d); want most", k, try)
		}
		t.Logf("try %d: the role was kept %d times in 20 slow requests; again", try, k)
		roundTrips(t, c, 1000)
	}

	// Slow handlers: the first request's worker is away with the role
	// when the other three arrive.
	mode.Store(together)
	tctx := testutil.Ctx(t, 10*time.Second)
	cs := make([]*ferry.Context, 4)
	for i := range cs {
		if cs[i], err = rq.OpenContext(); err != nil {
			t.Fatal(err)
		}
		defer cs[i].Close()
		if err := cs[i].SendBytes(tctx, fmt.Appendf(nil, "s%d", i)); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			<-started
		}
	}
	for i, k := range cs {
		b, err := k.RecvBytes(tctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("re:s%d", i); string(b) != want {
			t.Fatalf("reply %q, want %q", b, want)
		}
	}
	if apart.Load() {
		t.Fatal("slow handlers did not run side by side: the role stayed with an away worker")
	}
	for range 3 {
		<-started
	}

	// A worker away when Serve ends frees the role as its context closes.
	mode.Store(echoing)
	roundTrips(t, c, 1500)
	mode.Store(holding)
	if err := c.SendBytes(tctx, []byte("last")); err != nil {
		t.Fatal(err)
	}
	<-started
	if !ferry.RoleAway(rp) {
		t.Fatal("the role is not away with the worker handling the last request")
	}
	cancel()
	close(hold)
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if ferry.RoleAway(rp) {
		t.Error("Serve returned with the role still away")
	}
	if b, err := c.RecvBytes(tctx, nil); err != nil || string(b) != "re:last" {
		t.Fatalf("last reply %q, %v", b, err)
	}
}

// TestInlineCopyQueue: sockets that receive through a copy queue (PAIR,
// PULL) read inline too: a PAIR1 ping-pong of small and large messages,
// and a PUSH/PULL stream that arrives whole and in order.
func TestInlineCopyQueue(t *testing.T) {
	t.Run("pair1", func(t *testing.T) {
		ls, ds := connect(t, "tcp", pair1.New, ferry.SocketConfig{})
		ctx := testutil.Ctx(t, 10*time.Second)
		const n = 200
		go func() { // echo
			m := ferry.NewMsg(0)
			defer func() { m.Free() }()
			for ls.RecvMsg(ctx, m) == nil {
				if ls.Send(ctx, m) != nil {
					return
				}
				m = ferry.NewMsg(0)
			}
		}()
		m := ferry.NewMsg(0)
		defer func() { m.Free() }()
		for i := range n {
			want := bytes.Repeat([]byte{byte(i)}, 1+i%3*(40<<10)) // 1 B .. 80 KiB
			m.SetBody(want)
			if err := ds.Send(ctx, m); err != nil {
				t.Fatal(err)
			}
			m = ferry.NewMsg(0)
			if err := ds.RecvMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m.Body, want) {
				t.Fatalf("round %d: %d bytes back, want %d", i, len(m.Body), len(want))
			}
		}
		cs, ss := ds.Stats(), ls.Stats()
		t.Logf("dialer: %d of %d inline; listener: %d of %d", cs.MsgsInline, cs.MsgsIn, ss.MsgsInline, ss.MsgsIn)
		if cs.MsgsInline < n/2 || ss.MsgsInline < n/2 {
			t.Errorf("inline: %d and %d of %d; want most", cs.MsgsInline, ss.MsgsInline, n)
		}
	})
	t.Run("pushpull", func(t *testing.T) {
		pl, ps := connectWith(t, "tcp", pull.New, push.New, ferry.SocketConfig{})
		ctx := testutil.Ctx(t, 20*time.Second)
		const n = 20000
		go func() {
			for i := range n {
				b := seqBody(i)
				if i%100 == 0 {
					b = append(b, make([]byte, 20<<10)...) // some larger than the read buffer
				}
				if ps.SendBytes(ctx, b) != nil {
					return
				}
				if i%1000 == 0 {
					time.Sleep(time.Millisecond) // let the receiver catch up and wait
				}
			}
		}()
		m := ferry.NewMsg(0)
		defer m.Free()
		for i := range n {
			if err := pl.RecvMsg(ctx, m); err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			if len(m.Body) < 8 || binary.BigEndian.Uint64(m.Body) != uint64(i) {
				t.Fatalf("message %d: got %x", i, m.Body[:min(8, len(m.Body))])
			}
		}
		st := pl.Stats()
		t.Logf("%d of %d inline, %d copied", st.MsgsInline, st.MsgsIn, st.MsgsCopiedIn)
		if st.MsgsInline == 0 {
			t.Error("nothing read inline")
		}
	})
}

// TestInlinePeerSwap: a lent pipe whose peer has gone is noticed when the
// next peer arrives, before a one-peer socket (PAIR1) decides on it: no
// new peer is refused because a dead one still held the slot (an NNG
// peer's first message would go with the refused connection).
func TestInlinePeerSwap(t *testing.T) {
	for _, scheme := range []string{"tcp", "ipc"} {
		t.Run(scheme, func(t *testing.T) {
			ls, err := pair1.New(ferry.SocketConfig{})
			if err != nil {
				t.Fatal(err)
			}
			defer ls.Close()
			l, err := ls.Listen(testutil.Addr(t, scheme))
			if err != nil {
				t.Fatal(err)
			}
			ctx := testutil.Ctx(t, 20*time.Second)
			const peers = 30
			for i := range peers {
				ds, err := pair1.New(ferry.SocketConfig{})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := ds.Dial(ctx, l.URL()); err != nil {
					t.Fatal(err)
				}
				got := make(chan string, 1)
				go func() { // waiting first: the reader lends after this one
					b, err := ls.RecvBytes(ctx, nil)
					if err != nil {
						b = []byte(err.Error())
					}
					got <- string(b)
				}()
				want := fmt.Sprintf("peer %d", i)
				time.Sleep(time.Millisecond) // the receiver waits first: the reader lends after this message
				if err := ds.SendBytes(ctx, []byte(want)); err != nil {
					t.Fatal(err)
				}
				if g := <-got; g != want {
					st := ls.Stats()
					t.Fatalf("got %q, want %q (in %d, pipes open %d, closed %v)", g, want, st.MsgsIn, st.PipesOpen, st.CloseReasons)
				}
				ds.Close() // nobody receives on ls now
			}
			st := ls.Stats()
			t.Logf("%d of %d inline; closes %v", st.MsgsInline, st.MsgsIn, st.CloseReasons)
			if n := st.CloseReasons[ferry.ReasonRefused]; n > 0 {
				t.Errorf("%d new peers refused while a gone one held the slot", n)
			}
		})
	}
}
