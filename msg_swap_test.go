package ferry_test

import (
	"bytes"
	"context"
	"testing"
	"time"
	"unsafe"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/pair1"
)

// unsafeData is the address of b's first byte (nil for an empty slice
// without storage).
func unsafeData(b []byte) *byte { return unsafe.SliceData(b) }

// TestSwapBody: SwapBody exchanges bodies and the storage under them,
// copying nothing; each block is still released once, by whichever
// handle ends up holding it; headers stay; a sent handle is usable again.
func TestSwapBody(t *testing.T) {
	testutil.NoLeaks(t)
	lent := []byte("lent body")
	cases := []struct {
		name       string
		setA, setB func(m *ferry.Msg)
	}{
		{"pooled/pooled", func(m *ferry.Msg) { m.SetBody([]byte("aaaa")) }, func(m *ferry.Msg) { m.SetBody(bytes.Repeat([]byte("b"), 5000)) }},
		{"pooled/lent", func(m *ferry.Msg) { m.SetBody([]byte("aaaa")) }, func(m *ferry.Msg) { m.SetBodyShared(lent) }},
		{"pooled/empty", func(m *ferry.Msg) { m.SetBody([]byte("aaaa")) }, func(m *ferry.Msg) {}},
		{"lent/empty", func(m *ferry.Msg) { m.SetBodyShared(lent) }, func(m *ferry.Msg) {}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var a, b ferry.Msg
			tc.setA(&a)
			tc.setB(&b)
			a.SetHeader([]byte{1, 2, 3, 4})
			wantA, wantB := bytes.Clone(b.Body), bytes.Clone(a.Body)
			blkA, genA := ferry.BlockOf(&a)
			blkB, genB := ferry.BlockOf(&b)
			ptrA, ptrB := unsafeData(a.Body), unsafeData(b.Body)
			a.SwapBody(&b)
			if !bytes.Equal(a.Body, wantA) || !bytes.Equal(b.Body, wantB) {
				t.Fatalf("after swap: a %q, b %q", a.Body, b.Body)
			}
			if unsafeData(a.Body) != ptrB || unsafeData(b.Body) != ptrA {
				t.Fatal("a body was copied, not moved")
			}
			if x, _ := ferry.BlockOf(&a); x != blkB {
				t.Fatal("a does not hold b's block")
			}
			if x, _ := ferry.BlockOf(&b); x != blkA {
				t.Fatal("b does not hold a's block")
			}
			if !bytes.Equal(a.Header, []byte{1, 2, 3, 4}) || len(b.Header) != 0 {
				t.Fatalf("headers moved: a %x, b %x", a.Header, b.Header)
			}
			a.SwapBody(&a) // no-op
			if !bytes.Equal(a.Body, wantA) {
				t.Fatalf("self swap changed a: %q", a.Body)
			}
			a.Free()
			b.Free()
			a.Free() // idempotent
			for _, bg := range []struct {
				blk any
				gen uint32
			}{{blkA, genA}, {blkB, genB}} {
				if bg.blk == nil {
					continue
				}
				if g, refs := ferry.BlockState(bg.blk); g != bg.gen+1 || refs != 0 {
					t.Fatalf("block released %d times (refs %d), want once", g-bg.gen, refs)
				}
			}
		})
	}
	t.Run("sent", func(t *testing.T) {
		ls, ds := connect(t, "inproc", pair1.New, ferry.SocketConfig{})
		m := ferry.NewMsg(16)
		defer m.Free()
		m.SetBody([]byte("sent"))
		if err := ds.Send(testutil.Ctx(t, 5*time.Second), m); err != nil {
			t.Fatal(err)
		}
		got, err := ls.Recv(testutil.Ctx(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer got.Free()
		o := ferry.NewMsg(16)
		defer o.Free()
		o.SetBody([]byte("other"))
		m.SwapBody(o) // m was sent: usable again
		if string(m.Body) != "other" || len(o.Body) != 0 {
			t.Fatalf("m %q, o %q", m.Body, o.Body)
		}
		if err := ds.Send(testutil.Ctx(t, 5*time.Second), m); err != nil {
			t.Fatalf("sending the revived handle: %v", err)
		}
	})
}

// TestServeEchoSwapBody: a Serve handler that answers with the request's
// body (reply.SwapBody(req)) over inproc, ipc and tcp, bodies from 0 B
// to 70,000 B: every reply is the request, though the requester
// overwrites every reply it gets and a handler overwrites nothing.
func TestServeEchoSwapBody(t *testing.T) {
	testutil.NoLeaks(t)
	for _, scheme := range testutil.Transports {
		t.Run(scheme, func(t *testing.T) {
			t.Parallel()
			rq, rp := reqrep(t, scheme, ferry.SocketConfig{})
			defer serveWith(t, rp, 4, func(_ context.Context, q, a *ferry.Msg) error {
				a.SwapBody(q)
				return nil
			})()
			ctx := testutil.Ctx(t, 30*time.Second)
			c, err := rq.OpenContext()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			m := ferry.NewMsg(0)
			defer m.Free()
			for i, size := range []int{0, 1, 64, 1000, 4096, 70000, 64, 70000, 0} {
				want := bytes.Repeat([]byte{byte(i), 's', 'w'}, size/3+1)[:size]
				m.SetBody(want)
				if err := c.Send(ctx, m); err != nil {
					t.Fatal(err)
				}
				if err := c.RecvMsg(ctx, m); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(m.Body, want) {
					t.Fatalf("request %d (%d B): reply %d B, starts %x", i, size, len(m.Body), m.Body[:min(8, len(m.Body))])
				}
				scribble(m.Body)
			}
		})
	}
}
