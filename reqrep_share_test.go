package ferry_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
)

// TestReqSharesKeptRequest: REQ keeps each request for resending and
// sends a message that shares its body (ShareMsg) on stream pipes, a copy
// on inproc. The REP peer lets every request go unanswered once, so each
// is resent from the kept one after its first copy was written and let
// go: the resend must arrive whole, though the REP side overwrites every
// body it gets. While the request waits for its reply, its block must
// still be held, by the request alone (the writer let go of its share);
// after the reply it must have gone back to the pool.
func TestReqSharesKeptRequest(t *testing.T) {
	testutil.NoLeaks(t)
	for _, scheme := range []string{"tcp", "ipc", "inproc"} {
		for _, lent := range []bool{false, true} {
			for _, size := range []int{64, 4096, 70000} {
				t.Run(fmt.Sprintf("%s/lent=%v/%d", scheme, lent, size), func(t *testing.T) {
					t.Parallel()
					reqShares(t, scheme, lent, size)
				})
			}
		}
	}
}

func reqShares(t *testing.T, scheme string, lent bool, size int) {
	const n = 4
	const capacity = 1 << 20 // a class nothing else in this test takes
	rq, rp := reqrep(t, scheme, ferry.SocketConfig{ResendTime: 100 * time.Millisecond})
	ctx := testutil.Ctx(t, 30*time.Second)
	content := func(i int) []byte { return bytes.Repeat([]byte{byte(i), 'r', 'e', 'q'}, size/4) }
	firsts := make(chan int, n)
	errc := make(chan error, 1)
	go func() {
		var m ferry.Msg
		defer m.Free()
		for i := range n {
			for try := 0; try < 2; { // the first copy goes unanswered
				if err := rp.RecvMsg(ctx, &m); err != nil {
					errc <- fmt.Errorf("request %d, copy %d: %v", i, try, err)
					return
				}
				if len(m.Body) == size && int(m.Body[0]) < i && bytes.Equal(m.Body, content(int(m.Body[0]))) {
					continue // a resend of an earlier request that crossed its reply
				}
				if !bytes.Equal(m.Body, content(i)) {
					errc <- fmt.Errorf("request %d, copy %d arrived changed (%d bytes, starts %x)", i, try, len(m.Body), m.Body[:min(8, len(m.Body))])
					return
				}
				scribble(m.Body)
				if try == 0 {
					firsts <- i
				}
				try++
			}
			m.SetBody([]byte("ok"))
			if err := rp.Send(ctx, &m); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	c, err := rq.OpenContext()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := ferry.NewMsg(capacity)
	defer m.Free()
	for i := range n {
		var blk any
		var gen uint32
		if lent {
			m.SetBodyShared(content(i))
		} else {
			m.Grow(capacity) // a 1 MiB block again after a Send emptied the handle
			m.SetBody(content(i))
			blk, gen = ferry.BlockOf(m)
		}
		if err := c.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
		select {
		case <-firsts:
		case err := <-errc:
			t.Fatal(err)
		}
		if blk != nil {
			time.Sleep(20 * time.Millisecond) // the first copy's writer has let go
			if g, refs := ferry.BlockState(blk); g != gen || refs != 0 {
				t.Fatalf("request %d waiting for its resend: block generation %d (sent at %d), %d extra holders; want it held by the request alone", i, g, gen, refs)
			}
		}
		if err := c.RecvMsg(ctx, m); err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if string(m.Body) != "ok" {
			t.Fatalf("reply %d: %q", i, m.Body)
		}
		if blk != nil {
			// Released: its generation moved on (by one, unless another
			// subtest took the block since; releasing twice is what the
			// generation check in release makes impossible).
			if g, _ := ferry.BlockState(blk); g == gen {
				t.Fatalf("request %d answered: block generation still %d; want it released", i, g)
			}
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
