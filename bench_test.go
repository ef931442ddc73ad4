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
				benchStream(b, ls, ds, size)
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
				benchBounce(b, ls, ds, size)
			})
		}
	}
}

// benchStream sends b.N messages of size bytes from ds to ls, one reused
// Msg on each side, and waits until ls has them all.
func benchStream(b *testing.B, ls, ds *ferry.Socket, size int) {
	ctx := context.Background()
	payload := make([]byte, size)
	done := make(chan error, 1)
	n := b.N
	go func() {
		var m ferry.Msg
		defer m.Free()
		for range n {
			if err := ls.RecvMsg(ctx, &m); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	m := ferry.NewMsg(size)
	defer m.Free()
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
}

// benchBounce measures round trips: ds sends, ls echoes, ds receives.
func benchBounce(b *testing.B, ls, ds *ferry.Socket, size int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	echoDone := make(chan struct{})
	go func() {
		defer close(echoDone)
		var m ferry.Msg
		defer m.Free()
		for ls.RecvMsg(ctx, &m) == nil && ls.Send(ctx, &m) == nil {
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
}
