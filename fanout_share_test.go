package ferry_test

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/pub"
	"github.com/ferrymq/ferry/protocol/sub"
)

// TestFanoutShared: PUB sends each message to subscribers over inproc,
// ipc, tcp, ws and inproc again at once, with a body in pooled storage (SetBody) or
// lent (SetBodyShared), small (copied per pipe) or large (shared by the
// pipes' writers, ShareMsg). Every subscriber must get every message
// whole (one more, over tcp, stops reading, so PUB drops messages
// queued for it), though each overwrites every body it gets (an inproc subscriber
// handed shared storage would scribble on the others' message, and -race
// reports the writes), and though the sender, after each Send, takes a
// block of the size class it sent from and overwrites it (a block given
// back before its last holder let go would be that one). The last
// message's block must go back to the pool exactly once, with no holder
// left, once the publisher has closed (the stalled pipe's queue held it).
func TestFanoutShared(t *testing.T) {
	testutil.NoLeaks(t)
	for _, lent := range []bool{false, true} {
		for _, size := range []int{64, 4096, 70000} {
			t.Run(fmt.Sprintf("lent=%v/%d", lent, size), func(t *testing.T) {
				fanoutShared(t, lent, size)
			})
		}
	}
}

func fanoutShared(t *testing.T, lent bool, size int) {
	const perTransport, n, round = 2, 120, 8 // n a multiple of round
	// Bodies live in blocks of their own class (1 MiB), which nothing
	// else in the test takes: the last one's generation tells whether it
	// went back to the pool, and how often.
	const capacity = 1 << 20
	ps, err := pub.New(ferry.SocketConfig{SendQueueLen: 2 * round})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	// inproc first and last: the last pipe gets the sent message itself,
	// whose storage the others share.
	addrs := []string{testutil.Addr(t, "inproc"), testutil.Addr(t, "ipc"), testutil.Addr(t, "tcp"), "ws://127.0.0.1:0/fan", testutil.Addr(t, "inproc")}
	urls := make([]string, len(addrs))
	for i, a := range addrs {
		l, err := ps.Listen(a)
		if err != nil {
			t.Fatal(err)
		}
		urls[i] = l.URL()
	}
	// Before the others, so that the last pipe stays inproc: a
	// subscriber that stops reading. Its queue on PUB fills, and PUB
	// drops the oldest there, shared storage included.
	stalledSubscriber(t, urls[2])
	pollUntil(t, "the stalled subscriber", func() bool { return ps.Stats().PipesOpen == 1 })
	var subs []*ferry.Socket
	for _, u := range urls {
		for range perTransport {
			ss, err := sub.New(ferry.SocketConfig{RecvQueueLen: 2 * round})
			if err != nil {
				t.Fatal(err)
			}
			defer ss.Close()
			sub.Subscribe(ss, nil)
			if _, err := ss.Dial(testutil.Ctx(t, 10*time.Second), u); err != nil {
				t.Fatal(err)
			}
			subs = append(subs, ss)
		}
	}
	pollUntil(t, "subscribers", func() bool { return ps.Stats().PipesOpen == len(subs)+1 })

	content := func(i int) []byte { return bytes.Repeat([]byte{byte(i), byte(i >> 8), 'f', 'o'}, size/4) }
	ctx := testutil.Ctx(t, 60*time.Second)
	var wg sync.WaitGroup
	got := make([]chan int, len(subs))
	errc := make(chan error, len(subs))
	for k, ss := range subs {
		got[k] = make(chan int, n)
		wg.Go(func() {
			var m ferry.Msg
			defer m.Free()
			for i := range n {
				if err := ss.RecvMsg(ctx, &m); err != nil {
					errc <- fmt.Errorf("subscriber %d, message %d: %v", k, i, err)
					return
				}
				if !bytes.Equal(m.Body, content(i)) {
					errc <- fmt.Errorf("subscriber %d: message %d arrived changed (%d bytes, starts %x)", k, i, len(m.Body), m.Body[:min(8, len(m.Body))])
					return
				}
				scribble(m.Body)
				got[k] <- i
			}
		})
	}
	payloads := make([][]byte, n) // lent: each stays unchanged until ps closes
	var last any
	var lastGen uint32
	m := ferry.NewMsg(capacity)
	defer m.Free()
	for i := range n {
		if lent {
			payloads[i] = content(i)
			m.SetBodyShared(payloads[i])
		} else {
			m.Grow(capacity) // a 1 MiB block again after a Send emptied the handle
			m.SetBody(content(i))
			if i == n-1 {
				last, lastGen = ferry.BlockOf(m)
			}
		}
		if err := ps.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
		if !lent && i < n-1 {
			x := ferry.NewMsg(capacity)
			x.SetBody(bytes.Repeat([]byte{0xEE}, capacity))
			x.Free()
		}
		if (i+1)%round == 0 { // pace: no queue overflows (PUB would drop)
			for k := range subs {
				for j := i + 1 - round; j <= i; j++ {
					select {
					case v := <-got[k]:
						if v != j {
							t.Fatalf("subscriber %d: got %d, want %d", k, v, j)
						}
					case err := <-errc:
						t.Fatal(err)
					case <-ctx.Done():
						t.Fatalf("subscriber %d: message %d did not arrive", k, j)
					}
				}
			}
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if d := ps.Stats().Dropped; n*size > 4<<20 && d == 0 { // more than the kernel buffers hold
		t.Errorf("nothing dropped for the subscriber that stopped reading")
	}
	if err := ps.Close(); err != nil {
		t.Fatal(err)
	}
	for k, p := range payloads {
		if lent && !bytes.Equal(p, content(k)) {
			t.Fatalf("lent payload %d changed", k)
		}
	}
	if last != nil {
		if gen, refs := ferry.BlockState(last); gen != lastGen+1 || refs != 0 {
			t.Errorf("last message's block: generation %d, %d extra holders; want %d (released once) and 0", gen, refs, lastGen+1)
		}
	}
}
