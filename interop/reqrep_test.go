package interop

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/rep"
	"github.com/ferrymq/ferry/protocol/req"
)

// TestReqToNNGRep: ferry REQ against nngcat --rep0, which answers every
// request with its --data and prints the requests it got.
func TestReqToNNGRep(t *testing.T) {
	testutil.NoLeaks(t)
	for _, scheme := range []string{"tcp", "ipc"} {
		for _, r := range roles {
			t.Run(scheme+"/"+r.name, func(t *testing.T) {
				s, p := setup(t, scheme, r, req.New, "--rep0", "--msgpack", "--data", "nng says hi")
				ctx := testutil.Ctx(t, 30*time.Second)
				const n = 200
				for i := range n {
					body := payload(i)
					if len(body) > 32768 {
						// nngcat prints each request before answering it; more
						// than a pipe buffer (64 KiB) would stall it until we
						// read, which we do after the reply.
						body = body[:32768]
					}
					reply, err := s.Request(ctx, body)
					if err != nil || string(reply) != "nng says hi" {
						t.Fatalf("request %d: %q %v; stats %+v", i, reply, err, s.Stats())
					}
					got, err := testutil.ReadMsgpack(p.Stdout)
					if err != nil || !bytes.Equal(got, body) {
						t.Fatalf("nngcat saw request %d as %d bytes (%v), sent %d", i, len(got), err, len(body))
					}
				}
			})
		}
	}
}

// TestNNGReqToFerryServe: nngcat --req0 processes (one request each)
// against a ferry REP socket run by Serve; each prints the reply.
func TestNNGReqToFerryServe(t *testing.T) {
	testutil.NoLeaks(t)
	for _, scheme := range []string{"tcp", "ipc"} {
		for _, r := range roles {
			t.Run(scheme+"/"+r.name, func(t *testing.T) {
				s, err := rep.New(ferry.SocketConfig{})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				addr := freeAddr(t, scheme)
				if r.ferryListen {
					l, err := s.Listen(addr)
					if err != nil {
						t.Fatal(err)
					}
					addr = l.URL()
				} else {
					d, _ := s.NewDialer(addr, ferry.DialerConfig{Background: true, ReconnectMin: time.Millisecond, ReconnectMax: 20 * time.Millisecond})
					if err := d.Start(t.Context()); err != nil {
						t.Fatal(err)
					}
				}
				ctx, cancel := context.WithCancel(context.Background())
				served := make(chan error, 1)
				go func() {
					served <- s.Serve(ctx, func(_ context.Context, q, reply *ferry.Msg) error {
						reply.SetBody(append([]byte("ferry got "), q.Body...))
						return nil
					}, ferry.ServeConfig{Workers: 4})
				}()
				defer func() {
					cancel()
					if err := <-served; err != nil {
						t.Errorf("Serve: %v", err)
					}
				}()
				for i := range 20 {
					args := []string{"--req0", "--quoted", "--data", fmt.Sprintf("q%d", i)}
					if r.ferryListen {
						args = append(args, "--dial", addr)
					} else {
						args = append(args, "--listen", addr)
					}
					p := testutil.StartNNGCat(t, args...)
					line, err := p.Stdout.ReadString('\n')
					if want := fmt.Sprintf("\"ferry got q%d\"\n", i); err != nil || line != want {
						p.Kill()
						t.Fatalf("nngcat printed %q (%v), want %q; stderr %s", line, err, want, p.Stderr())
					}
					p.Kill()
					if strings.Contains(p.Stderr(), "rror") {
						t.Fatalf("nngcat: %s", p.Stderr())
					}
				}
			})
		}
	}
}
