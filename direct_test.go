package ferry_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/stress"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/pair1"
	"github.com/ferrymq/ferry/protocol/pub"
	"github.com/ferrymq/ferry/protocol/pull"
	"github.com/ferrymq/ferry/protocol/push"
	"github.com/ferrymq/ferry/protocol/rep"
	"github.com/ferrymq/ferry/protocol/req"
	"github.com/ferrymq/ferry/protocol/sub"
)

// TestDirectWriteOrder mixes direct writes (a lone message after a pause,
// written by the sender) with queued ones (bursts, batched by the writer)
// and a receiver that stalls now and then, so that direct writes also
// meet a full socket buffer and leave a rest for the writer: every
// message must arrive whole and in order, over PAIR1 and PUSH/PULL. (How
// many go each way depends on the machine's speed: under -race nearly all
// are direct.)
func TestDirectWriteOrder(t *testing.T) {
	testutil.NoLeaks(t)
	for _, pr := range []struct {
		name           string
		listen, dialer newSock
	}{{"pair1", pair1.New, pair1.New}, {"push", pull.New, push.New}} {
		for _, scheme := range []string{"tcp", "ipc", "inproc"} {
			t.Run(pr.name+"/"+scheme, func(t *testing.T) {
				testDirectWriteOrder(t, scheme, pr.listen, pr.dialer)
			})
		}
	}
}

func testDirectWriteOrder(t *testing.T, scheme string, listen, dialer newSock) {
	ls, ds := connectWith(t, scheme, listen, dialer, ferry.SocketConfig{SendQueueLen: 64, RecvQueueLen: 16})
	ctx := testutil.Ctx(t, time.Minute)
	const n = 3000
	errc := make(chan error, 1)
	go func() {
		r := rand.New(rand.NewPCG(7, 8))
		m := ferry.NewMsg(0)
		defer m.Free()
		for seq := range n {
			size := 12 + r.IntN(24000)
			if r.IntN(4) != 0 {
				size = 12 + r.IntN(200)
			}
			stress.FillChecked(m, seq, size, r)
			if err := ds.Send(ctx, m); err != nil {
				errc <- err
				return
			}
			if r.IntN(2) == 0 {
				time.Sleep(20 * time.Microsecond) // a pause: the next send may go direct
			}
		}
		errc <- nil
	}()
	var m ferry.Msg
	defer m.Free()
	for seq := range n {
		if err := ls.RecvMsg(ctx, &m); err != nil {
			t.Fatal(err)
		}
		if !stress.Checked(m.Body, seq) {
			t.Fatalf("message %d: out of order or corrupted (%d bytes)", seq, len(m.Body))
		}
		switch {
		case seq == 1500:
			time.Sleep(300 * time.Millisecond) // a long stall: the socket buffers fill up
		case seq%500 == 0:
			time.Sleep(20 * time.Millisecond) // the receiver stalls
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	st := ds.Stats()
	t.Logf("%d messages, %d written directly", st.MsgsOut, st.MsgsDirect)
	if st.MsgsOut != n || st.MsgsDirect == 0 {
		t.Errorf("%d out, %d direct: want %d out, some direct", st.MsgsOut, st.MsgsDirect, n)
	}
	if scheme == "inproc" {
		in := ls.Stats()
		t.Logf("%d received, %d delivered by the sender", in.MsgsIn, in.MsgsDirectIn)
		if in.MsgsDirectIn == 0 {
			t.Errorf("no message delivered by the sender")
		}
	}
}

// TestDirectPushRoundTrip: lone messages on PUSH (a round trip over two
// PUSH/PULL links) are written by the sending goroutine, not handed to
// the pipe's writer: each hop of a round trip would otherwise wake a
// thread.
func TestDirectPushRoundTrip(t *testing.T) {
	testutil.NoLeaks(t)
	for _, scheme := range []string{"tcp", "inproc"} {
		t.Run(scheme, func(t *testing.T) {
			inA, outB := connectWith(t, scheme, pull.New, push.New, ferry.SocketConfig{})
			inB, outA := connectWith(t, scheme, pull.New, push.New, ferry.SocketConfig{})
			ctx := testutil.Ctx(t, 10*time.Second)
			const n = 200
			echoed := make(chan error, 1)
			go func() {
				var m ferry.Msg
				defer m.Free()
				for range n {
					if err := inB.RecvMsg(ctx, &m); err != nil {
						echoed <- err
						return
					}
					if err := outB.Send(ctx, &m); err != nil {
						echoed <- err
						return
					}
				}
				echoed <- nil
			}()
			m := ferry.NewMsg(8)
			defer m.Free()
			for i := range n {
				m.SetBody([]byte{byte(i)})
				if err := outA.Send(ctx, m); err != nil {
					t.Fatal(err)
				}
				if err := inA.RecvMsg(ctx, m); err != nil || len(m.Body) != 1 || m.Body[0] != byte(i) {
					t.Fatalf("round trip %d: %v %v", i, m.Body, err)
				}
				time.Sleep(10 * time.Microsecond)
			}
			if err := <-echoed; err != nil {
				t.Fatal(err)
			}
			for name, s := range map[string]*ferry.Socket{"a": outA, "b": outB} {
				st := s.Stats()
				t.Logf("push %s: %d out, %d direct", name, st.MsgsOut, st.MsgsDirect)
				if st.MsgsOut != n || st.MsgsDirect < n/2 {
					t.Errorf("push %s: %d of %d messages written directly, want most", name, st.MsgsDirect, st.MsgsOut)
				}
			}
		})
	}
}

// TestDirectRequestReply: a lone request and its reply are each written by
// the goroutine that sent them, not handed to a writer.
func TestDirectRequestReply(t *testing.T) {
	testutil.NoLeaks(t)
	for _, scheme := range []string{"tcp", "inproc"} {
		t.Run(scheme, func(t *testing.T) { testDirectRequestReply(t, scheme) })
	}
}

func testDirectRequestReply(t *testing.T, scheme string) {
	srv, cli := connectWith(t, scheme, rep.New, req.New, ferry.SocketConfig{})
	ctx := testutil.Ctx(t, 10*time.Second)
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- srv.Serve(sctx, func(_ context.Context, q, a *ferry.Msg) error {
			a.SetBody(q.Body)
			return nil
		}, ferry.ServeConfig{Workers: 1})
	}()
	defer func() { stop(); <-served }()
	const n = 200
	for i := range n {
		b, err := cli.Request(ctx, []byte{byte(i)})
		if err != nil || len(b) != 1 || b[0] != byte(i) {
			t.Fatalf("request %d: %v %v", i, b, err)
		}
		time.Sleep(10 * time.Microsecond)
	}
	for name, s := range map[string]*ferry.Socket{"req": cli, "rep": srv} {
		st := s.Stats()
		t.Logf("%s: %d out, %d direct; %d in, %d delivered by the sender", name, st.MsgsOut, st.MsgsDirect, st.MsgsIn, st.MsgsDirectIn)
		if st.MsgsDirect < n/2 {
			t.Errorf("%s: only %d of %d messages written directly", name, st.MsgsDirect, st.MsgsOut)
		}
		if scheme == "inproc" && st.MsgsDirectIn < n/2 {
			t.Errorf("%s: only %d of %d messages delivered by the sender", name, st.MsgsDirectIn, st.MsgsIn)
		}
	}
}

// TestInprocDirectDeliveryFullQueue: over inproc a lone message is handed
// to the receiving protocol by the sender; when the receive queue is full
// the message goes to the receiver's pipe reader, which waits, and
// everything sent after it stays behind it. The receiver takes nothing
// until the sender is done.
func TestInprocDirectDeliveryFullQueue(t *testing.T) {
	testutil.NoLeaks(t)
	ls, ds := connect(t, "inproc", pair1.New, ferry.SocketConfig{SendQueueLen: 64, RecvQueueLen: 1})
	ctx := testutil.Ctx(t, 10*time.Second)
	const n = 40 // 1 in the receive queue, 1 deferred, 16 in the pipe, the rest in the send queue
	// Direct delivery needs the receiving pipe admitted: Dial returns once
	// the dialer's is, which may be first.
	waitFor(t, "the listener's pipe", func() bool { return ls.Stats().PipesOpen == 1 })
	m := ferry.NewMsg(0)
	defer m.Free()
	for i := range n {
		m.SetBody([]byte{byte(i)})
		if err := ds.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Microsecond) // each may go direct
	}
	if st := ls.Stats(); st.MsgsDirectIn < 2 {
		t.Errorf("%d messages delivered by the sender, want at least the first 2", st.MsgsDirectIn)
	}
	for i := range n {
		if err := ls.RecvMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
		if len(m.Body) != 1 || m.Body[0] != byte(i) {
			t.Fatalf("message %d: got %v", i, m.Body)
		}
	}
}

// TestInprocDirectDeliveryClose: a receiving socket closes while its peer
// keeps delivering into it directly: no race (under -race), no hang, no
// goroutine left.
func TestInprocDirectDeliveryClose(t *testing.T) {
	testutil.NoLeaks(t)
	for i := range 100 {
		ls, ds := connect(t, "inproc", pair1.New, ferry.SocketConfig{RecvQueueLen: 2})
		ctx := testutil.Ctx(t, 10*time.Second)
		done := make(chan struct{})
		go func() {
			defer close(done)
			m := ferry.NewMsg(0)
			defer m.Free()
			sctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
			defer cancel()
			for j := 0; ; j++ {
				m.SetBody([]byte{byte(j)})
				if ds.Send(sctx, m) != nil {
					return
				}
				if j%2 == 0 {
					time.Sleep(2 * time.Microsecond)
				}
			}
		}()
		go func() {
			var m ferry.Msg
			defer m.Free()
			for ls.RecvMsg(ctx, &m) == nil {
			}
		}()
		time.Sleep(time.Duration(i%20) * 50 * time.Microsecond)
		ls.Close()
		<-done
		ds.Close()
	}
}

// TestDirectPubLone: PUB writes a lone message to a lone subscriber from
// the sending goroutine, as PAIR does; with two subscribers every copy
// goes through the pipes' writers. Every subscriber gets every message,
// in order.
func TestDirectPubLone(t *testing.T) {
	testutil.NoLeaks(t)
	for _, scheme := range []string{"tcp", "inproc"} {
		for _, subs := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/%d", scheme, subs), func(t *testing.T) {
				ps, err := pub.New(ferry.SocketConfig{})
				if err != nil {
					t.Fatal(err)
				}
				defer ps.Close()
				l, err := ps.Listen(testutil.Addr(t, scheme))
				if err != nil {
					t.Fatal(err)
				}
				ctx := testutil.Ctx(t, 10*time.Second)
				var ss []*ferry.Socket
				for range subs {
					s, err := sub.New(ferry.SocketConfig{})
					if err != nil {
						t.Fatal(err)
					}
					defer s.Close()
					sub.Subscribe(s, nil)
					if _, err := s.Dial(ctx, l.URL()); err != nil {
						t.Fatal(err)
					}
					ss = append(ss, s)
				}
				pollUntil(t, "subscribers", func() bool { return ps.Stats().PipesOpen == subs })
				const n = 200
				m := ferry.NewMsg(8)
				defer m.Free()
				var got ferry.Msg
				defer got.Free()
				for i := range n {
					m.SetBody([]byte{byte(i)})
					if err := ps.Send(ctx, m); err != nil {
						t.Fatal(err)
					}
					for k, s := range ss {
						if err := s.RecvMsg(ctx, &got); err != nil || len(got.Body) != 1 || got.Body[0] != byte(i) {
							t.Fatalf("subscriber %d, message %d: %v %v", k, i, got.Body, err)
						}
					}
					time.Sleep(10 * time.Microsecond)
				}
				st := ps.Stats()
				t.Logf("pub: %d out, %d direct", st.MsgsOut, st.MsgsDirect)
				if subs == 1 && st.MsgsDirect < n/2 {
					t.Errorf("%d of %d messages written directly to the lone subscriber, want most", st.MsgsDirect, st.MsgsOut)
				}
				if subs > 1 && st.MsgsDirect != 0 {
					t.Errorf("%d messages written directly with %d subscribers, want none", st.MsgsDirect, subs)
				}
			})
		}
	}
}
