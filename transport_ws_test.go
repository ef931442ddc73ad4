package ferry_test

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/pair1"
	"github.com/ferrymq/ferry/transport/ws"
)

// wsDial opens a bare WebSocket to u offering subprotocol proto ("" for
// none). It returns the HTTP response when the upgrade was refused.
func wsDial(t testing.TB, e *tenv, u, proto string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	if proto != "" {
		d.Subprotocols = []string{proto}
	}
	if e.pki != nil {
		d.TLSClientConfig = e.pki.ClientTLS()
	}
	c, resp, err := d.Dial(u, nil)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	if resp != nil {
		resp.Body.Close()
	}
	return c, resp, err
}

func rawWS(t testing.TB, e *tenv, u, proto string) *websocket.Conn {
	t.Helper()
	c, _, err := wsDial(t, e, u, proto)
	if err != nil {
		t.Fatalf("ws dial %s: %v", u, err)
	}
	return c
}

// wsFrame builds a masked client frame header (and mask) for opcode op
// announcing n payload bytes.
func wsFrame(op byte, n uint64) []byte {
	b := []byte{0x80 | op, 0x80 | 127}
	b = binary.BigEndian.AppendUint64(b, n)
	return append(b, 0, 0, 0, 0) // a zero mask leaves the payload as is
}

// TestConformWSBadInput: what wire.md requires of a ws listener: HTTP 400
// for a missing or wrong subprotocol and for plain requests, 404 for an
// unknown path, and a pipe closed with its reason for text messages,
// frames over the receive limit (refused from the frame header, nothing
// allocated), truncated messages and bad opcodes. A silent connection is
// dropped after the handshake timeout. The listener goes on serving.
func TestConformWSBadInput(t *testing.T) {
	const limit = 1 << 20
	type env struct {
		e  *tenv
		ls *ferry.Socket
		u  string
	}
	status := func(want int, proto, suffix string) func(t *testing.T, v env) {
		return func(t *testing.T, v env) {
			_, resp, err := wsDial(t, v.e, v.u+suffix, proto)
			if err == nil || resp == nil || resp.StatusCode != want {
				t.Fatalf("upgrade offering %q: err %v, response %v; want HTTP %d", proto, err, resp, want)
			}
		}
	}
	pipeClosed := func(r ferry.Reason, frames ...[]byte) func(t *testing.T, v env) {
		return func(t *testing.T, v env) {
			c := rawWS(t, v.e, v.u, "pair1.sp.nanomsg.org")
			twait(t, 5*time.Second, "raw pipe admitted", func() bool { return v.ls.Stats().PipesOpen == 1 })
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			c.NetConn().Write(bytes.Join(frames, nil))
			if r == ferry.ReasonTruncated {
				c.NetConn().(interface{ CloseWrite() error }).CloseWrite()
			}
			st := twaitReason(t, v.ls, r)
			runtime.ReadMemStats(&after)
			t.Logf("%s: %v", st.Closed[0].Reason, st.Closed[0].Err)
			if d := after.TotalAlloc - before.TotalAlloc; r == ferry.ReasonTooLarge && d >= 512<<10 {
				t.Errorf("a 2^62-byte frame made the process allocate %d bytes", d)
			}
		}
	}
	cases := []struct {
		name string
		run  func(t *testing.T, v env)
	}{
		{"no subprotocol", status(400, "", "")},
		{"wrong subprotocol", status(400, "pair.sp.nanomsg.org", "")},
		{"unknown path", status(404, "pair1.sp.nanomsg.org", "/elsewhere")},
		{"not an upgrade", func(t *testing.T, v env) {
			hu := strings.Replace(v.u, "ws", "http", 1)
			cl := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsOf(v.e)}}
			defer cl.CloseIdleConnections()
			resp, err := cl.Get(hu)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 400 {
				t.Fatalf("plain GET: %s, want 400", resp.Status)
			}
		}},
		{"text message", pipeClosed(ferry.ReasonProtocol, append(wsFrame(websocket.TextMessage, 5), "hello"...))},
		{"frame over the limit", pipeClosed(ferry.ReasonTooLarge, wsFrame(websocket.BinaryMessage, 1<<62))},
		{"fragments over the limit", pipeClosed(ferry.ReasonTooLarge,
			[]byte{0x02, 0x80 | 126, 0xff, 0xff, 0, 0, 0, 0}, make([]byte, 0xffff),
			wsFrame(0, limit))},
		{"truncated message", pipeClosed(ferry.ReasonTruncated, wsFrame(websocket.BinaryMessage, 100), make([]byte, 10))},
		{"bad opcode", pipeClosed(ferry.ReasonProtocol, wsFrame(3, 1), []byte{1})},
		{"silent peer", func(t *testing.T, v env) {
			pu, _ := url.Parse(v.u)
			var c net.Conn
			var err error
			if v.e.pki != nil {
				c, err = tls.Dial("tcp", pu.Host, tlsOf(v.e))
			} else {
				c, err = net.Dial("tcp", pu.Host)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("silent connection not dropped: %v", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("silent connection dropped after %v", d)
			}
		}},
	}
	for _, s := range tspecs {
		if s.scheme != "ws" && s.scheme != "wss" {
			continue
		}
		for _, tc := range cases {
			t.Run(s.scheme+"/"+tc.name, func(t *testing.T) {
				testutil.NoLeaks(t)
				e := newTenv(t, s)
				ls, err := pair1.New(ferry.SocketConfig{RecvMaxSize: limit})
				if err != nil {
					t.Fatal(err)
				}
				defer ls.Close()
				l := e.listen(t, ls, "", ferry.ListenerConfig{ConnConfig: ferry.ConnConfig{HandshakeTimeout: 300 * time.Millisecond}})
				tc.run(t, env{e, ls, l.URL()})
				good, err := pair1.New(ferry.SocketConfig{})
				if err != nil {
					t.Fatal(err)
				}
				defer good.Close()
				e.dial(t, good, l.URL(), ferry.DialerConfig{})
				exchange(t, good, ls, []byte("after"))
			})
		}
	}
}

func tlsOf(e *tenv) *tls.Config {
	if e.pki == nil {
		return nil
	}
	return e.pki.ClientTLS()
}

// TestWSSharedServer: listeners of several sockets share one port on
// different paths, as in NNG; a path taken twice is EADDRINUSE; closing
// one leaves the others serving, and the last one frees the port.
func TestWSSharedServer(t *testing.T) {
	testutil.NoLeaks(t)
	e := newTenv(t, tspec{scheme: "ws"})
	mk := func() *ferry.Socket { return newPair1(t) }
	a, b, c := mk(), mk(), mk()
	la := e.listen(t, a, "ws://127.0.0.1:0/a", ferry.ListenerConfig{})
	host := strings.TrimSuffix(strings.TrimPrefix(la.URL(), "ws://"), "/a")
	lb := e.listen(t, b, "ws://"+host+"/b", ferry.ListenerConfig{})
	if _, err := c.Listen("ws://" + host + "/a"); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("second listener on /a: %v, want EADDRINUSE", err)
	}
	da, db := mk(), mk()
	e.dial(t, da, la.URL(), ferry.DialerConfig{})
	e.dial(t, db, lb.URL(), ferry.DialerConfig{})
	exchange(t, da, a, []byte("to a"))
	exchange(t, db, b, []byte("to b"))
	la.Close()
	exchange(t, db, b, []byte("b lives on"))
	lb.Close()
	twait(t, 5*time.Second, "the port freed", func() bool {
		ln, err := net.Listen("tcp", host)
		if err == nil {
			ln.Close()
		}
		return err == nil
	})
}

// TestWSPortZero: listeners on port 0 each get a port of their own, even
// on different paths; with wss each serves its own certificate (two
// listeners with their own test PKIs once shared the first one's port
// and certificate, and the second's peers failed to verify it).
func TestWSPortZero(t *testing.T) {
	testutil.NoLeaks(t)
	for _, scheme := range []string{"ws", "wss"} {
		t.Run(scheme, func(t *testing.T) {
			seen := map[string]bool{}
			for _, path := range []string{"/a", "/b"} {
				e := newTenv(t, tspec{scheme: scheme, secure: scheme == "wss"})
				ls, ds := newPair1(t), newPair1(t)
				l := e.listen(t, ls, scheme+"://127.0.0.1:0"+path, ferry.ListenerConfig{})
				host := strings.TrimSuffix(strings.TrimPrefix(l.URL(), scheme+"://"), path)
				if seen[host] {
					t.Fatalf("two port-0 listeners on %s", host)
				}
				seen[host] = true
				e.dial(t, ds, l.URL(), ferry.DialerConfig{})
				exchange(t, ds, ls, []byte("to "+path))
			}
		})
	}
}

// newPair1 is a PAIR1 socket closed when the test ends.
func newPair1(t *testing.T) *ferry.Socket {
	s, err := pair1.New(ferry.SocketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestWSHandler: a socket listens through ws.NewHandler on the
// application's own http.Server, next to an ordinary handler; both
// work, and closing the handler leaves the server serving.
func TestWSHandler(t *testing.T) {
	testutil.NoLeaks(t)
	for _, secure := range []bool{false, true} {
		scheme := map[bool]string{false: "ws", true: "wss"}[secure]
		t.Run(scheme, func(t *testing.T) {
			testutil.NoLeaks(t)
			e := newTenv(t, tspec{scheme: scheme, secure: secure})
			srv, err := pair1.New(ferry.SocketConfig{})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			h, err := ws.NewHandler(srv, ferry.ListenerConfig{})
			if err != nil {
				t.Fatal(err)
			}
			mux := http.NewServeMux()
			mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
			mux.Handle("/sp", h)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
			var wg sync.WaitGroup
			wg.Go(func() {
				if secure {
					hs.TLSConfig = e.pki.ServerTLS()
					hs.ServeTLS(ln, "", "")
				} else {
					hs.Serve(ln)
				}
			})
			defer func() { hs.Close(); wg.Wait() }()
			base := "://" + ln.Addr().String()
			cl := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsOf(e)}}
			defer cl.CloseIdleConnections()
			get := func() string {
				resp, err := cl.Get(map[bool]string{false: "http", true: "https"}[secure] + base + "/health")
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return string(b)
			}
			if got := get(); got != "ok" {
				t.Fatalf("/health: %q", got)
			}
			cli, err := pair1.New(ferry.SocketConfig{})
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			e.dial(t, cli, scheme+base+"/sp", ferry.DialerConfig{})
			exchange(t, cli, srv, []byte("through the mux"))
			exchange(t, srv, cli, []byte("and back"))
			if st := srv.Stats(); st.PipesOpen != 1 {
				t.Fatalf("handler pipe not in the socket's stats: %+v", st)
			}
			if got := get(); got != "ok" {
				t.Fatalf("/health with a pipe open: %q", got)
			}
			h.Close()
			twait(t, 5*time.Second, "the handler's pipe closed", func() bool { return srv.Stats().PipesOpen == 0 })
			_, resp, err := wsDial(t, e, scheme+base+"/sp", "pair1.sp.nanomsg.org")
			if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("upgrade after Close: %v %v, want 503", err, resp)
			}
			if got := get(); got != "ok" {
				t.Fatalf("/health after the handler closed: %q", got)
			}
		})
	}
}
