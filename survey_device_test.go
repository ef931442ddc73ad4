package ferry_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/pub"
	"github.com/ferrymq/ferry/protocol/pull"
	"github.com/ferrymq/ferry/protocol/push"
	"github.com/ferrymq/ferry/protocol/rep"
	"github.com/ferrymq/ferry/protocol/req"
	"github.com/ferrymq/ferry/protocol/respondent"
	"github.com/ferrymq/ferry/protocol/sub"
	"github.com/ferrymq/ferry/protocol/surveyor"
)

// TestSurvey: a surveyor with 50 respondents collects 50 answers inside
// the survey time; then Recv times out, a late answer is dropped and
// counted, and a new survey ignores answers to the old one.
func TestSurvey(t *testing.T) {
	testutil.NoLeaks(t)
	const n = 50
	sv, err := surveyor.New(ferry.SocketConfig{SurveyTime: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer sv.Close()
	l, err := sv.Listen(testutil.Addr(t, "tcp"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testutil.Ctx(t, 20*time.Second)
	late := make(chan struct{})
	var resps []*ferry.Socket
	for i := range n {
		r, _ := respondent.New(ferry.SocketConfig{})
		defer r.Close()
		if _, err := r.Dial(ctx, l.URL()); err != nil {
			t.Fatal(err)
		}
		resps = append(resps, r)
		go func() {
			for round := 0; ; round++ {
				m, err := r.Recv(ctx)
				if err != nil {
					return
				}
				if i == 0 && string(m.Body) == "first" {
					<-late // respondent 0 answers the first survey too late
				}
				m.SetBody(fmt.Appendf(nil, "%s from %d", m.Body, i))
				if r.Send(ctx, m) != nil {
					return
				}
			}
		}()
	}
	waitFor(t, "50 respondents", func() bool { return sv.Stats().PipesOpen == n })

	start := time.Now()
	if err := sv.SendBytes(ctx, []byte("first")); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for len(got) < n-1 {
		b, err := sv.RecvBytes(ctx, nil)
		if err != nil {
			t.Fatalf("after %d answers: %v", len(got), err)
		}
		got[string(b)] = true
	}
	if el := time.Since(start); el > 500*time.Millisecond {
		t.Fatalf("49 answers took %v, longer than the survey", el)
	}
	if _, err := sv.Recv(ctx); !errors.Is(err, ferry.ErrTimeout) {
		t.Fatalf("Recv waiting at expiry = %v, want ErrTimeout", err)
	}
	if _, err := sv.Recv(ctx); !errors.Is(err, ferry.ErrState) {
		t.Fatalf("Recv after expiry = %v, want ErrState", err)
	}
	close(late) // respondent 0 answers now: dropped and counted
	waitFor(t, "the late answer to be dropped", func() bool { return sv.Stats().Dropped == 1 })

	// A new survey; answers to it only.
	if err := sv.SendBytes(ctx, []byte("second")); err != nil {
		t.Fatal(err)
	}
	for range n {
		b, err := sv.RecvBytes(ctx, nil)
		if err != nil || string(b[:6]) != "second" {
			t.Fatalf("%q %v", b, err)
		}
	}
}

// TestSurveyorContexts: two contexts run their own surveys at once.
func TestSurveyorContexts(t *testing.T) {
	testutil.NoLeaks(t)
	sv, _ := surveyor.New(ferry.SocketConfig{})
	defer sv.Close()
	l, _ := sv.Listen(testutil.Addr(t, "inproc"))
	r, _ := respondent.New(ferry.SocketConfig{})
	defer r.Close()
	ctx := testutil.Ctx(t, 10*time.Second)
	if _, err := r.Dial(ctx, l.URL()); err != nil {
		t.Fatal(err)
	}
	// A survey goes to the pipes the surveyor has: wait until its side
	// admitted the respondent's (Dial returns once the dialer's side did).
	waitFor(t, "the surveyor's pipe", func() bool { return sv.Stats().PipesOpen == 1 })
	srvCtx, stop := context.WithCancel(ctx)
	defer stop()
	go r.Serve(srvCtx, func(_ context.Context, q, a *ferry.Msg) error {
		a.SetBody(append([]byte("a:"), q.Body...))
		return nil
	}, ferry.ServeConfig{Workers: 2})
	c1, _ := sv.OpenContext()
	c2, _ := sv.OpenContext()
	defer c1.Close()
	defer c2.Close()
	c1.SendBytes(ctx, []byte("one"))
	c2.SendBytes(ctx, []byte("two"))
	if b, err := c2.RecvBytes(ctx, nil); err != nil || string(b) != "a:two" {
		t.Fatalf("c2: %q %v", b, err)
	}
	if b, err := c1.RecvBytes(ctx, nil); err != nil || string(b) != "a:one" {
		t.Fatalf("c1: %q %v", b, err)
	}
}

// TestDeviceChain: REQ -> device -> device -> device -> REP works; with a
// MaxTTL of 2 the request is dropped at the third hop.
func TestDeviceChain(t *testing.T) {
	testutil.NoLeaks(t)
	for _, ttl := range []int{8, 2} {
		t.Run(fmt.Sprintf("ttl=%d", ttl), func(t *testing.T) {
			cfg := ferry.SocketConfig{MaxTTL: ttl}
			raw := cfg
			raw.Raw = true
			ctx := testutil.Ctx(t, 10*time.Second)
			back, _ := rep.New(cfg)
			defer back.Close()
			addr := testutil.Addr(t, "inproc")
			if _, err := back.Listen(addr); err != nil {
				t.Fatal(err)
			}
			devCtx, stopDevs := context.WithCancel(ctx)
			devErr := make(chan error, 3)
			var fronts []*ferry.Socket // fronts[0] is the third hop from the client
			for i := range 3 {
				front, _ := rep.New(raw) // takes requests
				fronts = append(fronts, front)
				rear, _ := req.New(raw) // passes them on
				defer front.Close()
				defer rear.Close()
				if _, err := rear.Dial(ctx, addr); err != nil {
					t.Fatal(err)
				}
				addr = testutil.Addr(t, "inproc") + fmt.Sprint(i)
				if _, err := front.Listen(addr); err != nil {
					t.Fatal(err)
				}
				go func() { devErr <- ferry.Device(devCtx, front, rear) }()
			}
			client, _ := req.New(cfg)
			defer client.Close()
			if _, err := client.Dial(ctx, addr); err != nil {
				t.Fatal(err)
			}
			srvCtx, stop := context.WithCancel(ctx)
			served := make(chan error, 1)
			go func() {
				served <- back.Serve(srvCtx, func(_ context.Context, q, a *ferry.Msg) error {
					a.SetBody(append([]byte("served "), q.Body...))
					return nil
				}, ferry.ServeConfig{Workers: 1})
			}()
			rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			b, err := client.Request(rctx, []byte("through three devices"))
			cancel()
			if ttl == 8 && (err != nil || string(b) != "served through three devices") {
				t.Fatalf("ttl 8: %q %v", b, err)
			}
			if ttl == 2 {
				if !errors.Is(err, ferry.ErrTimeout) {
					t.Fatalf("ttl 2: %q %v, want a timeout", b, err)
				}
				if st := back.Stats(); st.MsgsIn != 0 {
					t.Fatalf("the request reached the server: %+v", st)
				}
				drops := []uint64{fronts[0].Stats().Dropped, fronts[1].Stats().Dropped, fronts[2].Stats().Dropped}
				if drops[0] == 0 || drops[1] != 0 || drops[2] != 0 {
					t.Fatalf("drops by hop (third, second, first) = %v: want it dropped at the third hop only", drops)
				}
			}
			stop()
			<-served
			stopDevs()
			for range 3 {
				if err := <-devErr; !errors.Is(err, ferry.ErrCanceled) {
					t.Fatalf("Device = %v", err)
				}
			}
		})
	}
}

func TestDeviceNeedsRaw(t *testing.T) {
	a, _ := rep.New(ferry.SocketConfig{})
	b, _ := req.New(ferry.SocketConfig{Raw: true})
	defer a.Close()
	defer b.Close()
	if err := ferry.Device(context.Background(), a, b); !errors.Is(err, ferry.ErrState) {
		t.Fatalf("Device with a cooked socket = %v", err)
	}
}

// TestSurveyorBadResponses: a response shorter than 4 bytes closes its
// pipe; an id without the high bit (never issued) is dropped and counted.
func TestSurveyorBadResponses(t *testing.T) {
	testutil.NoLeaks(t)
	ctx := testutil.Ctx(t, 10*time.Second)
	raw, fp, url := rawPeer(t, ferry.ProtocolInfo{Self: 0x63, Peer: 0x62, SelfName: "respondent", PeerName: "surveyor"}, testutil.Addr(t, "tcp"))
	defer raw.Close()
	sv, _ := surveyor.New(ferry.SocketConfig{})
	defer sv.Close()
	if _, err := sv.Dial(ctx, url); err != nil {
		t.Fatal(err)
	}
	if err := sv.SendBytes(ctx, []byte("q")); err != nil {
		t.Fatal(err)
	}
	m, err := fp.Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id := append([]byte(nil), m.Body[:4]...)
	fp.sendTo(m.Pipe(), append([]byte{id[0] &^ 0x80, id[1], id[2], id[3]}, "bad id"...))
	fp.sendTo(m.Pipe(), append(id, "good"...))
	if b, err := sv.RecvBytes(ctx, nil); err != nil || string(b) != "good" {
		t.Fatalf("%q %v", b, err)
	}
	waitFor(t, "the bad id to be counted", func() bool { return sv.Stats().Dropped == 1 })
	fp.sendTo(m.Pipe(), []byte{0x80})
	waitFor(t, "the short response to close the pipe", func() bool {
		return sv.Stats().CloseReasons[ferry.ReasonProtocol] == 1
	})
	m.Free()
}

// TestDeviceFanOutAndPipeline: PUB -> device -> SUB and PUSH -> device ->
// PULL work; the direction a PUB or PUSH cannot receive on is skipped.
func TestDeviceFanOutAndPipeline(t *testing.T) {
	testutil.NoLeaks(t)
	raw := ferry.SocketConfig{Raw: true}
	tests := []struct {
		name         string
		front, rear  func(ferry.SocketConfig) (*ferry.Socket, error) // device: front receives, rear sends
		source, sink func(ferry.SocketConfig) (*ferry.Socket, error)
		subscribe    bool
	}{
		{"pub-sub", sub.New, pub.New, pub.New, sub.New, true},
		{"push-pull", pull.New, push.New, push.New, pull.New, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testutil.Ctx(t, 10*time.Second)
			front, _ := tt.front(raw)
			rear, _ := tt.rear(raw)
			src, _ := tt.source(ferry.SocketConfig{})
			dst, _ := tt.sink(ferry.SocketConfig{})
			for _, s := range []*ferry.Socket{front, rear, src, dst} {
				defer s.Close()
			}
			if tt.subscribe {
				sub.Subscribe(front, nil)
				sub.Subscribe(dst, []byte("m"))
			}
			lf, _ := src.Listen(testutil.Addr(t, "inproc"))
			if _, err := front.Dial(ctx, lf.URL()); err != nil {
				t.Fatal(err)
			}
			lr, _ := rear.Listen(testutil.Addr(t, "inproc"))
			if _, err := dst.Dial(ctx, lr.URL()); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "pipes up", func() bool { return src.Stats().PipesOpen == 1 && rear.Stats().PipesOpen == 1 })
			devCtx, stop := context.WithCancel(ctx)
			devErr := make(chan error, 1)
			go func() { devErr <- ferry.Device(devCtx, front, rear) }()
			for i := range 20 {
				if err := src.SendBytes(ctx, fmt.Appendf(nil, "m%02d", i)); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 20 {
				b, err := dst.RecvBytes(ctx, nil)
				if want := fmt.Sprintf("m%02d", i); err != nil || string(b) != want {
					t.Fatalf("got %q %v, want %q", b, err, want)
				}
			}
			stop()
			if err := <-devErr; !errors.Is(err, ferry.ErrCanceled) {
				t.Fatalf("Device = %v", err)
			}
		})
	}
}
