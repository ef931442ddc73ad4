package ferry_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/pair1"
)

// churnCount is how many pipes a churn case opens: the full count with
// FERRY_CHURN=full (or a number), a smaller one by default so that the
// suite stays within its time budget under -race on two cores.
func churnCount(full, dflt int) int {
	switch v := os.Getenv("FERRY_CHURN"); v {
	case "":
		return dflt
	case "full":
		return full
	default:
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			panic("FERRY_CHURN: want full or a count, got " + v)
		}
		return n
	}
}

// TestStreamChurn is the quic-go #3322 scenario: clients open a pipe,
// send a message and close, over and over, in three ways: after reading
// the server's answer; without reading all of it (a 256 KiB answer still
// in flight when the client closes); and waiting for the server to close
// the pipe. Afterwards the server has no pipe open, no goroutine is left
// (no stream, no connection) and the heap is back within 10% of its
// baseline.
func TestStreamChurn(t *testing.T) {
	// Default counts fit the suite's time budget (a QUIC pipe costs about
	// 2 ms here, 5-16 ms under -race: 10,000 would take minutes);
	// FERRY_CHURN=full runs 10,000 of each.
	fast, slow := 2500, 1000
	if testutil.Race {
		fast, slow = 500, 200
	}
	counts := map[string]int{
		"quic": churnCount(10000, fast), "tcp": churnCount(10000, fast), "ws": churnCount(10000, fast),
		"tls+tcp": churnCount(10000, slow), "wss": churnCount(10000, slow),
	}
	variants := []string{"client-reads", "client-closes-unread", "server-closes"}
	for _, s := range tspecs {
		n, ok := counts[s.scheme]
		if !ok {
			continue
		}
		for _, v := range variants {
			t.Run(s.scheme+"/"+v, func(t *testing.T) {
				testutil.NoLeaks(t)
				churn(t, newTenv(t, s), v, n)
			})
		}
	}
}

func churn(t *testing.T, e *tenv, variant string, n int) {
	proto := &fanProto{}
	srv, err := ferry.NewSocket(proto, ferry.SocketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	l := e.listen(t, srv, "", ferry.ListenerConfig{})
	u := l.URL()
	// fanProto sends bodies as they are: each starts with a PAIR1 hop
	// count of 0.
	ack, blob := []byte{0, 0, 0, 0, 'a', 'c', 'k'}, make([]byte, 256<<10)

	// The server answers each message on its pipe: an ack and a blob, or
	// for server-closes, by closing the pipe.
	var got atomic.Int64
	sctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		var m ferry.Msg
		for srv.RecvMsg(sctx, &m) == nil {
			got.Add(1)
			p := m.Pipe()
			if variant == "server-closes" {
				p.Close()
				continue
			}
			proto.sendTo(p, ack)
			proto.sendTo(p, blob)
		}
		m.Free()
	})
	defer func() { stop(); wg.Wait() }()

	cfg := e.dcfg(ferry.DialerConfig{ReconnectMin: time.Hour, ReconnectMax: time.Hour})
	if cfg.TLS != nil {
		// Clients resume TLS sessions, as a real client that reconnects
		// often would: the churn is of pipes, not of certificate checks.
		cfg.TLS.ClientSessionCache = tls.NewLRUClientSessionCache(16)
	}
	one := func() error {
		c, err := pair1.New(ferry.SocketConfig{})
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d, err := c.NewDialer(u, cfg)
		if err != nil {
			return err
		}
		if err := d.Start(ctx); err != nil {
			return fmt.Errorf("dial: %w", err)
		}
		if err := c.SendBytes(ctx, []byte("ping")); err != nil {
			return err
		}
		switch variant {
		case "client-reads":
			for range 2 {
				m, err := c.Recv(ctx)
				if err != nil {
					return err
				}
				m.Free()
			}
		case "client-closes-unread":
			// The ack has reached the socket; the blob is in flight or
			// queued. Close without reading either.
			for c.Stats().MsgsIn == 0 {
				if ctx.Err() != nil {
					return fmt.Errorf("no ack: %w", ctx.Err())
				}
				time.Sleep(50 * time.Microsecond) // bounded poll
			}
		case "server-closes":
			for c.Stats().PipesClosed == 0 {
				if ctx.Err() != nil {
					return fmt.Errorf("server did not close: %w", ctx.Err())
				}
				time.Sleep(50 * time.Microsecond) // bounded poll
			}
		}
		return nil
	}

	run := func(count int) {
		const workers = 4
		var next atomic.Int64
		errc := make(chan error, workers)
		var cw sync.WaitGroup
		for range workers {
			cw.Go(func() {
				for next.Add(1) <= int64(count) {
					if err := one(); err != nil {
						errc <- err
						return
					}
				}
			})
		}
		cw.Wait()
		close(errc)
		for err := range errc {
			t.Fatal(err)
		}
	}
	settle := func(what string) {
		twait(t, 20*time.Second, what, func() bool { return srv.Stats().PipesOpen == 0 })
	}

	warm := max(n/10, 50)
	// Warm-up fills pools and caches, so the baseline is the steady
	// state. Twice, taking the higher heap: a baseline sampled low once
	// (quic-go's state varies by a few hundred KB between samples) failed
	// the check in CI with no growth to blame (locally the same case
	// ends 0-10% below its baseline).
	var base uint64
	for range 2 {
		run(warm)
		settle("warm-up pipes closed")
		base = max(base, testutil.HeapInUse())
	}
	start := time.Now()
	run(n)
	el := time.Since(start)
	settle("every churned pipe closed")
	if want := int64(2*warm + n); got.Load() != want {
		t.Errorf("server received %d messages, want %d", got.Load(), want)
	}
	heap := testutil.HeapInUse()
	st := srv.Stats()
	t.Logf("%d pipes in %v (%v each); server: opened %d, closed %d, reasons %v; heap %d -> %d bytes",
		n, el.Round(time.Millisecond), (el / time.Duration(n)).Round(time.Microsecond),
		st.PipesOpened, st.PipesClosed, st.CloseReasons, base, heap)
	if st.PipesOpen != 0 || st.PipesClosed != st.PipesOpened {
		t.Errorf("pipes left open: %+v", st)
	}
	// 10% of the baseline, plus 256 KiB for the measurement's own noise
	// (the baseline of this test process is well under 2 MiB).
	if limit := base + base/10 + 256<<10; heap > limit {
		t.Errorf("heap grew from %d to %d bytes after %d pipes (limit %d)", base, heap, n, limit)
	}
}
