package ferry_test

import (
	"encoding/binary"
	"runtime"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/pair"
)

// TestInprocDeferredOrder: over inproc with a tiny receive queue, lone
// messages are delivered by the sender, and those that meet a full queue
// are deferred to the receiver's reader while later ones go through the
// pipe: the receiver sees every message in order. (A deferred message
// was once taken after a later one the reader found in the pipe.)
func TestInprocDeferredOrder(t *testing.T) {
	testutil.NoLeaks(t)
	for _, qlen := range []int{1, 2, 8} {
		ls, ds := connect(t, "inproc", pair.New, ferry.SocketConfig{RecvQueueLen: qlen})
		waitFor(t, "the listener's pipe", func() bool { return ls.Stats().PipesOpen == 1 })
		ctx := testutil.Ctx(t, 20*time.Second)
		const n = 20000
		go func() {
			m := ferry.NewMsg(8)
			defer m.Free()
			for i := range n {
				m.SetBody(binary.BigEndian.AppendUint64(nil, uint64(i)))
				if ds.Send(ctx, m) != nil {
					return
				}
				if i%3 == 0 {
					runtime.Gosched() // spaced sends go direct
				}
			}
		}()
		var m ferry.Msg
		for i := range n {
			if err := ls.RecvMsg(ctx, &m); err != nil {
				t.Fatal(err)
			}
			if got := binary.BigEndian.Uint64(m.Body); got != uint64(i) {
				t.Fatalf("queue %d: message %d arrived as %d", qlen, i, got)
			}
			if i%7 == 0 {
				runtime.Gosched()
			}
		}
		m.Free()
		if st := ls.Stats(); st.MsgsDirectIn == 0 {
			t.Errorf("queue %d: no direct deliveries: the test did not exercise them", qlen)
		}
	}
}
