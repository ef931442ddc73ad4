package ferry_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/pair1"
	"github.com/ferrymq/ferry/protocol/rep"
	"github.com/ferrymq/ferry/protocol/req"
)

// TestSteadyStateAllocs: with reused messages, a round trip (direct
// writes), a stream (queued, batched writes) and a request/reply through
// a context allocate nothing per message in the whole process, both
// sides counted; the []byte helpers allocate at most the returned slice.
// "Nothing" allows 0.05 per message (0.1 for the stream): sync.Pool is
// per processor, and a block freed by a writer on one processor is now
// and then missed by a sender on the other (2-4% of messages in a
// stream; -benchmem rounds that to 0 allocs/op). Skipped under -race (the race detector makes sync.Pool drop items);
// .ci/run runs it without.
func TestSteadyStateAllocs(t *testing.T) {
	if testutil.Race {
		t.Skip("-race: sync.Pool drops items on purpose; run without -race (.ci/run does)")
	}
	testutil.NoLeaks(t)
	const limit, warm = 0.05, 500
	perMsg := func(n int, f func()) float64 {
		for range warm { // warm: queues, batch slices and pools reach their size
			f()
		}
		var a, b runtime.MemStats
		runtime.ReadMemStats(&a)
		for range n {
			f()
		}
		runtime.ReadMemStats(&b)
		return float64(b.Mallocs-a.Mallocs) / float64(n)
	}
	ctx := context.Background()
	for _, scheme := range []string{"tcp", "inproc"} {
		t.Run(scheme, func(t *testing.T) {
			ls, ds := connect(t, scheme, pair1.New, ferry.SocketConfig{})
			echoCtx, stop := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() {
				defer close(done)
				var m ferry.Msg
				defer m.Free()
				for ls.RecvMsg(echoCtx, &m) == nil && ls.Send(echoCtx, &m) == nil {
				}
			}()
			m := ferry.NewMsg(64)
			payload := make([]byte, 64)
			rt := perMsg(2000, func() {
				m.SetBody(payload)
				if err := ds.Send(ctx, m); err != nil {
					t.Fatal(err)
				}
				if err := ds.RecvMsg(ctx, m); err != nil {
					t.Fatal(err)
				}
			})
			stop()
			ls.Close()
			<-done
			m.Free()
			t.Logf("PAIR1 round trip: %.3f allocs", rt)
			if rt > limit {
				t.Errorf("PAIR1 round trip allocates %.3f per message", rt)
			}
		})
	}
	streams := []struct {
		name   string
		size   int
		shared bool // SetBodyShared instead of SetBody
	}{
		{"stream", 64, false},
		{"shared stream 64 KiB", 64 << 10, true},
	}
	for _, sc := range streams {
		t.Run(sc.name, func(t *testing.T) {
			ls, ds := connect(t, "tcp", pair1.New, ferry.SocketConfig{})
			n := 20000 * 64 / max(64, sc.size/16)
			got := make(chan float64, 1)
			go func() {
				var m ferry.Msg
				defer m.Free()
				for range warm + n { // all of them: a sender that fills the queues would wait
					if ls.RecvMsg(ctx, &m) != nil {
						break
					}
				}
				got <- 0
			}()
			m := ferry.NewMsg(sc.size)
			defer m.Free()
			payload := make([]byte, sc.size)
			per := perMsg(n, func() {
				if sc.shared {
					m.SetBodyShared(payload)
				} else {
					m.SetBody(payload)
				}
				if err := ds.Send(ctx, m); err != nil {
					t.Fatal(err)
				}
			})
			<-got
			t.Logf("PAIR1 %s: %.4f allocs per message", sc.name, per)
			if per > 2*limit {
				t.Errorf("a PAIR1 %s allocates %.4f per message", sc.name, per)
			}
		})
	}
	t.Run("reqrep", func(t *testing.T) {
		srv, cli := connectWith(t, "tcp", rep.New, req.New, ferry.SocketConfig{})
		sctx, stop := context.WithCancel(ctx)
		served := make(chan error, 1)
		go func() {
			served <- srv.Serve(sctx, func(_ context.Context, q, a *ferry.Msg) error {
				a.SetBody(q.Body)
				return nil
			}, ferry.ServeConfig{Workers: 2})
		}()
		defer func() { stop(); <-served }()
		c, err := cli.OpenContext()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		m := ferry.NewMsg(64)
		defer m.Free()
		payload := make([]byte, 64)
		per := perMsg(2000, func() {
			m.SetBody(payload)
			if err := c.Send(ctx, m); err != nil {
				t.Fatal(err)
			}
			if err := c.RecvMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("REQ/REP round trip: %.3f allocs", per)
		if per > limit {
			t.Errorf("a REQ/REP round trip allocates %.3f", per)
		}
		buf := make([]byte, 0, 64)
		perB := perMsg(2000, func() {
			if err := c.SendBytes(ctx, payload); err != nil {
				t.Fatal(err)
			}
			var err error
			if buf, err = c.RecvBytes(ctx, buf[:0]); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("REQ/REP with []byte helpers: %.3f allocs", perB)
		if perB > 1+limit {
			t.Errorf("the []byte helpers allocate %.3f per round trip", perB)
		}
	})
}
