package ferry_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/rep"
	"github.com/ferrymq/ferry/protocol/req"
)

var (
	rawRep = ferry.ProtocolInfo{Self: 0x31, Peer: 0x30, SelfName: "rep", PeerName: "req"}
	rawReq = ferry.ProtocolInfo{Self: 0x30, Peer: 0x31, SelfName: "req", PeerName: "rep"}
)

// rawPeer opens a fanProto socket speaking info and listening on addr.
func rawPeer(t testing.TB, info ferry.ProtocolInfo, addr string) (*ferry.Socket, *fanProto, string) {
	t.Helper()
	fp := &fanProto{info: info}
	s, err := ferry.NewSocket(fp, ferry.SocketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	return s, fp, l.URL()
}

// TestReqResendDirect, in virtual time: a request written directly
// (Pipe.SendDirect; its resend time taken from the write, Pipe.DirectAt)
// or through the queue is sent again exactly ResendTime later.
func TestReqResendDirect(t *testing.T) {
	for _, direct := range []bool{false, true} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const resend = 10 * time.Second
				rq, _ := req.New(ferry.SocketConfig{ResendTime: resend})
				defer rq.Close()
				a, fa, ua := rawPeer(t, rawRep, "inproc://resend-direct")
				defer a.Close()
				ctx := context.Background()
				send := func() {
					if err := rq.SendBytes(ctx, []byte("ping")); err != nil {
						t.Fatal(err)
					}
				}
				if !direct {
					send() // no pipe yet: queued
				}
				if _, err := rq.Dial(ctx, ua); err != nil {
					t.Fatal(err)
				}
				if direct {
					synctest.Wait() // the pipe is admitted: the send goes direct
					send()
				}
				first, _ := fa.Recv(ctx)
				start := time.Now()
				again, _ := fa.Recv(ctx)
				if waited := time.Since(start); waited != resend {
					t.Fatalf("resent after %v, want %v", waited, resend)
				}
				if got := rq.Stats().MsgsDirect > 0; got != direct {
					t.Fatalf("sent directly: %v, want %v", got, direct)
				}
				first.Free()
				again.Free()
			})
		})
	}
}

// TestReqResend, in virtual time: a request nobody answers is sent again
// after ResendTime with the same id; when its pipe dies it is sent again
// at once to another peer; the caller gets exactly one reply even when the
// peer answers twice.
func TestReqResend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const resend = 10 * time.Second
		rq, _ := req.New(ferry.SocketConfig{ResendTime: resend})
		defer rq.Close()
		a, fa, ua := rawPeer(t, rawRep, "inproc://resend-a")
		defer a.Close()
		ctx := context.Background()
		if _, err := rq.Dial(ctx, ua); err != nil {
			t.Fatal(err)
		}
		c, _ := rq.OpenContext()
		defer c.Close()
		if err := c.SendBytes(ctx, []byte("ping")); err != nil {
			t.Fatal(err)
		}
		first, _ := fa.Recv(ctx)
		start := time.Now()
		again, _ := fa.Recv(ctx) // nobody answered: the timer resends
		if waited := time.Since(start); waited != resend {
			t.Fatalf("resent after %v, want %v", waited, resend)
		}
		if !bytes.Equal(first.Body, again.Body) || len(first.Body) != 8 || first.Body[0]&0x80 == 0 {
			t.Fatalf("first %x, resent %x: want the same id and body", first.Body, again.Body)
		}

		// A second peer; then the first dies and the request moves at once.
		b, fb, ub := rawPeer(t, rawRep, "inproc://resend-b")
		defer b.Close()
		if _, err := rq.Dial(ctx, ub); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		start = time.Now()
		a.Close()
		moved, _ := fb.Recv(ctx)
		if time.Since(start) >= resend || !bytes.Equal(moved.Body, first.Body) {
			t.Fatalf("after pipe loss: %x after %v", moved.Body, time.Since(start))
		}

		// Two answers to one request: one reply, one drop.
		pipe := moved.Pipe()
		for range 2 {
			fb.sendTo(pipe, append(moved.Body[:4:4], "pong"...))
		}
		r, err := c.Recv(ctx)
		if err != nil || string(r.Body) != "pong" {
			t.Fatalf("reply %v %v", r, err)
		}
		synctest.Wait()
		if st := rq.Stats(); st.Dropped != 1 {
			t.Fatalf("dropped %d, want 1 (the duplicate)", st.Dropped)
		}
		rctx, cancel := context.WithTimeout(ctx, time.Hour)
		defer cancel()
		if _, err := c.Recv(rctx); err == nil {
			t.Fatal("a second reply came through")
		}
		for _, m := range []*ferry.Msg{first, again, moved, r} {
			m.Free()
		}
	})
}

// TestReqBadReplies: a reply shorter than 4 bytes closes its pipe; a
// reply with an unknown id is dropped and counted; the socket goes on.
func TestReqBadReplies(t *testing.T) {
	testutil.NoLeaks(t)
	ctx := testutil.Ctx(t, 10*time.Second)
	p, fp, url := rawPeer(t, rawRep, testutil.Addr(t, "tcp"))
	defer p.Close()
	rq, _ := req.New(ferry.SocketConfig{ResendTime: 20 * time.Millisecond})
	defer rq.Close()
	if _, err := rq.Dial(ctx, url); err != nil {
		t.Fatal(err)
	}
	c, _ := rq.OpenContext()
	defer c.Close()
	c.SendBytes(ctx, []byte("q"))
	m, _ := fp.Recv(ctx)
	fp.sendTo(m.Pipe(), []byte{0x80, 0, 0, 1, 'x'}) // unknown id
	waitFor(t, "the unknown reply to be counted", func() bool { return rq.Stats().Dropped == 1 })
	fp.sendTo(m.Pipe(), []byte{0x80, 0}) // too short
	waitFor(t, "the short reply to close the pipe", func() bool {
		return rq.Stats().CloseReasons[ferry.ReasonProtocol] == 1
	})
	m.Free()
	// The dialer reconnects and the request, resent, still gets answered.
	for {
		m, err := fp.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ok := fp.sendTo(m.Pipe(), append(m.Body[:4:4], "ok"...))
		m.Free()
		if ok {
			break
		}
	}
	if b, err := c.RecvBytes(ctx, nil); err != nil || string(b) != "ok" {
		t.Fatalf("reply %q %v", b, err)
	}
	if st := rq.Stats(); st.ProtocolErrors != 1 {
		t.Fatalf("protocol errors %d", st.ProtocolErrors)
	}
}

// TestRepBadRequests: a backtrace over MaxTTL is dropped and the pipe
// stays open; a header that ends before its id closes the pipe; the REP
// socket goes on serving.
func TestRepBadRequests(t *testing.T) {
	testutil.NoLeaks(t)
	ctx := testutil.Ctx(t, 10*time.Second)
	rp, _ := rep.New(ferry.SocketConfig{MaxTTL: 8})
	defer rp.Close()
	l, err := rp.Listen(testutil.Addr(t, "tcp"))
	if err != nil {
		t.Fatal(err)
	}
	fs := &fanProto{info: rawReq}
	raw, _ := ferry.NewSocket(fs, ferry.SocketConfig{})
	defer raw.Close()
	if _, err := raw.Dial(ctx, l.URL()); err != nil {
		t.Fatal(err)
	}
	pipe := fs.list()[0]
	request := func(hops int, body string) []byte {
		var b []byte
		for i := range hops {
			b = binary.BigEndian.AppendUint32(b, uint32(i+1)) // device pipe ids
		}
		b = binary.BigEndian.AppendUint32(b, 0x80000042)
		return append(b, body...)
	}
	fs.sendTo(pipe, request(8, "too deep")) // 9 words > MaxTTL 8
	fs.sendTo(pipe, request(7, "deep enough"))
	m, err := rp.Recv(ctx)
	if err != nil || string(m.Body) != "deep enough" {
		t.Fatalf("got %v %v", m, err)
	}
	m.SetBody([]byte("answer"))
	rp.Send(ctx, m)
	back, _ := fs.Recv(ctx)
	if want := request(7, "answer"); !bytes.Equal(back.Body, want) {
		t.Fatalf("reply %x, want the backtrace then the body %x", back.Body, want)
	}
	back.Free()
	if st := rp.Stats(); st.Dropped != 1 || st.PipesOpen != 1 {
		t.Fatalf("stats %+v", st)
	}
	fs.sendTo(pipe, []byte{0, 0, 0, 1}) // a pipe id and then nothing
	waitFor(t, "the pipe to close", func() bool { return rp.Stats().CloseReasons[ferry.ReasonProtocol] == 1 })
	// Still serving: a new peer gets answers.
	rq, _ := req.New(ferry.SocketConfig{})
	defer rq.Close()
	if _, err := rq.Dial(ctx, l.URL()); err != nil {
		t.Fatal(err)
	}
	go func() {
		if m, err := rp.Recv(ctx); err == nil {
			rp.Send(ctx, m)
		}
	}()
	if b, err := rq.Request(ctx, []byte("still there?")); err != nil || string(b) != "still there?" {
		t.Fatalf("%q %v", b, err)
	}
}
