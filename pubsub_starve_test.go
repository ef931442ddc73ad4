package ferry_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/pub"
	"github.com/ferrymq/ferry/protocol/sub"
)

// TestSubscriberNotStarved: a publisher sending flat out never blocks
// (PUB and SUB drop the oldest when full), so nothing ever made the pipe
// reader or writer wait, and a subscriber parked on its queue got to run
// only when the busy goroutine next to it was preempted: it received ~2%
// of what was published (~10k msg/s). Full queues now yield. The
// subscriber must get a fair share of what the publisher sent.
func TestSubscriberNotStarved(t *testing.T) {
	testutil.NoLeaks(t)
	for _, scheme := range []string{"inproc", "tcp"} {
		t.Run(scheme, func(t *testing.T) {
			ps, ss := connectWith(t, scheme, pub.New, func(c ferry.SocketConfig) (*ferry.Socket, error) {
				s, err := sub.New(c)
				if err == nil {
					err = sub.Subscribe(s, nil)
				}
				return s, err
			}, ferry.SocketConfig{})
			ctx, cancel := context.WithCancel(testutil.Ctx(t, time.Minute))
			var sent, got atomic.Int64
			var wg sync.WaitGroup
			wg.Go(func() {
				m := ferry.NewMsg(64)
				defer m.Free()
				for ctx.Err() == nil {
					m.SetBody(make([]byte, 0, 64)[:64])
					if ps.Send(ctx, m) != nil {
						return
					}
					sent.Add(1)
				}
			})
			wg.Go(func() {
				var m ferry.Msg
				defer m.Free()
				for ss.RecvMsg(ctx, &m) == nil {
					got.Add(1)
				}
			})
			for got.Load() < 20000 && ctx.Err() == nil {
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(300 * time.Millisecond)
			cancel()
			wg.Wait()
			ratio := float64(got.Load()) / float64(sent.Load())
			t.Logf("published %d, received %d (%.1f%%)", sent.Load(), got.Load(), 100*ratio)
			if ratio < 0.15 {
				t.Errorf("the subscriber received %.1f%% of what was published: starved", 100*ratio)
			}
		})
	}
}
