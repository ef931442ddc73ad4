package ferry_test

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/pair1"
)

// TestNothingRetained is the pond #110 scenario for sockets: 1 GiB pushed
// through a slow peer over tcp. While it flows, memory stays bounded by
// the queues; once it has drained, heap in use after GC is back within
// 10% of the baseline taken before, so no queue, batch or buffer keeps a
// reference to a finished message.
func TestNothingRetained(t *testing.T) {
	testutil.NoLeaks(t)
	ls, ds := connect(t, "tcp", pair1.New, ferry.SocketConfig{RecvQueueLen: 16, SendQueueLen: 64})
	ctx := testutil.Ctx(t, 5*time.Minute)
	const size, total = 64 << 10, 1 << 30
	// Warm up both pipes so their fixed buffers exist before the baseline.
	if err := ds.SendBytes(ctx, make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	if m, err := ls.Recv(ctx); err != nil {
		t.Fatal(err)
	} else {
		m.Free()
	}
	base := testutil.HeapInUse()

	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() { // sample the heap while data flows
		defer close(sampled)
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
		}
	}()
	errc := make(chan error, 1)
	go func() {
		m := ferry.NewMsg(size)
		for range total / size {
			m.Grow(size)
			m.Body = m.Body[:size]
			if err := ds.Send(ctx, m); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	var m ferry.Msg
	for i := range total / size {
		if err := ls.RecvMsg(ctx, &m); err != nil {
			t.Fatal(err)
		}
		if len(m.Body) != size {
			t.Fatalf("message %d has %d bytes", i, len(m.Body))
		}
		if i%64 == 0 {
			time.Sleep(time.Millisecond) // the slow peer
		}
	}
	m.Free()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-sampled
	after := testutil.HeapInUse()
	// Goroutines left winding down by earlier tests in this binary can
	// hold memory for a moment; retention by ferry does not go away.
	for i := 0; i < 20 && after > base+base/10; i++ {
		time.Sleep(50 * time.Millisecond)
		after = testutil.HeapInUse()
	}
	t.Logf("heap: baseline %d KiB, peak %d KiB, after drain %d KiB", base>>10, peak.Load()>>10, after>>10)
	// Queues hold at most 64+16 messages of 64 KiB, plus kernel buffers
	// and pooled blocks: 64 MiB is far above what a correct run uses.
	if p := peak.Load(); p > base+64<<20 {
		t.Errorf("heap peaked at %d MiB over a %d MiB baseline", p>>20, base>>20)
	}
	if after > base+base/10 {
		t.Errorf("heap after drain %d KiB, more than 10%% over the baseline %d KiB", after>>10, base>>10)
	}
}
