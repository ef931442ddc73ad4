package ferry_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/pair"
	"github.com/ferrymq/ferry/protocol/pair1"
)

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name  string
		open  func() error
		field string
	}{
		{"RecvMaxSize", func() error { _, err := pair.New(ferry.SocketConfig{RecvMaxSize: -1}); return err }, "SocketConfig.RecvMaxSize"},
		{"RecvMaxSize huge", func() error { _, err := pair.New(ferry.SocketConfig{RecvMaxSize: 1 << 40}); return err }, "SocketConfig.RecvMaxSize"},
		{"SendQueueLen", func() error { _, err := pair.New(ferry.SocketConfig{SendQueueLen: -5}); return err }, "SocketConfig.SendQueueLen"},
		{"RecvQueueLen", func() error { _, err := pair.New(ferry.SocketConfig{RecvQueueLen: 1 << 21}); return err }, "SocketConfig.RecvQueueLen"},
		{"SendTimeout", func() error { _, err := pair.New(ferry.SocketConfig{SendTimeout: -time.Second}); return err }, "SocketConfig.SendTimeout"},
		{"RecvTimeout", func() error { _, err := pair.New(ferry.SocketConfig{RecvTimeout: -1}); return err }, "SocketConfig.RecvTimeout"},
		{"MaxTTL", func() error { _, err := pair1.New(ferry.SocketConfig{MaxTTL: 16}); return err }, "SocketConfig.MaxTTL"},
		{"HandshakeTimeout", func() error {
			return newDialer(ferry.DialerConfig{ConnConfig: ferry.ConnConfig{HandshakeTimeout: time.Microsecond}})
		}, "DialerConfig.HandshakeTimeout"},
		{"TCPKeepAlive", func() error {
			return newDialer(ferry.DialerConfig{ConnConfig: ferry.ConnConfig{TCPKeepAlive: -1}})
		}, "DialerConfig.TCPKeepAlive"},
		{"ReconnectMin", func() error { return newDialer(ferry.DialerConfig{ReconnectMin: time.Microsecond}) }, "DialerConfig.ReconnectMin"},
		{"ReconnectMax", func() error {
			return newDialer(ferry.DialerConfig{ReconnectMin: time.Second, ReconnectMax: time.Millisecond})
		}, "DialerConfig.ReconnectMax"},
		{"Listener HandshakeTimeout", func() error {
			s, _ := pair.New(ferry.SocketConfig{})
			defer s.Close()
			_, err := s.NewListener("tcp://127.0.0.1:0", ferry.ListenerConfig{ConnConfig: ferry.ConnConfig{HandshakeTimeout: 2 * time.Hour}})
			return err
		}, "ListenerConfig.HandshakeTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.open()
			var oe *ferry.OptionError
			if !errors.Is(err, ferry.ErrBadOption) || !errors.As(err, &oe) || oe.Field != tt.field {
				t.Fatalf("err = %v, want an OptionError for %s", err, tt.field)
			}
			if !strings.Contains(err.Error(), tt.field) || !strings.Contains(err.Error(), "must be") {
				t.Fatalf("message %q does not name the field and its range", err)
			}
		})
	}
	// The zero values work and defaults are filled in.
	s, err := pair1.New(ferry.SocketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if c := s.Config(); c.RecvMaxSize != ferry.DefaultRecvMaxSize || c.MaxTTL != 8 || c.SendQueueLen != 128 {
		t.Fatalf("defaults: %+v", c)
	}
}

func newDialer(cfg ferry.DialerConfig) error {
	s, _ := pair.New(ferry.SocketConfig{})
	defer s.Close()
	_, err := s.NewDialer("tcp://127.0.0.1:1", cfg)
	return err
}

func TestBadAddresses(t *testing.T) {
	testutil.NoLeaks(t)
	s, _ := pair.New(ferry.SocketConfig{})
	defer s.Close()
	for _, addr := range []string{"nope://x", "tcp://127.0.0.1", "tcp://host:1/path", "ipc://", "::bad"} {
		_, err1 := s.NewDialer(addr, ferry.DialerConfig{})
		_, err2 := s.NewListener(addr, ferry.ListenerConfig{})
		if err1 == nil || err2 == nil {
			t.Errorf("%q accepted: dialer %v, listener %v", addr, err1, err2)
		}
	}
	if _, err := s.NewDialer("nope://x", ferry.DialerConfig{}); !errors.Is(err, ferry.ErrBadAddr) {
		t.Errorf("unknown scheme: %v", err)
	}
}

// TestWrongPeerProtocol: a PAIR1 dialer meeting a PAIR0 listener is
// closed after the handshake and counted; a synchronous dial reports it.
func TestWrongPeerProtocol(t *testing.T) {
	testutil.NoLeaks(t)
	for _, scheme := range testutil.Transports {
		t.Run(scheme, func(t *testing.T) {
			ls, _ := pair.New(ferry.SocketConfig{})
			defer ls.Close()
			ds, _ := pair1.New(ferry.SocketConfig{})
			defer ds.Close()
			l, err := ls.Listen(testutil.Addr(t, scheme))
			if err != nil {
				t.Fatal(err)
			}
			_, err = ds.Dial(testutil.Ctx(t, 5*time.Second), l.URL())
			if err == nil || !strings.Contains(err.Error(), string(ferry.ReasonWrongPeer)) {
				t.Fatalf("dial = %v", err)
			}
			if st := ds.Stats(); st.CloseReasons[ferry.ReasonWrongPeer] != 1 || st.ProtocolErrors != 1 {
				t.Fatalf("dialer stats %+v", st)
			}
		})
	}
}

// TestPairRefusesSecondPeer: PAIR keeps its first peer; a second is
// refused and counted, and the first goes on working.
func TestPairRefusesSecondPeer(t *testing.T) {
	testutil.NoLeaks(t)
	for _, scheme := range testutil.Transports {
		t.Run(scheme, func(t *testing.T) {
			ctx := testutil.Ctx(t, 5*time.Second)
			ls, _ := pair1.New(ferry.SocketConfig{})
			defer ls.Close()
			l, err := ls.Listen(testutil.Addr(t, scheme))
			if err != nil {
				t.Fatal(err)
			}
			first, _ := pair1.New(ferry.SocketConfig{})
			defer first.Close()
			if _, err := first.Dial(ctx, l.URL()); err != nil {
				t.Fatal(err)
			}
			// The dialer's Dial returns once its side admitted the pipe;
			// the listener may not have yet, and if the second peer got
			// there first, it would be the one kept.
			waitFor(t, "the listener to admit the first peer", func() bool { return ls.Stats().PipesOpen == 1 })
			second, _ := pair1.New(ferry.SocketConfig{})
			defer second.Close()
			// The listener closes the second pipe at once, as NNG does; the
			// dialer keeps retrying with back-off. In the background: a
			// first attempt may end before the dialer's own side admitted
			// the pipe (inproc's handshake is that quick, under load), and
			// a foreground Dial would then report it.
			d, err := second.NewDialer(l.URL(), ferry.DialerConfig{Background: true})
			if err == nil {
				err = d.Start(ctx)
			}
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the refusal", func() bool { return ls.Stats().CloseReasons[ferry.ReasonRefused] >= 1 })
			if st := ls.Stats(); st.PipesOpen != 1 {
				t.Fatalf("listener has %d pipes open", st.PipesOpen)
			}
			if err := first.SendBytes(ctx, []byte("first peer")); err != nil {
				t.Fatal(err)
			}
			m, err := ls.Recv(ctx)
			if err != nil || string(m.Body) != "first peer" {
				t.Fatal(m, err)
			}
			m.Free()
		})
	}
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestRedialAfterListenerRestart: the dialer finds the listener again
// after it went away and came back, and messages flow again.
func TestRedialAfterListenerRestart(t *testing.T) {
	testutil.NoLeaks(t)
	for _, scheme := range testutil.Transports {
		t.Run(scheme, func(t *testing.T) {
			addr := testutil.Addr(t, scheme)
			if scheme == "tcp" {
				addr = fmt.Sprintf("tcp://127.0.0.1:%d", testutil.FreePort(t))
			}
			ctx := testutil.Ctx(t, 10*time.Second)
			ds, _ := pair1.New(ferry.SocketConfig{})
			defer ds.Close()
			d, _ := ds.NewDialer(addr, ferry.DialerConfig{Background: true, ReconnectMin: time.Millisecond, ReconnectMax: 10 * time.Millisecond})
			if err := d.Start(ctx); err != nil {
				t.Fatal(err)
			}
			for round := range 3 {
				ls, _ := pair1.New(ferry.SocketConfig{})
				if _, err := ls.Listen(addr); err != nil {
					t.Fatal(err)
				}
				if err := ds.SendBytes(ctx, []byte{byte(round)}); err != nil {
					t.Fatal(err)
				}
				m, err := ls.Recv(ctx)
				if err != nil || len(m.Body) != 1 || m.Body[0] != byte(round) {
					t.Fatalf("round %d: %v %v", round, m, err)
				}
				m.Free()
				ls.Close()
				// A message sent before the dialer notices the loss could go
				// to the dying pipe and be lost, as with NNG.
				waitFor(t, "the dialer to see its pipe close", func() bool { return ds.Stats().PipesOpen == 0 })
			}
			if st := ds.Stats(); st.PipesOpened != 3 {
				t.Fatalf("pipes opened %d, want 3", st.PipesOpened)
			}
		})
	}
}

// TestShutdownDrains: messages queued before Shutdown all reach the peer,
// unlike Close; Send after Shutdown began is refused.
func TestShutdownDrains(t *testing.T) {
	testutil.NoLeaks(t)
	for _, scheme := range testutil.Transports {
		t.Run(scheme, func(t *testing.T) {
			ls, ds := connect(t, scheme, pair1.New, ferry.SocketConfig{SendQueueLen: 1024})
			ctx := testutil.Ctx(t, 10*time.Second)
			const n = 1000
			for i := range n {
				if err := ds.SendBytes(ctx, fmt.Appendf(nil, "%d", i)); err != nil {
					t.Fatal(err)
				}
			}
			got := make(chan error, 1)
			go func() {
				for i := range n {
					m, err := ls.Recv(ctx)
					if err != nil {
						got <- fmt.Errorf("message %d: %v", i, err)
						return
					}
					if want := fmt.Sprint(i); string(m.Body) != want {
						got <- fmt.Errorf("got %q want %q", m.Body, want)
						return
					}
					m.Free()
				}
				got <- nil
			}()
			if err := ds.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			if err := ds.SendBytes(ctx, []byte("late")); !errors.Is(err, ferry.ErrClosed) {
				t.Fatalf("send after shutdown = %v", err)
			}
			if err := <-got; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestShutdownBounded: with no peer to drain to, Shutdown gives up when
// its ctx ends and the socket is closed anyway.
func TestShutdownBounded(t *testing.T) {
	testutil.NoLeaks(t)
	s, _ := pair1.New(ferry.SocketConfig{})
	s.SendBytes(context.Background(), []byte("nobody will read this"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, ferry.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v", err)
	}
	if _, err := s.Recv(context.Background()); !errors.Is(err, ferry.ErrClosed) {
		t.Fatalf("Recv after Shutdown = %v", err)
	}
}

// TestTimeouts: per-call ctx deadlines and socket-level timeouts give
// ErrTimeout, which matches os.ErrDeadlineExceeded.
func TestTimeouts(t *testing.T) {
	testutil.NoLeaks(t)
	s, _ := pair1.New(ferry.SocketConfig{RecvTimeout: 10 * time.Millisecond})
	defer s.Close()
	if _, err := s.Recv(context.Background()); !errors.Is(err, ferry.ErrTimeout) {
		t.Fatalf("socket RecvTimeout: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Recv(ctx); !errors.Is(err, ferry.ErrCanceled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled ctx: %v", err)
	}
}

// TestPair1MaxTTL: a raw PAIR1 socket forwarding a message that already
// crossed MaxTTL hops drops it and counts the drop.
func TestPair1Raw(t *testing.T) {
	testutil.NoLeaks(t)
	ls, ds := connect(t, "inproc", pair1.New, ferry.SocketConfig{Raw: true, MaxTTL: 3})
	ctx := testutil.Ctx(t, 5*time.Second)
	for hops := uint32(0); hops < 4; hops++ {
		m := ferry.NewMsg(4)
		m.SetBody([]byte("x"))
		m.AppendHeaderU32(hops)
		if err := ds.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for hops := uint32(1); hops < 4; hops++ {
		m, err := ls.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Header) != 4 || m.Header[3] != byte(hops) {
			t.Fatalf("header %x, want hop count %d", m.Header, hops)
		}
		m.Free()
	}
	if st := ds.Stats(); st.Dropped != 1 {
		t.Fatalf("dropped %d, want 1", st.Dropped)
	}
}

// TestTCPAddresses: IPv4, IPv6 and host names, with port 0 read back.
func TestTCPAddresses(t *testing.T) {
	testutil.NoLeaks(t)
	for _, addr := range []string{"tcp://127.0.0.1:0", "tcp://[::1]:0", "tcp://localhost:0", "tcp4://127.0.0.1:0", "tcp6://[::1]:0"} {
		t.Run(addr, func(t *testing.T) {
			ls, _ := pair1.New(ferry.SocketConfig{})
			defer ls.Close()
			l, err := ls.Listen(addr)
			if err != nil {
				if strings.Contains(addr, "::1") {
					t.Skipf("no IPv6 loopback here: %v", err)
				}
				t.Fatal(err)
			}
			if strings.HasSuffix(l.URL(), ":0") || l.Addr() == nil {
				t.Fatalf("bound URL %q does not carry the port", l.URL())
			}
			ds, _ := pair1.New(ferry.SocketConfig{})
			defer ds.Close()
			ctx := testutil.Ctx(t, 5*time.Second)
			if _, err := ds.Dial(ctx, l.URL()); err != nil {
				t.Fatal(err)
			}
			if err := ds.SendBytes(ctx, []byte(addr)); err != nil {
				t.Fatal(err)
			}
			m, err := ls.Recv(ctx)
			if err != nil || string(m.Body) != addr {
				t.Fatal(m, err)
			}
			m.Free()
		})
	}
}
