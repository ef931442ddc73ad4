package ferry_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/pool"
	"github.com/ferrymq/ferry/protocol/pair"
)

// TestServeAndConsumeOnPool: a REP server and a consumer share one
// pool; its limit holds across both and every message is handled.
func TestServeAndConsumeOnPool(t *testing.T) {
	testutil.NoLeaks(t)
	p, err := pool.New(2, pool.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.StopAndWait(context.Background())
	var running, peak atomic.Int64
	track := func() func() {
		if n := running.Add(1); n > peak.Load() {
			peak.Store(n)
		}
		return func() { running.Add(-1) }
	}
	ctx, cancel := context.WithCancel(context.Background())
	rctx := testutil.Ctx(t, 20*time.Second)

	rq, rp := reqrep(t, "inproc", ferry.SocketConfig{})
	served := make(chan error, 1)
	go func() {
		served <- rp.Serve(ctx, func(_ context.Context, q, r *ferry.Msg) error {
			defer track()()
			r.SetBody(q.Body)
			return nil
		}, ferry.ServeConfig{Workers: 8, Pool: p})
	}()

	ls, ds := connect(t, "inproc", pair.New, ferry.SocketConfig{})
	var consumed atomic.Int64
	var st ferry.ServeStats
	consumedDone := make(chan error, 1)
	go func() {
		consumedDone <- ls.Consume(ctx, func(_ context.Context, m *ferry.Msg) error {
			defer track()()
			if string(m.Body) == "boom" {
				panic("handler panic")
			}
			consumed.Add(1)
			return nil
		}, ferry.ConsumeConfig{Workers: 8, Pool: p, Stats: &st, Logger: discardLogger()})
	}()

	const n = 500
	go func() {
		for range n {
			ds.SendBytes(rctx, []byte("work"))
		}
		ds.SendBytes(rctx, []byte("boom"))
	}()
	for i := range 50 {
		if b, err := rq.Request(rctx, []byte{byte(i)}); err != nil || len(b) != 1 || b[0] != byte(i) {
			t.Fatalf("request %d: %x %v", i, b, err)
		}
	}
	waitFor(t, "every message consumed", func() bool { return consumed.Load() == n && st.Panics.Load() == 1 })
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if err := <-consumedDone; err != nil {
		t.Fatal(err)
	}
	if peak.Load() > 2 {
		t.Fatalf("%d handlers ran at once on a pool of 2", peak.Load())
	}
	ls.Close()
	if err := ls.Consume(context.Background(), func(context.Context, *ferry.Msg) error { return nil }, ferry.ConsumeConfig{}); !errors.Is(err, ferry.ErrClosed) {
		t.Fatalf("Consume on a closed socket = %v", err)
	}
}
