package ferry_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/bus"
	"github.com/ferrymq/ferry/protocol/pair1"
	"github.com/ferrymq/ferry/protocol/pub"
	"github.com/ferrymq/ferry/protocol/pull"
	"github.com/ferrymq/ferry/protocol/push"
	"github.com/ferrymq/ferry/protocol/sub"
)

// TestCloseWhileReceiving closes a receiving socket whose queue is full
// and still filling while goroutines keep receiving from it. Close used
// to drain the queue with "while len(q) > 0 { <-q }": when a receiver
// took the last message between the length check and the take, Close
// blocked forever (a 20-minute hang in CI, in ferry bench; the goroutine
// dump showed pull's Close waiting on its queue). The window is narrow:
// this test hits it only now and then on the old code; the fix is
// structural (ferry.DrainQueue never waits, and Recv on a closing socket
// returns ErrClosed before touching the queue).
func TestCloseWhileReceiving(t *testing.T) {
	testutil.NoLeaks(t)
	subAll := func(c ferry.SocketConfig) (*ferry.Socket, error) {
		s, err := sub.New(c)
		if err == nil {
			err = sub.Subscribe(s, nil)
		}
		return s, err
	}
	cases := []struct {
		name     string
		mkS, mkR newSock
	}{
		{"pushpull", push.New, pull.New},
		{"pair1", pair1.New, pair1.New},
		{"bus", bus.New, bus.New},
		{"pubsub", pub.New, subAll},
	}
	iters := 300
	if testutil.Race {
		iters = 60
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for i := range iters {
				rs, ss := connectWith(t, "inproc", c.mkR, c.mkS, ferry.SocketConfig{RecvQueueLen: 256})
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				wg.Go(func() {
					m := ferry.NewMsg(8)
					defer m.Free()
					for {
						m.SetBody([]byte("payload!"))
						if ss.Send(ctx, m) != nil {
							return
						}
					}
				})
				for range 4 {
					wg.Go(func() {
						var m ferry.Msg
						defer m.Free()
						for rs.RecvMsg(ctx, &m) == nil {
						}
					})
				}
				time.Sleep(time.Duration(i%5) * 100 * time.Microsecond)
				done := make(chan struct{})
				go func() { rs.Close(); close(done) }()
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					panic(fmt.Sprintf("%s iteration %d: Close of the receiving socket hung", c.name, i))
				}
				cancel()
				ss.Close()
				wg.Wait()
			}
		})
	}
}
