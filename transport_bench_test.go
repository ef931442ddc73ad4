package ferry_test

import (
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
				benchStream(b, ls, ds, size)
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
				benchBounce(b, ls, ds, size)
			})
		}
	}
}
