package ferry_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/pair"
	"github.com/ferrymq/ferry/protocol/pair1"
)

func TestMain(m *testing.M) { testutil.VerifyMain(m) }

type newSock func(ferry.SocketConfig) (*ferry.Socket, error)

var pairs = []struct {
	name string
	New  newSock
}{{"pair0", pair.New}, {"pair1", pair1.New}}

// connect returns a listening and a dialing socket joined over scheme.
func connect(t testing.TB, scheme string, mk newSock, cfg ferry.SocketConfig) (ls, ds *ferry.Socket) {
	t.Helper()
	return connectWith(t, scheme, mk, mk, cfg)
}

// connectWith joins a socket made by mkL, listening, and one made by mkD,
// dialing; both close when the test ends.
func connectWith(t testing.TB, scheme string, mkL, mkD newSock, cfg ferry.SocketConfig) (ls, ds *ferry.Socket) {
	t.Helper()
	ls, err := mkL(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ds, err = mkD(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close(); ls.Close() })
	l, err := ls.Listen(testutil.Addr(t, scheme))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ds.Dial(testutil.Ctx(t, 5*time.Second), l.URL()); err != nil {
		t.Fatal(err)
	}
	return ls, ds
}

func TestPairExchange(t *testing.T) {
	for _, pp := range pairs {
		for _, scheme := range testutil.Transports {
			t.Run(pp.name+"/"+scheme, func(t *testing.T) {
				t.Parallel()
				ls, ds := connect(t, scheme, pp.New, ferry.SocketConfig{})
				ctx := testutil.Ctx(t, 10*time.Second)
				for i, size := range []int{0, 1, 100, 600, 70000, 1 << 20} {
					want := bytes.Repeat([]byte{byte(i + 1)}, size)
					from, to := ds, ls
					if i%2 == 1 {
						from, to = ls, ds
					}
					if err := from.SendBytes(ctx, want); err != nil {
						t.Fatal(err)
					}
					m, err := to.Recv(ctx)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(m.Body, want) || len(m.Header) != 0 {
						t.Fatalf("size %d: got %d bytes, header %x", size, len(m.Body), m.Header)
					}
					m.Free()
				}
				// A writer counts a batch once the write returns, which can be
				// after the peer already has it: poll.
				for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
					st := ls.Stats()
					if st.PipesOpen == 1 && st.MsgsIn == 3 && st.MsgsOut == 3 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("stats: %+v", st)
					}
				}
			})
		}
	}
}

func TestPairManyMessages(t *testing.T) {
	for _, scheme := range testutil.Transports {
		t.Run(scheme, func(t *testing.T) {
			t.Parallel()
			ls, ds := connect(t, scheme, pair1.New, ferry.SocketConfig{})
			ctx := testutil.Ctx(t, 20*time.Second)
			const n = 10000
			errc := make(chan error, 1)
			go func() {
				m := ferry.NewMsg(64)
				for i := range n {
					m.SetBody(fmt.Appendf(nil, "msg %d", i))
					if err := ds.Send(ctx, m); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			var m ferry.Msg
			for i := range n {
				if err := ls.RecvMsg(ctx, &m); err != nil {
					t.Fatal(err)
				}
				if want := fmt.Sprintf("msg %d", i); string(m.Body) != want {
					t.Fatalf("got %q want %q", m.Body, want)
				}
			}
			m.Free()
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		})
	}
}
