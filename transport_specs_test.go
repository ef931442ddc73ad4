package ferry_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/pair1"
	"github.com/ferrymq/ferry/transport"
	_ "github.com/ferrymq/ferry/transport/quic"
	_ "github.com/ferrymq/ferry/transport/tls"
	_ "github.com/ferrymq/ferry/transport/ws"
)

// tspec describes one transport for the conformance suite, the churn
// tests and the benchmarks.
type tspec struct {
	scheme string
	// stream: the SP header and length-prefixed frames travel on a byte
	// stream that rawConn can reach (every transport but inproc and ws).
	stream bool
	secure bool // needs TLS configs
}

var tspecs = []tspec{
	{scheme: "inproc"},
	{scheme: "ipc", stream: true},
	{scheme: "tcp", stream: true},
	{scheme: "tls+tcp", stream: true, secure: true},
	{scheme: "ws"},
	{scheme: "wss", secure: true},
	{scheme: "quic", stream: true, secure: true},
}

// tenv is one test's view of a transport: its certificates and configs.
type tenv struct {
	tspec
	pki *testutil.PKI // nil unless secure
}

func newTenv(t testing.TB, s tspec) *tenv {
	e := &tenv{tspec: s}
	if s.secure {
		e.pki = testutil.NewPKI(t)
	}
	return e
}

// addr is a fresh listening address.
func (e *tenv) addr(t testing.TB) string {
	switch e.scheme {
	case "inproc", "ipc", "tcp":
		return testutil.Addr(t, e.scheme)
	case "ws", "wss":
		return e.scheme + "://127.0.0.1:0/" + url.PathEscape(t.Name())
	}
	return e.scheme + "://127.0.0.1:0"
}

func (e *tenv) conn(c ferry.ConnConfig, server bool) ferry.ConnConfig {
	if e.pki != nil && c.TLS == nil {
		if server {
			c.TLS = e.pki.ServerTLS()
		} else {
			c.TLS = e.pki.ClientTLS()
		}
	}
	return c
}

func (e *tenv) lcfg(c ferry.ListenerConfig) ferry.ListenerConfig {
	c.ConnConfig = e.conn(c.ConnConfig, true)
	return c
}

func (e *tenv) dcfg(c ferry.DialerConfig) ferry.DialerConfig {
	c.ConnConfig = e.conn(c.ConnConfig, false)
	return c
}

// listen starts a listener of s on addr (a fresh one if "").
func (e *tenv) listen(t testing.TB, s *ferry.Socket, addr string, c ferry.ListenerConfig) *ferry.Listener {
	t.Helper()
	if addr == "" {
		addr = e.addr(t)
	}
	l, err := s.NewListener(addr, e.lcfg(c))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	return l
}

// dial starts a dialer of s to u and waits for its first pipe.
func (e *tenv) dial(t testing.TB, s *ferry.Socket, u string, c ferry.DialerConfig) *ferry.Dialer {
	t.Helper()
	d, err := s.NewDialer(u, e.dcfg(c))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(testutil.Ctx(t, 10*time.Second)); err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	return d
}

// pair returns a listening and a dialing PAIR1 socket joined over e.
func (e *tenv) pair(t testing.TB, lc, dc ferry.SocketConfig) (ls, ds *ferry.Socket, l *ferry.Listener) {
	t.Helper()
	ls, err := pair1.New(lc)
	if err != nil {
		t.Fatal(err)
	}
	ds, err = pair1.New(dc)
	if err != nil {
		ls.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close(); ls.Close() })
	l = e.listen(t, ls, "", ferry.ListenerConfig{})
	e.dial(t, ds, l.URL(), ferry.DialerConfig{ReconnectMin: 5 * time.Millisecond, ReconnectMax: 50 * time.Millisecond})
	return ls, ds, l
}

// rawConn opens a bare connection to a stream transport's listener with
// the transport package itself (TLS and QUIC included), before any SP
// byte: tests write the SP header and frames by hand.
func (e *tenv) rawConn(t testing.TB, u string) net.Conn {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := transport.Lookup(pu.Scheme)
	if err != nil {
		t.Fatal(err)
	}
	o := transport.Options{NoDelay: true, KeepAlive: -1, HandshakeTimeout: 5 * time.Second, SelfName: "pair1", PeerName: "pair1"}
	if e.pki != nil {
		o.TLS = e.pki.ClientTLS()
	}
	d, err := tr.NewDialer(pu, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := d.Dial(ctx)
	if err != nil {
		t.Fatalf("raw dial %s: %v", u, err)
	}
	if c.Conn == nil {
		t.Fatalf("raw dial %s: not a stream transport", u)
	}
	t.Cleanup(func() { c.Conn.Close() })
	return c.Conn
}

// waitFor polls cond every millisecond or so until it holds, failing
// after d.
func twait(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitReason waits until s has closed a pipe for reason r.
func twaitReason(t testing.TB, s *ferry.Socket, r ferry.Reason) ferry.Stats {
	t.Helper()
	var st ferry.Stats
	twait(t, 10*time.Second, fmt.Sprintf("a pipe closed with %q", r), func() bool {
		st = s.Stats()
		return st.CloseReasons[r] > 0
	})
	return st
}
