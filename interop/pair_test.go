package interop

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/pair"
	"github.com/ferrymq/ferry/protocol/pair1"
)

func TestMain(m *testing.M) { testutil.VerifyMain(m) }

var pairProtos = []struct {
	flag string
	New  func(ferry.SocketConfig) (*ferry.Socket, error)
}{{"--pair0", pair.New}, {"--pair1", pair1.New}}

// freeAddr returns an address nngcat can listen on.
func freeAddr(t *testing.T, scheme string) string {
	if scheme == "ipc" {
		return "ipc://" + filepath.Join(testutil.SockDir(t), "n.sock")
	}
	return fmt.Sprintf("tcp://127.0.0.1:%d", testutil.FreePort(t))
}

// payload is message i of a run: sizes from 1 byte to 1 MiB, text and
// binary alternating.
func payload(i int) []byte {
	sizes := []int{1, 2, 17, 100, 255, 256, 1000, 4096, 65535, 65536, 100000}
	n := sizes[i%len(sizes)]
	if i%97 == 0 {
		n = 1 << 20
	}
	b := make([]byte, n)
	if i%2 == 0 {
		for j := range b {
			b[j] = "abcdefghijklmnopqrstuvwxyz0123456789 "[(i+j)%37]
		}
	} else {
		r := rand.New(rand.NewPCG(uint64(i), 7))
		for j := range b {
			b[j] = byte(r.Uint32())
		}
	}
	return b
}

type role struct {
	name        string
	ferryListen bool
}

var roles = []role{{"ferry-listens", true}, {"nngcat-listens", false}}

// setup joins a ferry socket and an nngcat process started with args.
func setup(t *testing.T, scheme string, r role, mk func(ferry.SocketConfig) (*ferry.Socket, error), args ...string) (*ferry.Socket, *testutil.Proc) {
	t.Helper()
	s, err := mk(ferry.SocketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	addr := freeAddr(t, scheme)
	if r.ferryListen {
		l, err := s.Listen(addr)
		if err != nil {
			t.Fatal(err)
		}
		return s, testutil.StartNNGCat(t, append(args, "--dial", l.URL())...)
	}
	p := testutil.StartNNGCat(t, append(args, "--listen", addr)...)
	d, err := s.NewDialer(addr, ferry.DialerConfig{Background: true, ReconnectMin: 5 * time.Millisecond, ReconnectMax: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s, p
}

// TestPairFerryToNNG sends a run of 1000 messages from ferry to nngcat and
// checks each one nngcat prints, byte for byte.
func TestPairFerryToNNG(t *testing.T) {
	testutil.NoLeaks(t)
	for _, pp := range pairProtos {
		for _, scheme := range []string{"tcp", "ipc"} {
			for _, r := range roles {
				t.Run(strings.TrimPrefix(pp.flag, "--")+"/"+scheme+"/"+r.name, func(t *testing.T) {
					s, p := setup(t, scheme, r, pp.New, pp.flag, "--msgpack")
					ctx := testutil.Ctx(t, 60*time.Second)
					const n = 1000
					go func() {
						for i := range n {
							if err := s.SendBytes(ctx, payload(i)); err != nil {
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
						if want := payload(i); !bytes.Equal(got, want) {
							t.Fatalf("message %d: got %d bytes, want %d (equal prefix %v)", i, len(got), len(want), bytes.HasPrefix(want, got[:min(len(got), 16)]))
						}
					}
				})
			}
		}
	}
}

// TestPairNNGToFerry has nngcat processes send messages of every size and
// kind to ferry, 1000 in all over the matrix, each checked byte for byte.
func TestPairNNGToFerry(t *testing.T) {
	testutil.NoLeaks(t)
	const perCase = 125
	dir := t.TempDir()
	for _, pp := range pairProtos {
		for _, scheme := range []string{"tcp", "ipc"} {
			for _, r := range roles {
				t.Run(strings.TrimPrefix(pp.flag, "--")+"/"+scheme+"/"+r.name, func(t *testing.T) {
					s, err := pp.New(ferry.SocketConfig{})
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
						d, err := s.NewDialer(addr, ferry.DialerConfig{Background: true, ReconnectMin: time.Millisecond, ReconnectMax: 20 * time.Millisecond})
						if err != nil {
							t.Fatal(err)
						}
						if err := d.Start(t.Context()); err != nil {
							t.Fatal(err)
						}
					}
					ctx := testutil.Ctx(t, 60*time.Second)
					for i := range perCase {
						want := payload(i * 3)
						args := []string{pp.flag, "--quoted"}
						if i%2 == 0 && len(want) < 4096 {
							args = append(args, "--data", string(want))
						} else {
							f := filepath.Join(dir, "payload")
							if err := os.WriteFile(f, want, 0o600); err != nil {
								t.Fatal(err)
							}
							args = append(args, "--file", f)
						}
						if r.ferryListen {
							args = append(args, "--dial", addr)
						} else {
							args = append(args, "--listen", addr)
						}
						p := testutil.StartNNGCat(t, args...)
						got, err := s.Recv(ctx)
						if err != nil {
							p.Kill()
							st := s.Stats()
							t.Fatalf("message %d: %v (nngcat: %s; pipes open %d, closed %v)", i, err, p.Stderr(), st.PipesOpen, st.CloseReasons)
						}
						if !bytes.Equal(got.Body, want) {
							t.Fatalf("message %d: got %d bytes, want %d", i, len(got.Body), len(want))
						}
						got.Free()
						p.Kill()
					}
				})
			}
		}
	}
}
