package ferry_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/pull"
	"github.com/ferrymq/ferry/protocol/push"
)

// pollUntil polls cond every millisecond for up to 10 s.
func pollUntil(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
	}
}

// fanIn opens a socket listening on scheme and n sockets dialing it, and
// waits until the listener has all n pipes. It returns the listener's URL
// too.
func fanIn(tb testing.TB, scheme string, mkL newSock, lcfg ferry.SocketConfig, mkD newSock, dcfg ferry.SocketConfig, n int) (*ferry.Socket, []*ferry.Socket, string) {
	tb.Helper()
	ls, url := listenSock(tb, mkL, lcfg, scheme)
	ds := make([]*ferry.Socket, n)
	for i := range ds {
		var err error
		if ds[i], err = mkD(dcfg); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { ds[i].Close() })
		if _, err := ds[i].Dial(testutil.Ctx(tb, 10*time.Second), url); err != nil {
			tb.Fatal(err)
		}
	}
	pollUntil(tb, fmt.Sprintf("%d pipes", n), func() bool { return ls.Stats().PipesOpen == n })
	return ls, ds, url
}

func seqBody(i int) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 64), uint64(i)) }

// TestPushPullBasic: over every transport, PUSH delivers every message to
// its PULL peer in order, PULL's Send and PUSH's Recv are not supported.
func TestPushPullBasic(t *testing.T) {
	testutil.NoLeaks(t)
	for _, scheme := range testutil.Transports {
		t.Run(scheme, func(t *testing.T) {
			t.Parallel()
			ps, pls, _ := fanIn(t, scheme, push.New, ferry.SocketConfig{}, pull.New, ferry.SocketConfig{}, 1)
			pl := pls[0]
			ctx := testutil.Ctx(t, 20*time.Second)
			if _, err := ps.Recv(ctx); !errors.Is(err, ferry.ErrNotSupported) {
				t.Fatalf("push Recv: %v", err)
			}
			if err := pl.SendBytes(ctx, []byte("x")); !errors.Is(err, ferry.ErrNotSupported) {
				t.Fatalf("pull Send: %v", err)
			}
			const n = 5000
			go func() {
				for i := range n {
					if ps.SendBytes(ctx, seqBody(i)) != nil {
						return
					}
				}
			}()
			var m ferry.Msg
			for i := range n {
				if err := pl.RecvMsg(ctx, &m); err != nil {
					t.Fatal(err)
				}
				if got := binary.BigEndian.Uint64(m.Body); got != uint64(i) {
					t.Fatalf("message %d arrived as %d", i, got)
				}
			}
			m.Free()
		})
	}
}

// TestPushFairness: PUSH over tcp to 4 PULL peers that keep up (the
// sender never runs more than 64 messages ahead of what was received, so
// no pipe's queue is ever full): the rotation gives each exactly a
// quarter of 100,000 messages. Then a fifth puller that never reads is
// skipped once its queue is full, and the others take its share.
func TestPushFairness(t *testing.T) {
	testutil.NoLeaks(t)
	const n, more, peers, window = 100_000, 8_000, 4, 64
	ps, pls, url := fanIn(t, "tcp", push.New, ferry.SocketConfig{SendQueueLen: 128}, pull.New, ferry.SocketConfig{}, peers)
	ctx := testutil.Ctx(t, 60*time.Second)
	rctx, cancel := context.WithCancel(ctx)
	seen := make([]atomic.Int32, n+more)
	counts := make([]atomic.Int64, peers)
	var total atomic.Int64
	credits := make(chan struct{}, window)
	for range window {
		credits <- struct{}{}
	}
	var wg sync.WaitGroup
	for i, pl := range pls {
		wg.Go(func() {
			var m ferry.Msg
			defer m.Free()
			for pl.RecvMsg(rctx, &m) == nil {
				seen[binary.BigEndian.Uint64(m.Body)].Add(1)
				counts[i].Add(1)
				total.Add(1)
				select { // the second part sends without credits
				case credits <- struct{}{}:
				default:
				}
			}
		})
	}
	defer func() { cancel(); wg.Wait() }()
	start := time.Now()
	m := ferry.NewMsg(64)
	for i := range n {
		<-credits
		m.SetBody(seqBody(i))
		if err := ps.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	pollUntil(t, "every message", func() bool { return total.Load() == n })
	got := make([]int64, peers)
	for i := range got {
		got[i] = counts[i].Load()
	}
	t.Logf("%d messages in %v: %v", n, time.Since(start), got)
	for i, c := range got {
		if c != n/peers {
			t.Errorf("puller %d got %d of %d, want %d", i, c, n, n/peers)
		}
	}
	for i := range n {
		if v := seen[i].Load(); v != 1 {
			t.Fatalf("message %d seen %d times", i, v)
		}
	}

	// A puller that never reads: once its queue (and the buffers behind
	// it) are full, Send skips it and the others take its share. When it
	// finally closes, what its writer had not taken goes to the others.
	stalled, err := pull.New(ferry.SocketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	if _, err := stalled.Dial(ctx, url); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "the stalled puller's pipe", func() bool { return ps.Stats().PipesOpen == peers+1 })
	big := make([]byte, 16<<10) // big enough that kernel buffers hold few
	for i := range more {
		m.SetBody(binary.BigEndian.AppendUint64(big[:0], uint64(n+i))[:len(big)])
		if err := ps.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	stalled.Close()
	var dead ferry.ClosedPipe
	pollUntil(t, "live pullers + the stalled pipe's share = sent", func() bool {
		st := ps.Stats()
		if len(st.Closed) != 1 {
			return false
		}
		dead = st.Closed[0]
		return total.Load()-n+int64(dead.MsgsOut+dead.Dropped) == more
	})
	t.Logf("stalled puller's pipe took %d of %d (written %d, dropped %d)", dead.MsgsOut+dead.Dropped, more, dead.MsgsOut, dead.Dropped)
	if taken := dead.MsgsOut + dead.Dropped; taken > more/4 {
		t.Fatalf("the stalled puller's pipe took %d of %d", taken, more)
	}
}

// TestPushPeerDies: one of four pullers closes mid-run. What PUSH
// promises (docs/protocols.md): every message Send accepted reaches a
// live puller, except the ones handed to the dead pipe, which its stats
// show: written to the kernel (MsgsOut, which the dead peer may or may
// not have read) or taken but not written (Dropped). So survivors +
// dead pipe's MsgsOut + Dropped = sent, exactly; no message arrives twice.
func TestPushPeerDies(t *testing.T) {
	testutil.NoLeaks(t)
	const n, peers, victimGets = 20_000, 4, 2_000
	ps, pls, _ := fanIn(t, "tcp", push.New, ferry.SocketConfig{}, pull.New, ferry.SocketConfig{}, peers)
	ctx := testutil.Ctx(t, 60*time.Second)
	rctx, cancel := context.WithCancel(ctx)
	seen := make([]atomic.Int32, n)
	counts := make([]atomic.Int64, peers)
	var total atomic.Int64
	victim, survivors := pls[0], pls[1:]
	// Pace the sender (64 messages ahead of the readers at most) so that
	// the rotation is exact and the victim dies mid-run.
	credits := make(chan struct{}, 64)
	for range cap(credits) {
		credits <- struct{}{}
	}
	var wg sync.WaitGroup
	for i, pl := range survivors {
		wg.Go(func() {
			var m ferry.Msg
			defer m.Free()
			for pl.RecvMsg(rctx, &m) == nil {
				seen[binary.BigEndian.Uint64(m.Body)].Add(1)
				counts[i+1].Add(1)
				total.Add(1)
				select {
				case credits <- struct{}{}:
				default:
				}
			}
		})
	}
	defer func() { cancel(); wg.Wait() }()
	victimDone := make(chan int, 1)
	victimGone := make(chan struct{}) // closed before the victim closes: pacing ends
	go func() {                       // the victim reads victimGets messages, then closes
		var m ferry.Msg
		got := 0
		for got < victimGets {
			if victim.RecvMsg(ctx, &m) != nil {
				break
			}
			seen[binary.BigEndian.Uint64(m.Body)].Add(1)
			got++
			credits <- struct{}{}
		}
		m.Free()
		close(victimGone)
		victim.Close()
		victimDone <- got
	}()
	m := ferry.NewMsg(64)
	for i := range n {
		select {
		case <-credits:
		case <-victimGone:
		}
		m.SetBody(seqBody(i))
		if err := ps.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	victimGot := <-victimDone
	var dead ferry.ClosedPipe
	pollUntil(t, "survivors + dead pipe's share = sent", func() bool {
		st := ps.Stats()
		if len(st.Closed) != 1 {
			return false
		}
		dead = st.Closed[0]
		return total.Load()+int64(dead.MsgsOut+dead.Dropped) == n
	})
	taken := int(dead.MsgsOut + dead.Dropped)
	t.Logf("victim read %d; its pipe took %d (written %d, lost in a failed write %d, reason %q); survivors %d",
		victimGot, taken, dead.MsgsOut, dead.Dropped, dead.Reason, total.Load())
	if victimGot > taken {
		t.Fatalf("victim read %d, more than its pipe took (%d)", victimGot, taken)
	}
	lost := 0
	for i := range seen {
		switch seen[i].Load() {
		case 0:
			lost++
		case 1:
		default:
			t.Fatalf("message %d arrived twice", i)
		}
	}
	if lost != taken-victimGot {
		t.Fatalf("%d messages never arrived, want %d (taken by the dead pipe but unread)", lost, taken-victimGot)
	}
}
