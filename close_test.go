package ferry_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/pair"
	"github.com/ferrymq/ferry/protocol/pair1"
)

// closeWithin closes s and fails if that takes longer than d.
func closeWithin(t testing.TB, s *ferry.Socket, d time.Duration) {
	t.Helper()
	start := time.Now()
	s.Close()
	if el := time.Since(start); el > d {
		t.Fatalf("Close took %v, want < %v", el, d)
	}
}

// TestCloseBlockedRecv is the NNG #1813 scenario: one goroutine blocked in
// Recv while another closes, 10,000 times. Every Close returns within
// 100 ms and every Recv gets ErrClosed.
func TestCloseBlockedRecv(t *testing.T) {
	testutil.NoLeaks(t)
	var worst time.Duration
	for i := range 10000 {
		s, err := pair1.New(ferry.SocketConfig{})
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		started := make(chan struct{})
		go func() {
			close(started)
			_, err := s.Recv(context.Background())
			errc <- err
		}()
		<-started
		if i%2 == 0 {
			time.Sleep(time.Microsecond) // let some receives really block
		}
		start := time.Now()
		s.Close()
		worst = max(worst, time.Since(start))
		if err := <-errc; !errors.Is(err, ferry.ErrClosed) || !errors.Is(err, net.ErrClosed) {
			t.Fatalf("iteration %d: Recv = %v, want ErrClosed", i, err)
		}
	}
	if worst > 100*time.Millisecond {
		t.Fatalf("slowest Close took %v, want < 100ms", worst)
	}
	t.Logf("slowest of 10,000 closes: %v", worst)
}

// TestCloseConcurrent: 8 goroutines close one connected socket at once;
// all return, and pending operations end with ErrClosed.
func TestCloseConcurrent(t *testing.T) {
	testutil.NoLeaks(t)
	for _, scheme := range testutil.Transports {
		t.Run(scheme, func(t *testing.T) {
			ls, ds := connect(t, scheme, pair.New, ferry.SocketConfig{})
			recvErr := make(chan error, 1)
			go func() { _, err := ls.Recv(context.Background()); recvErr <- err }()
			var wg sync.WaitGroup
			start := make(chan struct{})
			for range 8 {
				wg.Go(func() {
					<-start
					if err := ls.Close(); err != nil {
						t.Error(err)
					}
				})
			}
			close(start)
			wg.Wait()
			if err := <-recvErr; !errors.Is(err, ferry.ErrClosed) {
				t.Fatalf("Recv = %v", err)
			}
			if err := ls.SendBytes(context.Background(), []byte("x")); !errors.Is(err, ferry.ErrClosed) {
				t.Fatalf("Send after Close = %v", err)
			}
			closeWithin(t, ds, 100*time.Millisecond)
		})
	}
}

// TestCloseDuringBackoff: a dialer retrying a dead address with a long
// back-off does not delay Close.
func TestCloseDuringBackoff(t *testing.T) {
	testutil.NoLeaks(t)
	s, _ := pair1.New(ferry.SocketConfig{})
	addr := "tcp://127.0.0.1:" + itoa(testutil.FreePort(t))
	d, err := s.NewDialer(addr, ferry.DialerConfig{Background: true, ReconnectMin: time.Hour, ReconnectMax: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // the first dial fails; the dialer now waits an hour
	closeWithin(t, s, 100*time.Millisecond)
}

// TestDialSyncFails: a synchronous dial to a dead address returns its
// error and leaves nothing running.
func TestDialSyncFails(t *testing.T) {
	testutil.NoLeaks(t)
	s, _ := pair1.New(ferry.SocketConfig{})
	defer s.Close()
	if _, err := s.Dial(context.Background(), "tcp://127.0.0.1:"+itoa(testutil.FreePort(t))); err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
}

// TestCloseDuringHandshake: peers that connected but never completed the
// handshake do not hold Close.
func TestCloseDuringHandshake(t *testing.T) {
	testutil.NoLeaks(t)
	s, _ := pair1.New(ferry.SocketConfig{})
	l, err := s.Listen("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for range 20 {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	time.Sleep(10 * time.Millisecond) // let the listener accept them
	closeWithin(t, s, 100*time.Millisecond)
}

// TestCloseDuringLargeSend: a 64 MiB message is being written to a peer
// that does not read; Close still returns at once.
func TestCloseDuringLargeSend(t *testing.T) {
	testutil.NoLeaks(t)
	s, _ := pair1.New(ferry.SocketConfig{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		c.Write([]byte{0, 'S', 'P', 0, 0, 0x11, 0, 0}) // handshake, then never read
		accepted <- c
	}()
	if _, err := s.Dial(testutil.Ctx(t, 5*time.Second), "tcp://"+ln.Addr().String()); err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	defer peer.Close()
	m := ferry.NewMsg(64 << 20)
	m.Body = m.Body[:64<<20]
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the writer is now stuck in the kernel
	closeWithin(t, s, 100*time.Millisecond)
}

// TestCloseFromReceiver: a goroutine that is itself receiving closes the
// socket when it gets a message.
func TestCloseFromReceiver(t *testing.T) {
	testutil.NoLeaks(t)
	for _, scheme := range testutil.Transports {
		t.Run(scheme, func(t *testing.T) {
			ls, ds := connect(t, scheme, pair1.New, ferry.SocketConfig{})
			done := make(chan error, 1)
			go func() {
				for {
					m, err := ls.Recv(context.Background())
					if err != nil {
						done <- err
						return
					}
					m.Free()
					ls.Close()
				}
			}()
			if err := ds.SendBytes(context.Background(), []byte("close now")); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if !errors.Is(err, ferry.ErrClosed) {
					t.Fatalf("Recv after own Close = %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("receiver did not finish")
			}
		})
	}
}

// TestCloseIdempotent: Close twice, Shutdown after Close, Close after
// Shutdown.
func TestCloseIdempotent(t *testing.T) {
	testutil.NoLeaks(t)
	s, _ := pair.New(ferry.SocketConfig{})
	for range 3 {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Listen("inproc://x"); !errors.Is(err, ferry.ErrClosed) {
		t.Fatalf("Listen after Close = %v", err)
	}
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}
