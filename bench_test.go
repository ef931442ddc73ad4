package ferry_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/pair1"
)

var benchSizes = []int{64, 1 << 10, 64 << 10}

// BenchmarkPairThroughput streams PAIR1 messages one way, reusing one Msg
// on each side: steady state allocates nothing.
func BenchmarkPairThroughput(b *testing.B) {
	for _, scheme := range testutil.Transports {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%s/%d", scheme, size), func(b *testing.B) {
				ls, ds := connect(b, scheme, pair1.New, ferry.SocketConfig{})
				ctx := context.Background()
				payload := make([]byte, size)
				done := make(chan error, 1)
				n := b.N
				go func() {
					var m ferry.Msg
					for range n {
						if err := ls.RecvMsg(ctx, &m); err != nil {
							done <- err
							return
						}
					}
					m.Free()
					done <- nil
				}()
				m := ferry.NewMsg(size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for range n {
					m.SetBody(payload)
					if err := ds.Send(ctx, m); err != nil {
						b.Fatal(err)
					}
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

// BenchmarkPairRoundTrip bounces one message back and forth.
func BenchmarkPairRoundTrip(b *testing.B) {
	for _, scheme := range testutil.Transports {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%s/%d", scheme, size), func(b *testing.B) {
				ls, ds := connect(b, scheme, pair1.New, ferry.SocketConfig{})
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				echoDone := make(chan struct{})
				go func() { // echo
					defer close(echoDone)
					var m ferry.Msg
					for {
						if err := ls.RecvMsg(ctx, &m); err != nil {
							return
						}
						if err := ls.Send(ctx, &m); err != nil {
							return
						}
					}
				}()
				m := ferry.NewMsg(size)
				payload := make([]byte, size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					m.SetBody(payload)
					if err := ds.Send(ctx, m); err != nil {
						b.Fatal(err)
					}
					if err := ds.RecvMsg(ctx, m); err != nil {
						b.Fatal(err)
					}
				}
				m.Free()
				cancel()
				<-echoDone
			})
		}
	}
}
