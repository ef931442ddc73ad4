package ferry_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/protocol/pub"
	"github.com/ferrymq/ferry/protocol/pull"
	"github.com/ferrymq/ferry/protocol/push"
	"github.com/ferrymq/ferry/protocol/sub"
)

// BenchmarkPubFanOut publishes 64-byte messages over tcp to 1, 10 and 100
// subscribers, and 64 KiB ones (whose bodies the pipes share, ShareMsg)
// to 10; ns/op is per message published (each delivered to every
// subscriber). The publisher stays at most 2,048 messages ahead of the
// subscribers on average, inside queues of 8,192 (at 64 KiB: 4 and 64),
// so nothing is dropped.
func BenchmarkPubFanOut(b *testing.B) {
	cases := []struct{ subs, size int }{{1, 64}, {10, 64}, {100, 64}, {10, 64 << 10}}
	for _, bc := range cases {
		k, size := bc.subs, bc.size
		b.Run(fmt.Sprintf("tcp/%dsubs/%d", k, size), func(b *testing.B) {
			window, queue, every := 2048, 8192, int64(256) // every: deliveries per progress signal
			if size > 1024 {
				window, queue, every = 4, 64, 1
			}
			ps, subs, _ := fanIn(b, "tcp", pub.New, ferry.SocketConfig{SendQueueLen: queue}, sub.New, ferry.SocketConfig{RecvQueueLen: queue}, k)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var total atomic.Int64
			progress := make(chan struct{}, 1)
			var wg sync.WaitGroup
			defer wg.Wait()
			defer cancel()
			for _, ss := range subs {
				sub.Subscribe(ss, nil)
				wg.Go(func() {
					var m ferry.Msg
					defer m.Free()
					for ss.RecvMsg(ctx, &m) == nil {
						if total.Add(1)%every == 0 {
							select {
							case progress <- struct{}{}:
							default:
							}
						}
					}
				})
			}
			m := ferry.NewMsg(size)
			payload := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			sent := int64(0)
			for b.Loop() {
				m.SetBody(payload)
				if err := ps.Send(ctx, m); err != nil {
					b.Fatal(err)
				}
				sent++
				for (sent-int64(window))*int64(k) > total.Load() {
					<-progress
				}
			}
			pollUntil(b, "every copy", func() bool { return total.Load() == sent*int64(k) })
			b.StopTimer()
			if d := ps.Stats().Dropped; d != 0 {
				b.Fatalf("%d dropped", d)
			}
		})
	}
}

// BenchmarkPushThroughput pushes 64-byte messages over tcp to 1 and 4
// pullers; ns/op is per message.
func BenchmarkPushThroughput(b *testing.B) {
	for _, k := range []int{1, 4} {
		b.Run(fmt.Sprintf("tcp/%dpullers/64", k), func(b *testing.B) {
			ps, pls, _ := fanIn(b, "tcp", push.New, ferry.SocketConfig{}, pull.New, ferry.SocketConfig{}, k)
			ctx, cancel := context.WithCancel(context.Background())
			var total atomic.Int64
			var wg sync.WaitGroup
			defer wg.Wait()
			defer cancel()
			for _, pl := range pls {
				wg.Go(func() {
					var m ferry.Msg
					defer m.Free()
					for pl.RecvMsg(ctx, &m) == nil {
						total.Add(1)
					}
				})
			}
			m := ferry.NewMsg(64)
			payload := make([]byte, 64)
			b.SetBytes(64)
			b.ReportAllocs()
			sent := int64(0)
			for b.Loop() {
				m.SetBody(payload)
				if err := ps.Send(ctx, m); err != nil {
					b.Fatal(err)
				}
				sent++
			}
			pollUntil(b, "every message", func() bool { return total.Load() == sent })
		})
	}
}
