// Package testutil holds helpers shared by ferry's tests: the transport
// matrix every protocol test runs over, unique addresses, leak checks and
// heap measurements.
package testutil

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var seq atomic.Uint64

// Transports are the schemes of the test matrix.
var Transports = []string{"inproc", "ipc", "tcp"}

// Addr returns a fresh listening address for scheme. For tcp it asks for
// port 0; read the bound URL back from the listener.
func Addr(t testing.TB, scheme string) string {
	n := seq.Add(1)
	switch scheme {
	case "inproc":
		return fmt.Sprintf("inproc://%s-%d", t.Name(), n)
	case "ipc":
		return "ipc://" + filepath.Join(SockDir(t), fmt.Sprintf("s%d.sock", n))
	case "tcp":
		return "tcp://127.0.0.1:0"
	}
	t.Fatalf("testutil: unknown scheme %q", scheme)
	return ""
}

// SockDir is a short temporary directory for unix sockets (their paths
// are limited to 107 bytes, which t.TempDir can exceed).
func SockDir(t testing.TB) string {
	d, err := os.MkdirTemp("", "ferry")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// Ctx returns a context that ends with the test or after d.
func Ctx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// runtimeOwn ignores the runtime's own goroutine that runs
// runtime.AddCleanup functions (REQ and REP contexts register one): it
// starts with the first cleanup and stays, runnable now and then.
var runtimeOwn = goleak.IgnoreTopFunction("runtime.runCleanups")

// VerifyMain runs the package's tests and fails if any goroutine leaked.
func VerifyMain(m *testing.M) { goleak.VerifyTestMain(m, runtimeOwn) }

// NoLeaks fails t if goroutines started during the test are still alive
// when it ends (allowing them a moment to exit).
func NoLeaks(t testing.TB) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		if err := goleak.Find(opt, runtimeOwn); err != nil {
			t.Errorf("leaked goroutines: %v", err)
		}
	})
}

// HeapInUse returns the bytes of live heap after two full collections.
func HeapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// peers (nngcat) that cannot report the port they bound.
func FreePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WakeBound is the time allowed for a mass wake-up that takes less than d
// without the race detector; under -race it is 10d: 10,000 pending
// contexts close in ~100 ms under -race alone, and took 308 ms once in CI,
// where the race suite's packages run side by side on two cores. The
// bound is there to catch a hang or a wake-up per item gone quadratic,
// not to time the machine. Tests log the figure they measured either way.
func WakeBound(d time.Duration) time.Duration {
	if Race {
		return 10 * d
	}
	return d
}
