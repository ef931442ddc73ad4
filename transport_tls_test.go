package ferry_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/pair1"
	"github.com/ferrymq/ferry/transport"
	"github.com/ferrymq/ferry/transport/quic"
)

// TestTLSAuth: certificates on every secure transport: mutual
// authentication works; a client without a certificate, an untrusted
// server, a wrong server name and (tls+tcp) a plain peer on a TLS port
// all fail with a clear error. On tls+tcp, whose TLS handshake runs in
// the pipe, the listener counts each as a bad handshake; the listener
// serves the next good peer either way.
func TestTLSAuth(t *testing.T) {
	cases := []struct {
		name     string
		listen   func(p *testutil.PKI) *tls.Config
		dial     func(p, other *testutil.PKI) *tls.Config
		plain    bool // dial with tcp:// instead (tls+tcp only)
		ok       bool
		errIsHS  bool // the dial error matches transport.ErrHandshake
		listenHS bool // tls+tcp: the listener counts a bad handshake
	}{
		{name: "mutual", listen: (*testutil.PKI).MutualTLS, dial: func(p, _ *testutil.PKI) *tls.Config { return p.ClientTLS() }, ok: true},
		{name: "no client certificate", listen: (*testutil.PKI).MutualTLS,
			dial:     func(p, _ *testutil.PKI) *tls.Config { return &tls.Config{RootCAs: p.Pool} },
			listenHS: true},
		{name: "untrusted server", listen: (*testutil.PKI).ServerTLS,
			dial:    func(_, o *testutil.PKI) *tls.Config { return o.ClientTLS() },
			errIsHS: true, listenHS: true},
		{name: "wrong server name", listen: (*testutil.PKI).ServerTLS,
			dial: func(p, _ *testutil.PKI) *tls.Config {
				c := p.ClientTLS()
				c.ServerName = "other.example"
				return c
			},
			errIsHS: true, listenHS: true},
		{name: "plain peer", listen: (*testutil.PKI).ServerTLS, plain: true, listenHS: true},
	}
	for _, scheme := range []string{"tls+tcp", "wss", "quic"} {
		for _, tc := range cases {
			if tc.plain && scheme != "tls+tcp" {
				continue
			}
			t.Run(scheme+"/"+tc.name, func(t *testing.T) {
				testutil.NoLeaks(t)
				e := newTenv(t, tspec{scheme: scheme, secure: true})
				other := testutil.NewPKI(t)
				ls, err := pair1.New(ferry.SocketConfig{})
				if err != nil {
					t.Fatal(err)
				}
				defer ls.Close()
				l := e.listen(t, ls, "", ferry.ListenerConfig{ConnConfig: ferry.ConnConfig{TLS: tc.listen(e.pki)}})
				ds, err := pair1.New(ferry.SocketConfig{})
				if err != nil {
					t.Fatal(err)
				}
				defer ds.Close()
				u := l.URL()
				var dc ferry.DialerConfig
				if tc.plain {
					u = strings.Replace(u, "tls+tcp", "tcp", 1)
				} else {
					dc.TLS = tc.dial(e.pki, other)
				}
				d, err := ds.NewDialer(u, dc)
				if err != nil {
					t.Fatal(err)
				}
				err = d.Start(testutil.Ctx(t, 10*time.Second))
				if tc.ok {
					if err != nil {
						t.Fatal(err)
					}
					exchange(t, ds, ls, []byte("authenticated"))
					return
				}
				if err == nil {
					// TLS 1.3 tells a client its certificate was refused
					// only after its side of the handshake: the pipe may
					// open and close at once.
					twait(t, 5*time.Second, "the refused pipe closed", func() bool { return ds.Stats().PipesClosed > 0 })
				} else {
					t.Logf("dial error: %v", err)
					if tc.errIsHS && !errors.Is(err, transport.ErrHandshake) {
						t.Errorf("dial error does not match transport.ErrHandshake: %v", err)
					}
				}
				if tc.listenHS && scheme == "tls+tcp" {
					st := twaitReason(t, ls, ferry.ReasonHandshake)
					t.Logf("listener: %s: %v", st.Closed[0].Reason, st.Closed[0].Err)
					if st.ProtocolErrors == 0 {
						t.Errorf("bad TLS handshake not counted as a protocol error")
					}
				}
				d.Close()
				good, err := pair1.New(ferry.SocketConfig{})
				if err != nil {
					t.Fatal(err)
				}
				defer good.Close()
				e.dial(t, good, l.URL(), ferry.DialerConfig{ConnConfig: ferry.ConnConfig{TLS: e.pki.ClientTLS()}})
				exchange(t, good, ls, []byte("after"))
			})
		}
	}
}

// TestTLSPeerOnPlainPort: a tls+tcp dialer reaching a plain tcp listener
// fails its handshake; the tcp listener sees a bad SP header.
func TestTLSPeerOnPlainPort(t *testing.T) {
	testutil.NoLeaks(t)
	ls, err := pair1.New(ferry.SocketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	l, err := ls.Listen("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := pair1.New(ferry.SocketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	pki := testutil.NewPKI(t)
	d, err := ds.NewDialer(strings.Replace(l.URL(), "tcp", "tls+tcp", 1), ferry.DialerConfig{ConnConfig: ferry.ConnConfig{TLS: pki.ClientTLS(), HandshakeTimeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(testutil.Ctx(t, 5*time.Second)); err == nil {
		t.Fatal("tls dialer connected to a plain listener")
	} else {
		t.Logf("dial error: %v", err)
	}
	twaitReason(t, ls, ferry.ReasonHandshake)
}

// rawQUICVanisher opens a QUIC connection and stream to u by hand, does
// the SP handshake, and returns a func that makes the peer vanish: its
// UDP socket goes away without a CONNECTION_CLOSE.
func rawQUICVanisher(t testing.TB, e *tenv, u string) func() {
	t.Helper()
	pu, _ := url.Parse(u)
	raddr, err := net.ResolveUDPAddr("udp", pu.Host)
	if err != nil {
		t.Fatal(err)
	}
	udp, err := net.ListenUDP("udp", nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &quicgo.Transport{Conn: udp}
	gone := false
	vanish := func() {
		if !gone {
			gone = true
			tr.Close() // no CONNECTION_CLOSE: the peer just stops answering
			udp.Close()
		}
	}
	t.Cleanup(vanish)
	tc := e.pki.ClientTLS()
	tc.NextProtos = []string{quic.ALPN}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	qc, err := tr.Dial(ctx, raddr, tc, &quicgo.Config{MaxIdleTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	st, err := qc.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	st.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := st.Write(pair1Header); err != nil {
		t.Fatal(err)
	}
	var h [8]byte
	if _, err := io.ReadFull(st, h[:]); err != nil {
		t.Fatal(err)
	}
	return vanish
}
