package ferry_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/ferrymq/ferry"
)

var transportBenchSizes = []int{64, 64 << 10}

// BenchmarkTransportThroughput streams PAIR1 messages one way over every
// transport, one reused Msg on each side.
func BenchmarkTransportThroughput(b *testing.B) {
	for _, s := range tspecs {
		for _, size := range transportBenchSizes {
			b.Run(fmt.Sprintf("%s/%d", s.scheme, size), func(b *testing.B) {
				ls, ds, _ := newTenv(b, s).pair(b, ferry.SocketConfig{}, ferry.SocketConfig{})
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

// BenchmarkTransportRoundTrip bounces one message back and forth over
// every transport.
func BenchmarkTransportRoundTrip(b *testing.B) {
	for _, s := range tspecs {
		for _, size := range transportBenchSizes {
			b.Run(fmt.Sprintf("%s/%d", s.scheme, size), func(b *testing.B) {
				ls, ds, _ := newTenv(b, s).pair(b, ferry.SocketConfig{}, ferry.SocketConfig{})
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				echoDone := make(chan struct{})
				go func() {
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
