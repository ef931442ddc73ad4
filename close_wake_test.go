package ferry_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"
	"weak"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/pair1"
	"github.com/ferrymq/ferry/protocol/pub"
	"github.com/ferrymq/ferry/protocol/pull"
	"github.com/ferrymq/ferry/protocol/push"
	"github.com/ferrymq/ferry/protocol/rep"
	"github.com/ferrymq/ferry/protocol/req"
	"github.com/ferrymq/ferry/protocol/sub"
)

// TestCloseWakesEveryReceiver: several receivers wait on one socket, on
// the socket itself or on contexts, with no pipe, an inproc pipe (their
// waits then have no case for the socket's close: a copy queue's wake-up
// or the contexts' own close channels end them) or a tcp one; Close ends
// every wait with ErrClosed.
func TestCloseWakesEveryReceiver(t *testing.T) {
	testutil.NoLeaks(t)
	cases := []struct {
		name string
		mk   newSock
		peer newSock
		// waiters returns n receive calls on s, each ready to block.
		waiters func(t *testing.T, s *ferry.Socket, n int) []func(context.Context) error
	}{
		{"pair1", pair1.New, pair1.New, socketRecv},
		{"pull", pull.New, push.New, socketRecv},
		{"rep", rep.New, req.New, socketRecv},
		{"sub", sub.New, pub.New, socketRecv},
		{"sub-contexts", sub.New, pub.New, contextRecv(false)},
		{"rep-contexts", rep.New, req.New, contextRecv(false)},
		{"req-contexts", req.New, rep.New, contextRecv(true)},
		{"req-one-context", req.New, rep.New, func(t *testing.T, s *ferry.Socket, n int) []func(context.Context) error {
			c, err := s.OpenContext()
			if err != nil {
				t.Fatal(err)
			}
			if err := c.SendBytes(context.Background(), []byte("q")); err != nil {
				t.Fatal(err)
			}
			fs := make([]func(context.Context) error, n)
			for i := range fs {
				fs[i] = func(ctx context.Context) error {
					_, err := c.Recv(ctx)
					return err
				}
			}
			return fs
		}},
		{"req", req.New, rep.New, func(t *testing.T, s *ferry.Socket, n int) []func(context.Context) error {
			if err := s.SendBytes(context.Background(), []byte("q")); err != nil {
				t.Fatal(err)
			}
			return socketRecv(t, s, 1) // one conversation at a time
		}},
	}
	for _, tc := range cases {
		for _, scheme := range []string{"none", "inproc", "tcp"} {
			t.Run(tc.name+"/"+scheme, func(t *testing.T) {
				t.Parallel()
				s, err := tc.mk(ferry.SocketConfig{})
				if err != nil {
					t.Fatal(err)
				}
				if scheme != "none" {
					peer, err := tc.peer(ferry.SocketConfig{})
					if err != nil {
						t.Fatal(err)
					}
					defer peer.Close()
					l, err := s.Listen(testutil.Addr(t, scheme))
					if err != nil {
						t.Fatal(err)
					}
					if _, err := peer.Dial(testutil.Ctx(t, 5*time.Second), l.URL()); err != nil {
						t.Fatal(err)
					}
				}
				errc := make(chan error, 8)
				ws := tc.waiters(t, s, 4)
				for _, w := range ws {
					go func() { errc <- w(context.Background()) }()
				}
				time.Sleep(20 * time.Millisecond) // let them block
				s.Close()
				for i := range ws {
					select {
					case err := <-errc:
						if !errors.Is(err, ferry.ErrClosed) {
							t.Fatalf("receiver %d: %v, want ErrClosed", i, err)
						}
					case <-time.After(5 * time.Second):
						t.Fatalf("%d of %d receivers still waiting 5 s after Close", len(ws)-i, len(ws))
					}
				}
			})
		}
	}
}

func socketRecv(_ *testing.T, s *ferry.Socket, n int) []func(context.Context) error {
	fs := make([]func(context.Context) error, n)
	for i := range fs {
		fs[i] = func(ctx context.Context) error {
			m, err := s.Recv(ctx)
			if err == nil {
				m.Free()
				return fmt.Errorf("received %q", m.Body)
			}
			return err
		}
	}
	return fs
}

// contextRecv opens n contexts on s (sending a request on each first, for
// REQ); each receive closes its context when done.
func contextRecv(send bool) func(t *testing.T, s *ferry.Socket, n int) []func(context.Context) error {
	return func(t *testing.T, s *ferry.Socket, n int) []func(context.Context) error {
		fs := make([]func(context.Context) error, n)
		for i := range fs {
			c, err := s.OpenContext()
			if err != nil {
				t.Fatal(err)
			}
			if send {
				if err := c.SendBytes(context.Background(), []byte("q")); err != nil {
					t.Fatal(err)
				}
			}
			fs[i] = func(ctx context.Context) error {
				defer c.Close()
				_, err := c.Recv(ctx)
				return err
			}
		}
		return fs
	}
}

// TestDroppedContextsCollected: contexts dropped without Close are still
// collected, though the socket lists its open contexts to close them
// with it (the pond class: a queue that keeps references to finished
// work). 50,000 dropped contexts (~17 MB if kept) may leave at most the
// list's own growth behind.
func TestDroppedContextsCollected(t *testing.T) {
	testutil.NoLeaks(t)
	for _, tc := range []struct {
		name string
		mk   newSock
	}{{"req", req.New}, {"rep", rep.New}} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := tc.mk(ferry.SocketConfig{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			const n = 50000
			open := func() {
				for range n {
					if _, err := s.OpenContext(); err != nil {
						t.Fatal(err)
					}
				}
			}
			open() // the list at its largest, before measuring
			before := testutil.HeapInUse()
			open()
			after := testutil.HeapInUse()
			for range 50 { // cleanups run after collection, on their own goroutine
				if after < before+(4<<20) {
					break
				}
				time.Sleep(10 * time.Millisecond)
				after = testutil.HeapInUse()
			}
			if grew := int64(after) - int64(before); grew > 4<<20 {
				t.Fatalf("heap grew %d KiB after %d contexts were dropped", grew>>10, n)
			}
		})
		// The list and its cleanups must not keep a closed socket alive:
		// sockets with contexts open, closed and dropped, are collected.
		t.Run(tc.name+"/closed sockets", func(t *testing.T) {
			var wps []weak.Pointer[ferry.Socket]
			for i := range 100 {
				s, err := tc.mk(ferry.SocketConfig{})
				if err != nil {
					t.Fatal(err)
				}
				c, err := s.OpenContext()
				if err != nil {
					t.Fatal(err)
				}
				if i%2 == 0 {
					c.Close()
				}
				if _, err := s.OpenContext(); err != nil { // dropped open
					t.Fatal(err)
				}
				s.Close()
				wps = append(wps, weak.Make(s))
			}
			alive := len(wps)
			for range 50 {
				runtime.GC()
				alive = 0
				for _, wp := range wps {
					if wp.Value() != nil {
						alive++
					}
				}
				if alive == 0 {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if alive > 0 {
				t.Fatalf("%d of %d closed and dropped sockets still alive", alive, len(wps))
			}
		})
	}
}
