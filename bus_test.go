package ferry_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/bus"
	"github.com/ferrymq/ferry/protocol/pub"
	"github.com/ferrymq/ferry/protocol/pull"
	"github.com/ferrymq/ferry/protocol/push"
	"github.com/ferrymq/ferry/protocol/sub"
)

// TestBusMesh: 5 BUS sockets, each listening and dialing every socket of
// higher index, over each transport. Each socket sends 200 messages;
// every message reaches each of the 4 others exactly once and never its
// sender.
func TestBusMesh(t *testing.T) {
	testutil.NoLeaks(t)
	for _, scheme := range testutil.Transports {
		t.Run(scheme, func(t *testing.T) {
			t.Parallel()
			const nodes, per = 5, 200
			ss := make([]*ferry.Socket, nodes)
			urls := make([]string, nodes)
			for i := range ss {
				s, err := bus.New(ferry.SocketConfig{SendQueueLen: 1024, RecvQueueLen: 1024})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				l, err := s.Listen(testutil.Addr(t, scheme))
				if err != nil {
					t.Fatal(err)
				}
				ss[i], urls[i] = s, l.URL()
			}
			ctx := testutil.Ctx(t, 30*time.Second)
			for i := range ss {
				for j := i + 1; j < nodes; j++ {
					if _, err := ss[i].Dial(ctx, urls[j]); err != nil {
						t.Fatal(err)
					}
				}
			}
			for i, s := range ss {
				pollUntil(t, fmt.Sprintf("node %d's 4 pipes", i), func() bool { return s.Stats().PipesOpen == nodes-1 })
			}
			for i, s := range ss {
				for k := range per {
					if err := s.SendBytes(ctx, binary.BigEndian.AppendUint32([]byte{byte(i)}, uint32(k))); err != nil {
						t.Fatal(err)
					}
				}
			}
			var wg sync.WaitGroup
			errs := make([]error, nodes)
			for i, s := range ss {
				wg.Go(func() {
					var seen [nodes][per]int
					for range (nodes - 1) * per {
						m, err := s.Recv(ctx)
						if err != nil {
							errs[i] = err
							return
						}
						from, k := int(m.Body[0]), binary.BigEndian.Uint32(m.Body[1:])
						m.Free()
						if from == i {
							errs[i] = fmt.Errorf("node %d got its own message %d back", i, k)
							return
						}
						if seen[from][k]++; seen[from][k] > 1 {
							errs[i] = fmt.Errorf("node %d got %d/%d twice", i, from, k)
							return
						}
					}
				})
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			for i, s := range ss {
				recvNone(t, s, 10*time.Millisecond) // nothing extra
				// Writers count a batch after the write returns: poll.
				pollUntil(t, "the writers' counts", func() bool { return s.Stats().MsgsOut == (nodes-1)*per })
				if st := s.Stats(); st.Dropped != 0 || st.MsgsOut != (nodes-1)*per {
					t.Fatalf("node %d: %+v", i, st)
				}
			}
		})
	}
}

// TestBusRaw: a raw BUS socket sees the id of the pipe each message came
// on, and a send carrying that id goes to every pipe but that one.
func TestBusRaw(t *testing.T) {
	testutil.NoLeaks(t)
	hub, err := bus.New(ferry.SocketConfig{Raw: true})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	l, _ := hub.Listen(testutil.Addr(t, "inproc"))
	ctx := testutil.Ctx(t, 10*time.Second)
	var leaves []*ferry.Socket
	for range 3 {
		s, _ := bus.New(ferry.SocketConfig{})
		defer s.Close()
		if _, err := s.Dial(ctx, l.URL()); err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, s)
	}
	pollUntil(t, "3 pipes", func() bool { return hub.Stats().PipesOpen == 3 })
	leaves[0].SendBytes(ctx, []byte("from 0"))
	m, err := hub.Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Header) != 4 || string(m.Body) != "from 0" {
		t.Fatalf("raw recv: header %x body %q", m.Header, m.Body)
	}
	if err := hub.Send(ctx, m); err != nil { // forward, as a device would
		t.Fatal(err)
	}
	for _, s := range leaves[1:] {
		if got := recvString(t, s); got != "from 0" {
			t.Fatalf("got %q", got)
		}
	}
	recvNone(t, leaves[0], 20*time.Millisecond)
}

// TestWrongPeer: each of the new protocols refuses a peer of another
// protocol at the handshake, and counts it as a protocol error with the
// reason "wrong peer protocol"; the refused dialer keeps trying and the
// right peer still gets through.
func TestWrongPeer(t *testing.T) {
	testutil.NoLeaks(t)
	cases := []struct {
		name      string
		l, wrong  newSock
		good      newSock
		goodPeers int
	}{
		{"sub-vs-push", sub.New, push.New, pub.New, 1},
		{"pub-vs-pull", pub.New, pull.New, sub.New, 1},
		{"pull-vs-pub", pull.New, pub.New, push.New, 1},
		{"push-vs-sub", push.New, sub.New, pull.New, 1},
		{"bus-vs-pub", bus.New, pub.New, bus.New, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ls, err := c.l(ferry.SocketConfig{})
			if err != nil {
				t.Fatal(err)
			}
			defer ls.Close()
			l, _ := ls.Listen(testutil.Addr(t, "tcp"))
			w, _ := c.wrong(ferry.SocketConfig{})
			defer w.Close()
			d, _ := w.NewDialer(l.URL(), ferry.DialerConfig{Background: true, ReconnectMin: 10 * time.Millisecond, ReconnectMax: 10 * time.Millisecond})
			if err := d.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			g, _ := c.good(ferry.SocketConfig{})
			defer g.Close()
			if _, err := g.Dial(testutil.Ctx(t, 5*time.Second), l.URL()); err != nil {
				t.Fatal(err)
			}
			pollUntil(t, "two refusals", func() bool { return ls.Stats().CloseReasons[ferry.ReasonWrongPeer] >= 2 })
			st := ls.Stats()
			if st.PipesOpen != c.goodPeers || st.ProtocolErrors < 2 {
				t.Fatalf("stats: open %d, protocol errors %d, reasons %v", st.PipesOpen, st.ProtocolErrors, st.CloseReasons)
			}
		})
	}
}
