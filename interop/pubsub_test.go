package interop

import (
	"fmt"
	"strings"
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

// waitPipe polls until s has a pipe open (NNG's PUB and BUS drop what
// they send before that).
func waitPipe(t *testing.T, s *ferry.Socket, p *testutil.Proc) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); s.Stats().PipesOpen == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			p.Kill()
			t.Fatalf("no pipe to nngcat; nngcat: %s", p.Stderr())
		}
	}
}

// readLine reads one --quoted line from nngcat.
func readLine(t *testing.T, p *testutil.Proc) string {
	t.Helper()
	line, err := p.Stdout.ReadString('\n')
	if err != nil {
		p.Kill()
		t.Fatalf("nngcat output: %v; stderr %s", err, p.Stderr())
	}
	return strings.TrimSuffix(line, "\n")
}

// nngArgs adds the address flag for nngcat's side of role r.
func nngArgs(r role, addr string, args ...string) []string {
	if r.ferryListen {
		return append(args, "--dial", addr)
	}
	return append(args, "--listen", addr)
}

// ferryEnd opens s on addr for role r; it returns the URL nngcat uses.
func ferryEnd(t *testing.T, s *ferry.Socket, r role, scheme string) string {
	t.Helper()
	addr := freeAddr(t, scheme)
	if r.ferryListen {
		l, err := s.Listen(addr)
		if err != nil {
			t.Fatal(err)
		}
		return l.URL()
	}
	d, err := s.NewDialer(addr, ferry.DialerConfig{Background: true, ReconnectMin: 5 * time.Millisecond, ReconnectMax: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return addr
}

// TestPubToNNGSub: ferry PUB to nngcat --sub0 --subscribe yes: nngcat
// prints exactly the matching messages, in order.
func TestPubToNNGSub(t *testing.T) {
	testutil.NoLeaks(t)
	for _, scheme := range []string{"tcp", "ipc"} {
		for _, r := range roles {
			t.Run(scheme+"/"+r.name, func(t *testing.T) {
				s, p := setup(t, scheme, r, pub.New, "--sub0", "--subscribe", "yes", "--quoted")
				waitPipe(t, s, p)
				ctx := testutil.Ctx(t, 10*time.Second)
				const n = 60
				for i := range n {
					topic := "yes"
					if i%3 == 1 {
						topic = "no"
					}
					if err := s.SendBytes(ctx, fmt.Appendf(nil, "%s %d", topic, i)); err != nil {
						t.Fatal(err)
					}
				}
				for i := range n {
					if i%3 == 1 {
						continue
					}
					if got, want := readLine(t, p), fmt.Sprintf("%q", fmt.Sprintf("yes %d", i)); got != want {
						t.Fatalf("nngcat printed %s, want %s", got, want)
					}
				}
			})
		}
	}
}

// TestNNGPubToSub: two nngcat --pub0 ("apple" and "banana", once a
// second) to one ferry SUB: the socket's own context, subscribed to "ap",
// gets apples only; a context subscribed to everything gets both.
func TestNNGPubToSub(t *testing.T) {
	testutil.NoLeaks(t)
	for _, scheme := range []string{"tcp", "ipc"} {
		for _, r := range roles {
			t.Run(scheme+"/"+r.name, func(t *testing.T) {
				s, err := sub.New(ferry.SocketConfig{})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				all, _ := s.OpenContext()
				defer all.Close()
				sub.Subscribe(s, []byte("ap"))
				sub.Subscribe(all, nil)
				for _, fruit := range []string{"apple", "banana"} {
					addr := ferryEnd(t, s, r, scheme)
					testutil.StartNNGCat(t, nngArgs(r, addr, "--pub0", "--data", fruit, "--interval", "1", "--count", "20")...)
				}
				ctx := testutil.Ctx(t, 10*time.Second)
				seen := map[string]bool{}
				for !seen["apple"] || !seen["banana"] {
					m, err := all.Recv(ctx)
					if err != nil {
						t.Fatalf("context subscribed to everything: %v (seen %v)", err, seen)
					}
					seen[string(m.Body)] = true
					m.Free()
				}
				for range 2 {
					m, err := s.Recv(ctx)
					if err != nil || string(m.Body) != "apple" {
						t.Fatalf("socket subscribed to \"ap\": %v %v", m, err)
					}
					m.Free()
				}
			})
		}
	}
}

// TestPushToNNGPull: ferry PUSH to nngcat --pull0, 200 messages of every
// size, byte for byte and in order.
func TestPushToNNGPull(t *testing.T) {
	testutil.NoLeaks(t)
	for _, scheme := range []string{"tcp", "ipc"} {
		for _, r := range roles {
			t.Run(scheme+"/"+r.name, func(t *testing.T) {
				s, p := setup(t, scheme, r, push.New, "--pull0", "--msgpack")
				ctx := testutil.Ctx(t, 30*time.Second)
				const n = 200
				go func() {
					for i := range n {
						if s.SendBytes(ctx, payload(i)) != nil {
							return
						}
					}
				}()
				for i := range n {
					got, err := testutil.ReadMsgpack(p.Stdout)
					if err != nil {
						p.Kill()
						t.Fatalf("message %d: %v (nngcat: %s)", i, err, p.Stderr())
					}
					if want := payload(i); string(got) != string(want) {
						t.Fatalf("message %d: got %d bytes, want %d", i, len(got), len(want))
					}
				}
			})
		}
	}
}

// TestNNGPushToPull: nngcat --push0 --count 50 to a ferry PULL.
func TestNNGPushToPull(t *testing.T) {
	testutil.NoLeaks(t)
	for _, scheme := range []string{"tcp", "ipc"} {
		for _, r := range roles {
			t.Run(scheme+"/"+r.name, func(t *testing.T) {
				s, err := pull.New(ferry.SocketConfig{})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				addr := ferryEnd(t, s, r, scheme)
				testutil.StartNNGCat(t, nngArgs(r, addr, "--push0", "--data", "work item", "--count", "50")...)
				ctx := testutil.Ctx(t, 10*time.Second)
				for i := range 50 {
					m, err := s.Recv(ctx)
					if err != nil || string(m.Body) != "work item" {
						t.Fatalf("message %d: %v %v", i, m, err)
					}
					m.Free()
				}
			})
		}
	}
}

// TestBusWithNNG: a ferry BUS and nngcat --bus0 talk both ways: nngcat
// sends once a second and prints what it gets; ferry sends once the pipe
// is up.
func TestBusWithNNG(t *testing.T) {
	testutil.NoLeaks(t)
	for _, scheme := range []string{"tcp", "ipc"} {
		for _, r := range roles {
			t.Run(scheme+"/"+r.name, func(t *testing.T) {
				s, p := setup(t, scheme, r, bus.New, "--bus0", "--quoted", "--data", "from nng", "--interval", "1", "--count", "20")
				waitPipe(t, s, p)
				ctx := testutil.Ctx(t, 10*time.Second)
				for i := range 3 {
					if err := s.SendBytes(ctx, fmt.Appendf(nil, "from ferry %d", i)); err != nil {
						t.Fatal(err)
					}
				}
				for i := range 3 {
					if got, want := readLine(t, p), fmt.Sprintf("\"from ferry %d\"", i); got != want {
						t.Fatalf("nngcat printed %s, want %s", got, want)
					}
				}
				m, err := s.Recv(ctx)
				if err != nil || string(m.Body) != "from nng" {
					t.Fatalf("ferry got %v %v", m, err)
				}
				m.Free()
			})
		}
	}
}
