package interop

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/pair1"
	"github.com/ferrymq/ferry/protocol/req"
	_ "github.com/ferrymq/ferry/transport/tls"
	_ "github.com/ferrymq/ferry/transport/ws"
)

// secureSchemes are the transports NNG 1.5.2 shares with ferry beyond
// tcp and ipc.
var secureSchemes = []string{"tls+tcp", "ws", "wss"}

// tpeer joins a ferry socket and an nngcat over a tls or ws transport,
// with certificates made for the test: when ferry listens it demands a
// client certificate (mutual authentication) and nngcat presents one and
// checks ferry's against the CA; when nngcat listens, ferry checks
// nngcat's certificate.
type tpeer struct {
	scheme string
	ferryL bool
	pki    *testutil.PKI
	addr   string // where the listener is
}

func newTpeer(t *testing.T, scheme string, ferryListens bool) *tpeer {
	p := &tpeer{scheme: scheme, ferryL: ferryListens}
	if scheme != "ws" {
		p.pki = testutil.NewPKI(t)
	}
	p.addr = fmt.Sprintf("%s://127.0.0.1:%d", scheme, testutil.FreePort(t))
	if strings.HasPrefix(scheme, "ws") {
		p.addr += "/sp"
	}
	return p
}

// start binds or dials s and returns the nngcat arguments that meet it.
func (p *tpeer) start(t *testing.T, s *ferry.Socket) []string {
	t.Helper()
	var args []string
	if p.ferryL {
		lc := ferry.ListenerConfig{}
		if p.pki != nil {
			lc.TLS = p.pki.MutualTLS()
			args = append(args, "--cacert", p.pki.CAFile, "--cert", p.pki.ClientCertFile, "--key", p.pki.ClientKeyFile)
		}
		l, err := s.NewListener(p.addr, lc)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Start(); err != nil {
			t.Fatal(err)
		}
		return append(args, "--dial", l.URL())
	}
	if p.pki != nil {
		args = append(args, "--cert", p.pki.ServerCertFile, "--key", p.pki.ServerKeyFile)
	}
	return append(args, "--listen", p.addr)
}

// dial starts ferry's dialer once nngcat listens (it retries until then).
func (p *tpeer) dial(t *testing.T, s *ferry.Socket) {
	t.Helper()
	if p.ferryL {
		return
	}
	dc := ferry.DialerConfig{Background: true, ReconnectMin: 5 * time.Millisecond, ReconnectMax: 50 * time.Millisecond}
	if p.pki != nil {
		dc.TLS = p.pki.ClientTLS()
	}
	d, err := s.NewDialer(p.addr, dc)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestTransportFerryToNNG: 120 PAIR1 messages of 1 B to 1 MiB go from
// ferry to nngcat over tls+tcp, ws and wss, each role, byte for byte.
func TestTransportFerryToNNG(t *testing.T) {
	testutil.NoLeaks(t)
	for _, scheme := range secureSchemes {
		for _, r := range roles {
			t.Run(scheme+"/"+r.name, func(t *testing.T) {
				s, err := pair1.New(ferry.SocketConfig{})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				tp := newTpeer(t, scheme, r.ferryListen)
				p := testutil.StartNNGCat(t, append([]string{"--pair1", "--msgpack", "--recv-maxsz", "4194304"}, tp.start(t, s)...)...)
				tp.dial(t, s)
				ctx := testutil.Ctx(t, 60*time.Second)
				const n = 120
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
					if !bytes.Equal(got, payload(i)) {
						t.Fatalf("message %d: got %d bytes, want %d", i, len(got), len(payload(i)))
					}
				}
			})
		}
	}
}

// TestTransportNNGToFerry: nngcat processes send one message each to
// ferry (text and binary, up to 1 MiB), over tls+tcp, ws and wss, each
// role.
func TestTransportNNGToFerry(t *testing.T) {
	testutil.NoLeaks(t)
	dir := t.TempDir()
	for _, scheme := range secureSchemes {
		for _, r := range roles {
			t.Run(scheme+"/"+r.name, func(t *testing.T) {
				s, err := pair1.New(ferry.SocketConfig{})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				tp := newTpeer(t, scheme, r.ferryListen)
				base := tp.start(t, s)
				ctx := testutil.Ctx(t, 60*time.Second)
				for i, k := range []int{0, 1, 6, 8, 97} { // 1 B .. 1 MiB (payload(97))
					want := payload(k)
					f := filepath.Join(dir, "payload")
					if err := os.WriteFile(f, want, 0o600); err != nil {
						t.Fatal(err)
					}
					p := testutil.StartNNGCat(t, append([]string{"--pair1", "--file", f}, base...)...)
					if i == 0 {
						tp.dial(t, s)
					}
					got, err := s.Recv(ctx)
					if err != nil {
						p.Kill()
						t.Fatalf("message %d: %v (nngcat: %s)", k, err, p.Stderr())
					}
					if !bytes.Equal(got.Body, want) {
						t.Fatalf("message %d: got %d bytes, want %d", k, len(got.Body), len(want))
					}
					got.Free()
					p.Kill()
				}
			})
		}
	}
}

// TestWS5MiB: a 5 MiB message crosses ws and wss to nngcat intact (ferry
// sends it in 64 KiB frames, which NNG reassembles) and one comes back
// from nngcat (in NNG's own frames).
func TestWS5MiB(t *testing.T) {
	testutil.NoLeaks(t)
	big := make([]byte, 5<<20)
	for i := range big {
		big[i] = byte(i*31 + i>>13)
	}
	f := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(f, big, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, scheme := range []string{"ws", "wss"} {
		for _, r := range roles {
			t.Run(scheme+"/"+r.name, func(t *testing.T) {
				s, err := pair1.New(ferry.SocketConfig{RecvMaxSize: 8 << 20})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				tp := newTpeer(t, scheme, r.ferryListen)
				ctx := testutil.Ctx(t, 60*time.Second)
				// nngcat receives (and prints) ours, then sends its own
				// once a second until killed.
				p := testutil.StartNNGCat(t, append([]string{"--pair1", "--msgpack", "--recv-maxsz", "8388608",
					"--file", f, "--interval", "1"}, tp.start(t, s)...)...)
				tp.dial(t, s)
				if err := s.SendBytes(ctx, big); err != nil {
					t.Fatal(err)
				}
				got, err := testutil.ReadMsgpack(p.Stdout)
				if err != nil || !bytes.Equal(got, big) {
					p.Kill()
					t.Fatalf("nngcat got %d bytes (%v), want 5 MiB intact (nngcat: %s)", len(got), err, p.Stderr())
				}
				m, err := s.Recv(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(m.Body, big) {
					t.Fatalf("from nngcat: %d bytes, want 5 MiB intact", len(m.Body))
				}
				m.Free()
			})
		}
	}
}

// TestReqOverWSToNNGRep: REQ/REP over ws, ferry REQ against nngcat
// --rep0: the subprotocols are rep.sp.nanomsg.org offered and echoed.
func TestReqOverWSToNNGRep(t *testing.T) {
	testutil.NoLeaks(t)
	s, err := req.New(ferry.SocketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tp := newTpeer(t, "ws", false)
	testutil.StartNNGCat(t, append([]string{"--rep0", "--data", "pong"}, tp.start(t, s)...)...)
	tp.dial(t, s)
	ctx := testutil.Ctx(t, 30*time.Second)
	for i := range 20 {
		reply, err := s.Request(ctx, []byte("ping"))
		if err != nil || string(reply) != "pong" {
			t.Fatalf("request %d: %q %v", i, reply, err)
		}
	}
}
