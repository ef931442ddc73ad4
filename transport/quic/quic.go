// Package quic is the quic:// transport: the SP stream protocol over one
// QUIC stream (github.com/quic-go/quic-go). NNG has no QUIC transport;
// this mapping is ferry's own, documented in docs/transports.md. Import it
// for its side effect:
//
//	import _ "github.com/ferrymq/ferry/transport/quic"
//
// The mapping:
//
//   - One pipe is one QUIC connection carrying one bidirectional stream,
//     opened by the dialer. On it go the standard SP header and the
//     tcp framing (uint64 length prefixes), exactly as on tcp://.
//   - ALPN "sp" (ALPN). The SP header inside the stream names the
//     protocol, as on tcp.
//   - A listener allows its peer one bidirectional stream and no
//     unidirectional ones; a dialer allows none. A peer therefore cannot
//     pile up streams.
//   - Closing a pipe cancels the stream's read side (the peer's pending
//     data is dropped and the peer told to stop sending), closes its send
//     side, then closes the connection with application error 0. Nothing
//     of the pipe survives its close. A peer that closes with code 0 or
//     ends its stream is read as a clean close.
//   - The listener accepts connections after the QUIC handshake (bounded
//     by ConnConfig.HandshakeTimeout); the stream is accepted on the
//     pipe's own goroutine as part of the SP handshake, under the same
//     timeout, so a peer that connects and opens no stream is dropped.
//   - A connection that hears nothing from its peer for
//     ConnConfig.IdleTimeout (default 30 s) closes; keep-alives go out at
//     a third of it, so a live but idle peer is never dropped and a
//     vanished one is noticed within the timeout. A peer that stops
//     reading stalls our writes on flow control until
//     SocketConfig.WriteTimeout closes the pipe.
//
// TLS comes from ConnConfig.TLS, as for tls+tcp: a listener needs a
// certificate; a dialer verifies the server against RootCAs and the URL's
// host unless ServerName is set. QUIC requires TLS 1.3. NextProtos is set
// to ALPN on a clone of the config.
//
// URLs are quic://host:port. Each dialed pipe has its own UDP socket.
package quic

import (
	"context"
	ctls "crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/ferrymq/ferry/transport"
	"github.com/ferrymq/ferry/transport/tcp"
	ftls "github.com/ferrymq/ferry/transport/tls"
)

// ALPN is the TLS application protocol QUIC pipes negotiate.
const ALPN = "sp"

// DefaultIdleTimeout is used when ConnConfig.IdleTimeout is 0.
const DefaultIdleTimeout = 30 * time.Second

func init() { transport.Register(quicTransport{}) }

type quicTransport struct{}

func (quicTransport) Schemes() []string { return []string{"quic"} }

func config(o transport.Options, server bool) *quicgo.Config {
	idle := o.IdleTimeout
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	c := &quicgo.Config{
		HandshakeIdleTimeout:  o.HandshakeTimeout,
		MaxIdleTimeout:        idle,
		KeepAlivePeriod:       idle / 3,
		MaxIncomingStreams:    -1,
		MaxIncomingUniStreams: -1,
	}
	if server {
		c.MaxIncomingStreams = 1
	}
	return c
}

func tlsConfig(c *ctls.Config) *ctls.Config {
	c.NextProtos = []string{ALPN}
	return c
}

// hostPort validates a quic URL (host:port and nothing else).
func hostPort(u *url.URL, needPort bool) (string, error) {
	addr, err := tcp.HostPort(u, needPort)
	if err != nil {
		return "", fmt.Errorf("quic: %w", err)
	}
	return addr, nil
}

func (quicTransport) NewDialer(u *url.URL, o transport.Options) (transport.Dialer, error) {
	addr, err := hostPort(u, true)
	if err != nil {
		return nil, err
	}
	return &dialer{addr: addr, tls: tlsConfig(ftls.ClientConfig(o.TLS, u.Hostname())), cfg: config(o, false)}, nil
}

func (quicTransport) NewListener(u *url.URL, o transport.Options) (transport.Listener, error) {
	addr, err := hostPort(u, false)
	if err != nil {
		return nil, err
	}
	tc, err := ftls.ServerConfig(u.Scheme, o.TLS)
	if err != nil {
		return nil, err
	}
	return &listener{addr: addr, tls: tlsConfig(tc), cfg: config(o, true), conns: make(map[*Conn]struct{})}, nil
}

type dialer struct {
	addr string
	tls  *ctls.Config   // read-only
	cfg  *quicgo.Config // read-only
}

// Dial makes a UDP socket and a QUIC connection for one pipe, and opens
// its stream. The pipe's Conn owns all three.
func (d *dialer) Dial(ctx context.Context) (transport.Conn, error) {
	raddr, err := net.ResolveUDPAddr("udp", d.addr)
	if err != nil {
		return transport.Conn{}, err
	}
	udp, err := net.ListenUDP("udp", nil)
	if err != nil {
		return transport.Conn{}, err
	}
	tr := &quicgo.Transport{Conn: udp}
	if d.cfg.HandshakeIdleTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.cfg.HandshakeIdleTimeout)
		defer cancel()
	}
	qc, err := tr.Dial(ctx, raddr, d.tls, d.cfg)
	if err != nil {
		tr.Close()
		udp.Close()
		return transport.Conn{}, dialErr(d.addr, err)
	}
	st, err := qc.OpenStream()
	if err != nil {
		qc.CloseWithError(0, "")
		tr.Close()
		udp.Close()
		return transport.Conn{}, mapErr(err)
	}
	c := &Conn{qc: qc, tr: tr, udp: udp}
	c.st.Store(st)
	return transport.Conn{Conn: c, Framing: transport.FramingTCP}, nil
}

// dialErr marks TLS failures (certificate, name, ALPN) as handshake
// failures.
func dialErr(addr string, err error) error {
	var te *quicgo.TransportError
	if errors.As(err, &te) && te.ErrorCode.IsCryptoError() {
		return fmt.Errorf("%w: quic with %s: %w", transport.ErrHandshake, addr, err)
	}
	var ce *ctls.CertificateVerificationError
	if errors.As(err, &ce) {
		return fmt.Errorf("%w: quic with %s: %w", transport.ErrHandshake, addr, err)
	}
	return err
}

type listener struct {
	addr string
	tls  *ctls.Config   // read-only
	cfg  *quicgo.Config // read-only

	udp *net.UDPConn      // set by Listen
	tr  *quicgo.Transport // set by Listen
	ln  *quicgo.Listener  // set by Listen
	mu  sync.Mutex        // guards conns, closed
	// conns are the accepted connections still open: Close ends them
	// with CONNECTION_CLOSE so that their peers redial at once instead
	// of waiting out the idle timeout.
	conns  map[*Conn]struct{}
	closed bool
}

func (l *listener) Listen() error {
	laddr, err := net.ResolveUDPAddr("udp", l.addr)
	if err != nil {
		return err
	}
	udp, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return err
	}
	tr := &quicgo.Transport{Conn: udp}
	ln, err := tr.Listen(l.tls, l.cfg)
	if err != nil {
		tr.Close()
		udp.Close()
		return err
	}
	l.udp, l.tr, l.ln = udp, tr, ln
	return nil
}

// Accept returns a connection whose handshake is done; its stream is
// accepted later, on the pipe's goroutine (see Conn).
func (l *listener) Accept() (transport.Conn, error) {
	qc, err := l.ln.Accept(context.Background())
	if err != nil {
		return transport.Conn{}, fmt.Errorf("quic listener: %v: %w", err, net.ErrClosed)
	}
	c := &Conn{qc: qc, l: l}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		qc.CloseWithError(0, "listener closed")
		return transport.Conn{}, fmt.Errorf("quic listener: %w", net.ErrClosed)
	}
	l.conns[c] = struct{}{}
	l.mu.Unlock()
	return transport.Conn{Conn: c, Framing: transport.FramingTCP}, nil
}

func (l *listener) forget(c *Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

func (l *listener) Addr() net.Addr {
	if l.udp == nil {
		return nil
	}
	return l.udp.LocalAddr()
}

// URL is quic://host:port with the bound port.
func (l *listener) URL() string { return "quic://" + l.udp.LocalAddr().String() }

// Close stops accepting, closes the connections it accepted and waits
// for the transport's goroutines.
func (l *listener) Close() error {
	if l.ln == nil {
		return nil
	}
	l.mu.Lock()
	l.closed = true
	conns := make([]*Conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	l.ln.Close()
	l.tr.Close()
	return l.udp.Close()
}

// Conn is one pipe's QUIC connection and its one stream, as a net.Conn.
// On the dialer's side it owns its UDP socket and quic Transport too.
type Conn struct {
	qc *quicgo.Conn
	st atomic.Pointer[quicgo.Stream] // nil until the listener side accepts it

	// Accepting side only: the stream is accepted by the first Read or
	// Write (the SP handshake), under the deadlines set so far. mu guards
	// the accept and those deadlines.
	l      *listener
	mu     sync.Mutex
	rdl    time.Time
	wdl    time.Time
	stErr  error
	closed atomic.Bool

	tr  *quicgo.Transport // dialer side: closed with the conn
	udp *net.UDPConn      // dialer side: closed with the conn
}

// stream returns the pipe's stream, accepting it first on the listener
// side.
func (c *Conn) stream() (*quicgo.Stream, error) {
	if st := c.st.Load(); st != nil {
		return st, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.st.Load(); st != nil {
		return st, nil
	}
	if c.stErr != nil {
		return nil, c.stErr
	}
	ctx := context.Background()
	dl := c.rdl
	if dl.IsZero() || !c.wdl.IsZero() && c.wdl.Before(dl) {
		dl = c.wdl
	}
	if !dl.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl)
		defer cancel()
	}
	st, err := c.qc.AcceptStream(ctx)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("quic: no stream opened: %w", errDeadline)
		}
		c.stErr = mapErr(err)
		return nil, c.stErr
	}
	st.SetReadDeadline(c.rdl)
	st.SetWriteDeadline(c.wdl)
	c.st.Store(st)
	if c.closed.Load() { // Close ran while we accepted: it missed st
		st.CancelRead(0)
		st.Close()
	}
	return st, nil
}

// errDeadline is an accept that outlived the handshake deadline; it
// matches os.ErrDeadlineExceeded, as a stream's own deadline errors do.
var errDeadline error = deadlineErr{}

type deadlineErr struct{}

func (deadlineErr) Error() string   { return "deadline exceeded" }
func (deadlineErr) Timeout() bool   { return true }
func (deadlineErr) Temporary() bool { return true }
func (deadlineErr) Unwrap() error   { return os.ErrDeadlineExceeded }

// mapErr turns quic-go's close errors into what the socket reads as a
// peer's close: the peer closing its connection with code 0, or ending
// or resetting its stream, is io.EOF. (quic-go's errors otherwise match
// net.ErrClosed, which the socket keeps for its own closes.)
func mapErr(err error) error {
	var ae *quicgo.ApplicationError
	if errors.As(err, &ae) && ae.Remote {
		return fmt.Errorf("quic: peer closed the connection (%v): %w", ae, io.EOF)
	}
	var se *quicgo.StreamError
	if errors.As(err, &se) && se.Remote {
		return fmt.Errorf("quic: peer reset the stream (%v): %w", se, io.EOF)
	}
	var it *quicgo.IdleTimeoutError
	if errors.As(err, &it) {
		return fmt.Errorf("quic: peer silent for the idle timeout (%v)", it.Error())
	}
	var te *quicgo.TransportError
	if errors.As(err, &te) && te.Remote {
		return fmt.Errorf("quic: peer closed the connection with an error (%v): %w", te.Error(), io.EOF)
	}
	return err
}

func (c *Conn) Read(b []byte) (int, error) {
	st, err := c.stream()
	if err != nil {
		return 0, err
	}
	n, err := st.Read(b)
	if err != nil && err != io.EOF {
		err = mapErr(err)
	}
	return n, err
}

func (c *Conn) Write(b []byte) (int, error) {
	st, err := c.stream()
	if err != nil {
		return 0, err
	}
	n, err := st.Write(b)
	if err != nil {
		err = mapErr(err)
	}
	return n, err
}

// Close releases both directions of the stream (CancelRead, then Close
// of the send side), then the connection, then (dialer side) the UDP
// socket. It is idempotent and returns once quic-go has let go.
func (c *Conn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	if st := c.st.Load(); st != nil {
		st.CancelRead(0)
		st.Close()
	}
	c.qc.CloseWithError(0, "")
	if c.l != nil {
		c.l.forget(c)
	}
	if c.tr != nil {
		c.tr.Close()
		c.udp.Close()
	}
	return nil
}

// CloseWrite ends the send side of the stream (FIN after what is queued).
func (c *Conn) CloseWrite() error {
	if st := c.st.Load(); st != nil {
		return st.Close()
	}
	return nil
}

func (c *Conn) LocalAddr() net.Addr  { return c.qc.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr { return c.qc.RemoteAddr() }

func (c *Conn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func (c *Conn) SetReadDeadline(t time.Time) error {
	if st := c.st.Load(); st != nil {
		return st.SetReadDeadline(t)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.st.Load(); st != nil {
		return st.SetReadDeadline(t)
	}
	c.rdl = t
	return nil
}

func (c *Conn) SetWriteDeadline(t time.Time) error {
	if st := c.st.Load(); st != nil {
		return st.SetWriteDeadline(t)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.st.Load(); st != nil {
		return st.SetWriteDeadline(t)
	}
	c.wdl = t
	return nil
}
