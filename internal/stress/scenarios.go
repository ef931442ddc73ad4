package stress

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/selfsigned"
	"github.com/ferrymq/ferry/pool"
	"github.com/ferrymq/ferry/protocol/pair"
	"github.com/ferrymq/ferry/protocol/pair1"
	"github.com/ferrymq/ferry/protocol/rep"
	"github.com/ferrymq/ferry/protocol/req"
	_ "github.com/ferrymq/ferry/transport/quic" // the stream churn runs over quic too
)

// FillChecked makes m's body size (>= 12) bytes: seq, random bytes from
// r, and a CRC-32 of all before it, for Checked.
func FillChecked(m *ferry.Msg, seq, size int, r *rand.Rand) {
	m.Grow(size)
	b := m.Body[:size]
	binary.BigEndian.PutUint64(b, uint64(seq))
	for i := 8; i < size-4; i++ {
		b[i] = byte(r.Uint32())
	}
	binary.BigEndian.PutUint32(b[size-4:], crc32.ChecksumIEEE(b[:size-4]))
	m.Body = b
}

// Checked reports whether b is FillChecked's message number seq, intact.
func Checked(b []byte, seq int) bool {
	return len(b) >= 12 && binary.BigEndian.Uint64(b) == uint64(seq) &&
		binary.BigEndian.Uint32(b[len(b)-4:]) == crc32.ChecksumIEEE(b[:len(b)-4])
}

// Join returns a listening socket made by mkL and a dialing one made by
// mkD, joined on addr (both closed on error). ferry demo uses it too.
func Join(ctx context.Context, addr string, mkL, mkD func(ferry.SocketConfig) (*ferry.Socket, error), cfg ferry.SocketConfig) (l, d *ferry.Socket, err error) {
	if l, err = mkL(cfg); err != nil {
		return nil, nil, err
	}
	if d, err = mkD(cfg); err != nil {
		l.Close()
		return nil, nil, err
	}
	ln, err := l.Listen(addr)
	if err == nil {
		_, err = d.Dial(ctx, ln.URL())
	}
	if err != nil {
		l.Close()
		d.Close()
		return nil, nil, err
	}
	return l, d, nil
}

// contextChurn: clients open a fresh REQ context per request, 64 at a
// time, against a REP server of 16 reused contexts; every reply must
// match its request.
func contextChurn(ctx context.Context, sc Scale, progress func(int, int)) error {
	srv, cli, err := Join(ctx, "tcp://127.0.0.1:0", rep.New, req.New, ferry.SocketConfig{})
	if err != nil {
		return err
	}
	defer srv.Close()
	defer cli.Close()
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- srv.Serve(sctx, func(_ context.Context, q, r *ferry.Msg) error {
			r.SetBody(q.Body)
			return nil
		}, ferry.ServeConfig{Workers: 16})
	}()
	defer func() { stop(); <-served }()
	const clients = 64
	var done atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for cl := range clients {
		wg.Go(func() {
			body := make([]byte, 16)
			for i := cl; i < sc.Contexts; i += clients {
				if ctx.Err() != nil || firstErr.Load() != nil {
					return
				}
				binary.BigEndian.PutUint64(body, uint64(i))
				binary.BigEndian.PutUint64(body[8:], rand.Uint64())
				c, err := cli.OpenContext()
				if err == nil {
					if err = c.SendBytes(ctx, body); err == nil {
						var reply []byte
						reply, err = c.RecvBytes(ctx, nil)
						if err == nil && string(reply) != string(body) {
							err = fmt.Errorf("request %d: reply does not match", i)
						}
					}
					c.Close()
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				if n := done.Add(1); n%1000 == 0 {
					progress(int(n), sc.Contexts)
				}
			}
		})
	}
	wg.Wait()
	progress(int(done.Load()), sc.Contexts)
	if e := firstErr.Load(); e != nil {
		return *e
	}
	return nil
}

// closeRaces: a goroutine blocks in Recv while another closes; every
// Close returns within 100 ms and every Recv gets ErrClosed.
func closeRaces(ctx context.Context, sc Scale, progress func(int, int)) error {
	var worst time.Duration
	for i := range sc.CloseIters {
		if ctx.Err() != nil {
			return nil
		}
		s, err := pair1.New(ferry.SocketConfig{})
		if err != nil {
			return err
		}
		errc := make(chan error, 1)
		go func() { _, err := s.Recv(context.Background()); errc <- err }()
		start := time.Now()
		s.Close()
		worst = max(worst, time.Since(start))
		if err := <-errc; !errors.Is(err, ferry.ErrClosed) {
			return fmt.Errorf("iteration %d: blocked Recv got %v, want ErrClosed", i, err)
		}
		if i%1000 == 999 {
			progress(i+1, sc.CloseIters)
		}
	}
	progress(sc.CloseIters, sc.CloseIters)
	if worst > 100*time.Millisecond {
		return fmt.Errorf("slowest Close took %v (limit 100ms)", worst)
	}
	return nil
}

// doubleRelease: messages flow over inproc while the receiver frees some
// twice, some from two goroutines at once, and some through stale copies
// of their handles; every message must keep its checksum.
func doubleRelease(ctx context.Context, sc Scale, progress func(int, int)) error {
	ls, ds, err := Join(ctx, "inproc://stress-release", pair.New, pair.New, ferry.SocketConfig{})
	if err != nil {
		return err
	}
	defer ls.Close()
	defer ds.Close()
	n := sc.Messages
	sendErr := make(chan error, 1)
	go func() {
		r := rand.New(rand.NewPCG(1, 2))
		m := ferry.NewMsg(256)
		for seq := range n {
			FillChecked(m, seq, 12+r.IntN(200), r)
			if err := ds.Send(ctx, m); err != nil {
				sendErr <- err
				return
			}
			if r.IntN(8) == 0 {
				m.Free() // free after a successful send: a no-op
			}
		}
		sendErr <- nil
	}()
	a, b := make(chan *ferry.Msg, 64), make(chan *ferry.Msg, 64)
	var freers sync.WaitGroup
	for _, c := range []chan *ferry.Msg{a, b} {
		freers.Go(func() {
			for m := range c {
				m.Free()
			}
		})
	}
	defer freers.Wait()
	defer close(b)
	defer close(a)
	r := rand.New(rand.NewPCG(3, 4))
	var stale []*ferry.Msg
	for seq := range n {
		m, err := ls.Recv(ctx)
		if err != nil {
			return err
		}
		if !Checked(m.Body, seq) {
			return fmt.Errorf("message %d corrupted: two owners shared a buffer", seq)
		}
		switch r.IntN(8) {
		case 0:
			a <- m
			b <- m
		case 1:
			m.Free()
			m.Free()
		case 2:
			c := new(ferry.Msg)
			reflect.ValueOf(c).Elem().Set(reflect.ValueOf(m).Elem())
			stale = append(stale, c)
			m.Free()
		default:
			m.Free()
		}
		if len(stale) > 16 {
			for _, s := range stale {
				s.Free()
			}
			stale = stale[:0]
		}
		if seq%10000 == 9999 {
			progress(seq+1, n)
		}
	}
	progress(n, n)
	return <-sendErr
}

// retention: the pool half (the pond incident's shape: 10 workers,
// rounds of 14 tasks each capturing a fresh 1 MiB payload, the queue
// always holding some) and the socket half (bytes pushed through a slow
// tcp peer). The heap must stay bounded while they run and come back
// afterwards (checked by Run).
func retention(ctx context.Context, sc Scale, progress func(int, int)) error {
	total := sc.PoolRounds + sc.RetentionBytes>>20
	if err := poolRetention(ctx, sc.PoolRounds, func(done int) { progress(done, total) }); err != nil {
		return fmt.Errorf("pool: %v", err)
	}
	return socketRetention(ctx, sc, func(mib, _ int) { progress(sc.PoolRounds+mib, total) })
}

// poolRetention fails if the heap ever holds more than 64 MiB over where
// it started: a queue that kept finished tasks would pin 1 MiB per task.
func poolRetention(ctx context.Context, rounds int, progress func(int)) error {
	const workers, perRound, payload, limit = 10, 14, 1 << 20, 64 << 20
	p, err := pool.New(workers, pool.Config{})
	if err != nil {
		return err
	}
	defer p.StopAndWait(context.Background())
	base := heapInUse()
	var sum atomic.Int64
	tasks := make([]*pool.Task, perRound)
	for r := range rounds {
		if ctx.Err() != nil {
			return nil
		}
		data := make([]byte, payload)
		data[r%payload] = 1
		for i := range tasks {
			tasks[i] = p.Submit(func() { sum.Add(int64(data[(r+i)%payload])) })
		}
		for _, t := range tasks {
			if err := t.Wait(ctx); err != nil {
				return err
			}
		}
		if r%100 == 99 { // live heap: what the pool still references
			if h := heapInUse(); h > base+limit {
				return fmt.Errorf("round %d: heap %d MiB over a %d MiB start: finished tasks are kept", r+1, (h-base)>>20, base>>20)
			}
			progress(r + 1)
		}
	}
	clear(tasks)
	progress(rounds)
	return nil
}

func socketRetention(ctx context.Context, sc Scale, progress func(int, int)) error {
	ls, ds, err := Join(ctx, "tcp://127.0.0.1:0", pair1.New, pair1.New, ferry.SocketConfig{RecvQueueLen: 16, SendQueueLen: 64})
	if err != nil {
		return err
	}
	defer ls.Close()
	defer ds.Close()
	const size = 64 << 10
	n := sc.RetentionBytes / size
	sendErr := make(chan error, 1)
	go func() {
		m := ferry.NewMsg(size)
		for range n {
			m.Grow(size)
			m.Body = m.Body[:size]
			if err := ds.Send(ctx, m); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- nil
	}()
	var m ferry.Msg
	defer m.Free()
	for i := range n {
		if err := ls.RecvMsg(ctx, &m); err != nil {
			return err
		}
		if i%64 == 0 {
			time.Sleep(time.Millisecond) // the slow peer
		}
		if i%256 == 255 {
			progress((i+1)*size>>20, n*size>>20)
		}
	}
	progress(n*size>>20, n*size>>20)
	return <-sendErr
}

// streamChurn: a client opens a pipe, sends a request and closes, over
// and over, over tcp and then over quic (the quic-go incident's
// transport): on even cycles after reading the reply, on odd cycles at
// once, leaving the server to answer a pipe that is gone. Afterwards no
// pipe is left open on the server.
func streamChurn(ctx context.Context, sc Scale, progress func(int, int)) error {
	for k, scheme := range []string{"tcp", "quic"} {
		err := streamChurnOver(ctx, scheme, sc.StreamCycles, func(done int) {
			progress(k*sc.StreamCycles+done, 2*sc.StreamCycles)
		})
		if err != nil {
			return fmt.Errorf("%s: %v", scheme, err)
		}
	}
	return nil
}

func streamChurnOver(ctx context.Context, scheme string, cycles int, progress func(int)) error {
	var lc ferry.ListenerConfig
	var dc ferry.DialerConfig
	if scheme == "quic" {
		srv, cli, err := selfsigned.Configs()
		if err != nil {
			return err
		}
		lc.TLS, dc.TLS = srv, cli
	}
	srv, err := rep.New(ferry.SocketConfig{})
	if err != nil {
		return err
	}
	defer srv.Close()
	l, err := srv.NewListener(scheme+"://127.0.0.1:0", lc)
	if err == nil {
		err = l.Start()
	}
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- srv.Serve(sctx, func(_ context.Context, q, r *ferry.Msg) error {
			r.SetBody(q.Body)
			return nil
		}, ferry.ServeConfig{Workers: 4})
	}()
	defer func() { stop(); <-served }()
	for i := range cycles {
		if ctx.Err() != nil {
			return nil
		}
		if err := churnOnce(ctx, l.URL(), dc, i%2 == 0); err != nil {
			return fmt.Errorf("cycle %d: %v", i, err)
		}
		if i%100 == 99 {
			progress(i + 1)
		}
	}
	progress(cycles)
	deadline := time.Now().Add(5 * time.Second)
	for srv.Stats().PipesOpen > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d pipes still open after the churn", srv.Stats().PipesOpen)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

func churnOnce(ctx context.Context, url string, dc ferry.DialerConfig, read bool) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cli, err := req.New(ferry.SocketConfig{})
	if err != nil {
		return err
	}
	defer cli.Close()
	d, err := cli.NewDialer(url, dc)
	if err != nil {
		return err
	}
	if err := d.Start(ctx); err != nil {
		return err
	}
	if err := cli.SendBytes(ctx, []byte("churn")); err != nil {
		return err
	}
	if read {
		if b, err := cli.RecvBytes(ctx, nil); err != nil || string(b) != "churn" {
			return fmt.Errorf("reply %q, %v", b, err)
		}
	}
	return nil
}
