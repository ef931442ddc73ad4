package ferry_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
)

// BenchmarkReqRepRoundTrip: one context, one request at a time, a Serve
// server echoing; messages reused on both sides.
func BenchmarkReqRepRoundTrip(b *testing.B) {
	for _, scheme := range testutil.Transports {
		for _, size := range []int{64, 1 << 10, 64 << 10} {
			b.Run(fmt.Sprintf("%s/%d", scheme, size), func(b *testing.B) {
				rq, rp := reqrep(b, scheme, ferry.SocketConfig{})
				defer echo(b, rp, 4)()
				ctx := context.Background()
				c, _ := rq.OpenContext()
				defer c.Close()
				m := ferry.NewMsg(size + 3)
				payload := make([]byte, size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					m.SetBody(payload)
					if err := c.Send(ctx, m); err != nil {
						b.Fatal(err)
					}
					if err := c.RecvMsg(ctx, m); err != nil {
						b.Fatal(err)
					}
				}
				m.Free()
			})
		}
	}
}

// BenchmarkReqRepConcurrent: requests per second with 1, 16 and 256
// contexts in flight on one socket, over tcp.
func BenchmarkReqRepConcurrent(b *testing.B) {
	for _, n := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("tcp/contexts=%d", n), func(b *testing.B) {
			rq, rp := reqrep(b, "tcp", ferry.SocketConfig{})
			defer echo(b, rp, 16)()
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N / n
			for i := range n {
				k := per
				if i == 0 {
					k += b.N % n
				}
				wg.Go(func() {
					c, _ := rq.OpenContext()
					defer c.Close()
					m := ferry.NewMsg(64)
					payload := make([]byte, 64)
					for range k {
						m.SetBody(payload)
						if err := c.Send(ctx, m); err != nil {
							b.Error(err)
							return
						}
						if err := c.RecvMsg(ctx, m); err != nil {
							b.Error(err)
							return
						}
					}
					m.Free()
				})
			}
			wg.Wait()
		})
	}
}
