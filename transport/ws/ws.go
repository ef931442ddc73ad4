// Package ws is the ws:// and wss:// transport: SP over WebSocket, as NNG
// maps it. Import it for its side effect:
//
//	import _ "github.com/ferrymq/ferry/transport/ws"
//
// The mapping (wire-compatible with NNG):
//
//   - No SP header and no length prefix: one SP message (protocol header
//     and body) is one binary WebSocket message. Continuation frames are
//     accepted; text messages close the pipe as a protocol error.
//   - Subprotocol "<name>.sp.nanomsg.org": a dialer offers its peer's
//     name (a REQ dialer offers rep.sp.nanomsg.org) and requires the
//     server to echo it; a listener requires its own name and answers
//     anything else with HTTP 400. The protocols are thereby matched
//     before the pipe exists, so nothing else is exchanged.
//   - Messages are sent in frames of at most 64 KiB (NNG's listener does
//     the same; NNG peers refuse frames over 1 MiB by default).
//   - The receive limit (SocketConfig.RecvMaxSize) is enforced from frame
//     headers: a frame that would take the message past it closes the
//     pipe ("message too large") before its payload is read.
//
// URLs are ws://host:port/path and wss://host:port/path; the path
// defaults to "/". Listeners in one process that name the same host:port
// (spelt the same way) share one HTTP server and are told apart by path,
// as in NNG; a second listener on the same path fails with
// EADDRINUSE. The first listener's TLS and handshake settings serve the
// port. Port 0 picks a free port; Listener.URL reports it with the path.
//
// To serve SP next to other handlers on your own http.Server, use
// NewHandler instead of a ws:// URL: it returns an http.Handler to mount
// on any path.
//
// wss takes ConnConfig.TLS as tls+tcp does (a listener needs a
// certificate; a dialer checks the server against RootCAs and the URL's
// host unless ServerName is set).
//
// Timeouts: the upgrade is bounded by ConnConfig.HandshakeTimeout (the
// dialer's whole handshake; on a listener, reading the request headers
// and writing the response). Close closes the TCP connection at once, with
// no close frame; Socket.Shutdown sends a close frame (status 1000) first.
package ws

import (
	"context"
	ctls "crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/ferrymq/ferry/internal/wire"
	"github.com/ferrymq/ferry/transport"
	"github.com/ferrymq/ferry/transport/tcp"
	ftls "github.com/ferrymq/ferry/transport/tls"
)

func init() { transport.Register(wsTransport{}) }

// Subprotocol is the WebSocket subprotocol NNG uses for an SP protocol
// name ("pair1" -> "pair1.sp.nanomsg.org").
func Subprotocol(name string) string { return name + ".sp.nanomsg.org" }

// FrameSize is the largest frame payload sent (larger messages are
// fragmented).
const FrameSize = 64 << 10

// writeBufs lends gorilla a FrameSize buffer only while it writes a
// message, so idle connections hold none.
var writeBufs websocket.BufferPool = new(sync.Pool)

type wsTransport struct{}

func (wsTransport) Schemes() []string { return []string{"ws", "wss", schemeHandler} }

// target validates a ws URL and returns its host:port and path.
func target(u *url.URL, needPort bool) (hostport, path string, err error) {
	if u.User != nil || u.Fragment != "" {
		return "", "", fmt.Errorf("%s: %q: only host:port and a path may follow the scheme", u.Scheme, u.String())
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return "", "", fmt.Errorf("%s: %q: %w", u.Scheme, u.String(), err)
	}
	if port == "" || needPort && port == "0" {
		return "", "", fmt.Errorf("%s: %q: a port is required", u.Scheme, u.String())
	}
	if host == "*" {
		host = ""
	}
	path = u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return net.JoinHostPort(host, port), path, nil
}

func (wsTransport) NewDialer(u *url.URL, o transport.Options) (transport.Dialer, error) {
	if u.Scheme == schemeHandler {
		return nil, fmt.Errorf("%s: cannot dial a handler", u.Scheme)
	}
	if _, _, err := target(u, true); err != nil {
		return nil, err
	}
	if o.PeerName == "" {
		return nil, fmt.Errorf("%s: the socket's protocol has no peer name", u.Scheme)
	}
	d := &dialer{url: u.String(), proto: Subprotocol(o.PeerName), hs: o.HandshakeTimeout}
	nd := &net.Dialer{KeepAlive: o.KeepAlive}
	d.d = websocket.Dialer{
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := nd.DialContext(ctx, network, addr)
			if err == nil {
				tcp.Tune(c, o)
			}
			return c, err
		},
		HandshakeTimeout: o.HandshakeTimeout,
		Subprotocols:     []string{d.proto},
		WriteBufferSize:  FrameSize,
		WriteBufferPool:  writeBufs,
	}
	if u.Scheme == "wss" {
		d.d.TLSClientConfig = ftls.ClientConfig(o.TLS, u.Hostname())
	}
	return d, nil
}

type dialer struct {
	url   string
	proto string
	hs    time.Duration
	d     websocket.Dialer // read-only after NewDialer
}

func (d *dialer) Dial(ctx context.Context) (transport.Conn, error) {
	if d.hs > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.hs)
		defer cancel()
	}
	c, resp, err := d.d.DialContext(ctx, d.url, nil)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
			return transport.Conn{}, fmt.Errorf("%w: %s: server answered %q to an upgrade offering %s", transport.ErrHandshake, d.url, resp.Status, d.proto)
		}
		var ce *ctls.CertificateVerificationError
		var ae ctls.AlertError
		var rh ctls.RecordHeaderError
		if errors.As(err, &ce) || errors.As(err, &ae) || errors.As(err, &rh) {
			err = fmt.Errorf("%w: %s: %w", transport.ErrHandshake, d.url, err)
		}
		return transport.Conn{}, err
	}
	if got := c.Subprotocol(); got != d.proto {
		c.Close()
		return transport.Conn{}, fmt.Errorf("%w: %s: server chose subprotocol %q, want %q", transport.ErrHandshake, d.url, got, d.proto)
	}
	c.SetReadLimit(0) // set per message by NextReader
	return transport.Conn{Msgs: newConn(c)}, nil
}

// conn adapts a gorilla connection to transport.MsgConn.
type conn struct {
	ws *websocket.Conn
	rd msgReader // reader-owned; reused for every message
}

func newConn(c *websocket.Conn) *conn {
	k := &conn{ws: c}
	k.rd.c = k
	return k
}

func (c *conn) NextReader(limit int) (io.Reader, error) {
	c.ws.SetReadLimit(int64(limit))
	typ, r, err := c.ws.NextReader()
	if err != nil {
		return nil, c.readErr(err, limit, true)
	}
	if typ != websocket.BinaryMessage {
		return nil, fmt.Errorf("%w: ws: text message (SP messages are binary)", transport.ErrProtocol)
	}
	c.rd.r, c.rd.limit = r, limit
	return &c.rd, nil
}

// msgReader maps gorilla's errors inside a message to the ones the socket
// knows.
type msgReader struct {
	c     *conn
	r     io.Reader
	limit int
}

func (r *msgReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if err != nil && err != io.EOF {
		err = r.c.readErr(err, r.limit, false)
	}
	return n, err
}

// readErr translates a gorilla read error. atStart says whether no byte of
// a message had been read, so a closed connection is a clean end.
func (c *conn) readErr(err error, limit int, atStart bool) error {
	if errors.Is(err, websocket.ErrReadLimit) {
		return fmt.Errorf("ws: message over the %d-byte receive limit: %w", limit, wire.ErrTooLarge)
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		if !atStart {
			return fmt.Errorf("ws: connection closed inside a message (%v): %w", ce, io.ErrUnexpectedEOF)
		}
		return fmt.Errorf("ws: peer closed (%v): %w", ce, io.EOF)
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return err
	}
	if strings.HasPrefix(err.Error(), "websocket: ") { // gorilla's frame checks
		return fmt.Errorf("%w: %w", transport.ErrProtocol, err)
	}
	return err
}

// WriteMsg writes hdr+body as one binary message in frames of at most
// FrameSize bytes. gorilla frames on its write buffer (FrameSize) and,
// on a server, writes a chunk over twice that as one frame of its own:
// chunks of FrameSize keep every frame within FrameSize.
func (c *conn) WriteMsg(hdr, body []byte) error {
	w, err := c.ws.NextWriter(websocket.BinaryMessage)
	if err != nil {
		return writeErr(err)
	}
	if len(hdr) > 0 {
		if _, err := w.Write(hdr); err != nil {
			return writeErr(err)
		}
	}
	for len(body) > 0 {
		n := min(len(body), FrameSize)
		if _, err := w.Write(body[:n]); err != nil {
			return writeErr(err)
		}
		body = body[n:]
	}
	return writeErr(w.Close())
}

// writeErr restores what gorilla hides: its timeouts no longer match
// os.ErrDeadlineExceeded, which is how the socket knows a write timed out.
func writeErr(err error) error {
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() && !errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("ws: %w (%v)", os.ErrDeadlineExceeded, err)
	}
	return err
}

func (c *conn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }

// closeFrameWait bounds the close frame CloseWrite sends: it runs under the
// socket's lock in Shutdown and must not wait on a peer that does not read.
const closeFrameWait = 10 * time.Millisecond

func (c *conn) CloseWrite() error {
	return c.ws.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(closeFrameWait))
}

// Close closes the TCP connection at once: for wss, the one under TLS,
// since tls.Conn.Close sends close_notify and can wait seconds on a peer
// that does not read.
func (c *conn) Close() error { return rawConn(c.ws.NetConn()).Close() }

func rawConn(nc net.Conn) net.Conn {
	if tc, ok := nc.(*ctls.Conn); ok {
		return tc.NetConn()
	}
	return nc
}

func (c *conn) LocalAddr() net.Addr  { return c.ws.LocalAddr() }
func (c *conn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

// listener takes upgraded connections from an HTTP server: its own shared
// one (ws://, wss://) or the user's (NewHandler).
type listener struct {
	scheme   string
	hostport string // as given; the shared server's key
	path     string
	proto    string // the subprotocol required
	o        transport.Options
	up       websocket.Upgrader

	conns     chan *websocket.Conn // unbuffered: ServeHTTP hands over, Accept takes
	closed    chan struct{}
	closeOnce sync.Once
	srv       *server // own mode: set by Listen; nil for a handler
	mounted   bool    // made by NewHandler: the user's server feeds it
}

func newListener(scheme, hostport, path string, o transport.Options) (*listener, error) {
	if o.SelfName == "" {
		return nil, fmt.Errorf("%s: the socket's protocol has no name", scheme)
	}
	l := &listener{
		scheme: scheme, hostport: hostport, path: path, o: o,
		proto:  Subprotocol(o.SelfName),
		conns:  make(chan *websocket.Conn),
		closed: make(chan struct{}),
	}
	l.up = websocket.Upgrader{
		HandshakeTimeout: o.HandshakeTimeout,
		Subprotocols:     []string{l.proto},
		WriteBufferSize:  FrameSize,
		WriteBufferPool:  writeBufs,
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			http.Error(w, reason.Error(), status)
		},
	}
	return l, nil
}

func (wsTransport) NewListener(u *url.URL, o transport.Options) (transport.Listener, error) {
	if u.Scheme == schemeHandler {
		return takeMount(u, o)
	}
	hostport, path, err := target(u, false)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "wss" {
		if o.TLS, err = ftls.ServerConfig(u.Scheme, o.TLS); err != nil {
			return nil, err
		}
	}
	return newListener(u.Scheme, hostport, path, o)
}

// ServeHTTP upgrades a request that offers the listener's subprotocol and
// hands the connection to Accept. Anything else gets HTTP 400.
func (l *listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		http.Error(w, "ferry: this path serves SP over WebSocket only", http.StatusBadRequest)
		return
	}
	offered := false
	for _, p := range websocket.Subprotocols(r) {
		offered = offered || p == l.proto
	}
	if !offered {
		http.Error(w, "ferry: subprotocol "+l.proto+" required", http.StatusBadRequest)
		return
	}
	select {
	case <-l.closed:
		http.Error(w, "ferry: listener closed", http.StatusServiceUnavailable)
		return
	default:
	}
	c, err := l.up.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade answered the client
	}
	c.NetConn().SetDeadline(time.Time{}) // the server's read deadlines end with the upgrade
	select {
	case l.conns <- c:
	case <-l.closed:
		rawConn(c.NetConn()).Close()
	}
}

func (l *listener) Listen() error {
	if l.mounted {
		return nil
	}
	if l.srv != nil {
		return errors.New("ws: listener already bound")
	}
	s, err := acquire(l)
	if err != nil {
		return err
	}
	l.srv = s
	return nil
}

func (l *listener) Accept() (transport.Conn, error) {
	select {
	case c := <-l.conns:
		c.SetReadLimit(0)
		return transport.Conn{Msgs: newConn(c)}, nil
	case <-l.closed:
		return transport.Conn{}, fmt.Errorf("%s listener: %w", l.scheme, net.ErrClosed)
	}
}

func (l *listener) Addr() net.Addr {
	if l.srv == nil {
		return nil
	}
	return l.srv.ln.Addr()
}

// URL is the listening URL with the bound port and the path.
func (l *listener) URL() string {
	if l.srv == nil {
		return ""
	}
	return l.scheme + "://" + l.srv.ln.Addr().String() + l.path
}

// Close stops accepting; the shared server closes with its last listener.
// It returns once that server's goroutines have exited.
func (l *listener) Close() error {
	l.closeOnce.Do(func() {
		close(l.closed)
		if l.srv != nil {
			l.srv.release(l)
		}
	})
	return nil
}

// server is an HTTP server shared by the listeners of one host:port.
type server struct {
	key    string
	ln     net.Listener
	hs     *http.Server
	served chan struct{} // closed when hs.Serve has returned

	mu       sync.Mutex // guards paths, closing and inflight.Add
	paths    map[string]*listener
	closing  bool
	inflight sync.WaitGroup // ServeHTTP calls in progress
}

var servers = struct {
	sync.Mutex
	m map[string]*server // by scheme and host:port as given, and as bound
}{m: make(map[string]*server)}

// acquire registers l with the server for its host:port, starting one if
// none runs.
func acquire(l *listener) (*server, error) {
	servers.Lock()
	defer servers.Unlock()
	key := l.scheme + "://" + l.hostport
	// Port 0 asks for a port of its own: such a listener never joins
	// another's server (two of them would otherwise share the first's
	// port and TLS config); later listeners may join it by its real port.
	_, port, _ := net.SplitHostPort(l.hostport)
	anyPort := port == "0"
	var s *server
	if !anyPort {
		s = servers.m[key]
	}
	if s == nil {
		ln, err := net.Listen("tcp", l.hostport)
		if err != nil {
			return nil, err
		}
		if l.scheme == "wss" {
			ln = ctls.NewListener(ln, l.o.TLS)
		}
		s = &server{key: key, ln: ln, served: make(chan struct{}), paths: make(map[string]*listener)}
		hto := l.o.HandshakeTimeout
		if hto <= 0 {
			hto = 10 * time.Second
		}
		s.hs = &http.Server{
			Handler:           s,
			ReadHeaderTimeout: hto,
			IdleTimeout:       hto,
			ErrorLog:          log.New(io.Discard, "", 0),
			TLSNextProto:      map[string]func(*http.Server, *ctls.Conn, http.Handler){}, // no HTTP/2
		}
		go func() { // owned by s: release waits for it
			defer close(s.served)
			s.hs.Serve(ln)
		}()
		if !anyPort {
			servers.m[key] = s
		}
		if bound := l.scheme + "://" + ln.Addr().String(); bound != key {
			servers.m[bound] = s // port 0: later listeners name the real port
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.paths[l.path]; dup {
		return nil, fmt.Errorf("%s://%s%s: %w", l.scheme, l.hostport, l.path, syscall.EADDRINUSE)
	}
	s.paths[l.path] = l
	return s, nil
}

// release unregisters l; the last listener out stops the server and
// waits for its goroutines.
func (s *server) release(l *listener) {
	servers.Lock()
	s.mu.Lock()
	delete(s.paths, l.path)
	last := len(s.paths) == 0
	if last {
		s.closing = true
		for k, v := range servers.m {
			if v == s {
				delete(servers.m, k)
			}
		}
	}
	s.mu.Unlock()
	servers.Unlock()
	if !last {
		return
	}
	s.hs.Close()
	<-s.served
	s.inflight.Wait()
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	l := s.paths[r.URL.EscapedPath()]
	if l == nil && r.URL.Path == "" {
		l = s.paths["/"]
	}
	if s.closing || l == nil {
		s.mu.Unlock()
		http.NotFound(w, r)
		return
	}
	s.inflight.Add(1)
	s.mu.Unlock()
	defer s.inflight.Done()
	l.ServeHTTP(w, r)
}
