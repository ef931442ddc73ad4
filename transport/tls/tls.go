// Package tls is the tls+tcp:// transport: the SP stream protocol (8-byte
// header, uint64 length prefixes) over TLS over TCP, as NNG's tls+tcp.
// URLs are tls+tcp://host:port; tls+tcp4:// and tls+tcp6:// pin the
// address family. Import it for its side effect:
//
//	import _ "github.com/ferrymq/ferry/transport/tls"
//
// TLS settings come from ConnConfig.TLS. A listener needs a certificate
// (Certificates or GetCertificate); set ClientAuth and ClientCAs to demand
// client certificates. A dialer verifies the server against RootCAs (the
// system pool if nil) and the name in ServerName, which defaults to the
// URL's host; a nil config means exactly that. The config is cloned: later
// changes to it do not reach existing dialers and listeners.
//
// The TLS handshake runs on the pipe's own goroutine, as the first step of
// the SP handshake and under its deadline (ConnConfig.HandshakeTimeout):
// Accept returns at once, so a peer that connects and says nothing holds
// nothing but its own pipe, and only until that deadline. A handshake that
// fails (bad certificate, wrong name, not TLS at all) closes that pipe
// with the reason "bad handshake", counted in the socket's Stats as a
// protocol error; the error names the TLS failure. The listener goes on.
//
// Close does not send TLS close_notify (it could wait on a peer that does
// not read); it closes the TCP connection at once, and Socket.Shutdown's
// half-close is a TCP FIN. SP frames carry their length, so a cut
// connection never passes for a complete message.
package tls

import (
	"context"
	ctls "crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync/atomic"

	"github.com/ferrymq/ferry/transport"
	"github.com/ferrymq/ferry/transport/tcp"
)

func init() { transport.Register(tlsTransport{}) }

type tlsTransport struct{}

func (tlsTransport) Schemes() []string { return []string{"tls+tcp", "tls+tcp4", "tls+tcp6"} }

func network(u *url.URL) string {
	switch u.Scheme {
	case "tls+tcp4":
		return "tcp4"
	case "tls+tcp6":
		return "tcp6"
	}
	return "tcp"
}

// ClientConfig returns the config a dialer to u uses: a clone of c (or a
// fresh one) with ServerName set to u's host if it was empty.
func ClientConfig(c *ctls.Config, host string) *ctls.Config {
	if c == nil {
		c = &ctls.Config{}
	} else {
		c = c.Clone()
	}
	if c.ServerName == "" && !c.InsecureSkipVerify {
		c.ServerName = host
	}
	return c
}

// ServerConfig validates a listener's config and returns a clone of it.
func ServerConfig(scheme string, c *ctls.Config) (*ctls.Config, error) {
	if c == nil || len(c.Certificates) == 0 && c.GetCertificate == nil && c.GetConfigForClient == nil {
		return nil, fmt.Errorf("%s: a listener needs ConnConfig.TLS with a certificate", scheme)
	}
	return c.Clone(), nil
}

func (tlsTransport) NewDialer(u *url.URL, o transport.Options) (transport.Dialer, error) {
	addr, err := tcp.HostPort(u, true)
	if err != nil {
		return nil, err
	}
	return &dialer{net: network(u), addr: addr, o: o, cfg: ClientConfig(o.TLS, u.Hostname())}, nil
}

func (tlsTransport) NewListener(u *url.URL, o transport.Options) (transport.Listener, error) {
	addr, err := tcp.HostPort(u, false)
	if err != nil {
		return nil, err
	}
	cfg, err := ServerConfig(u.Scheme, o.TLS)
	if err != nil {
		return nil, err
	}
	return &listener{net: network(u), addr: addr, o: o, cfg: cfg}, nil
}

type dialer struct {
	net, addr string
	o         transport.Options
	cfg       *ctls.Config // read-only
}

func (d *dialer) Dial(ctx context.Context) (transport.Conn, error) {
	nd := net.Dialer{KeepAlive: d.o.KeepAlive}
	c, err := nd.DialContext(ctx, d.net, d.addr)
	if err != nil {
		return transport.Conn{}, err
	}
	tcp.Tune(c, d.o)
	return transport.Conn{Conn: &Conn{Conn: ctls.Client(c, d.cfg), raw: c}, Framing: transport.FramingTCP}, nil
}

type listener struct {
	net, addr string
	o         transport.Options
	cfg       *ctls.Config // read-only
	l         net.Listener
}

func (l *listener) Listen() error {
	lc := net.ListenConfig{KeepAlive: l.o.KeepAlive}
	ln, err := lc.Listen(context.Background(), l.net, l.addr)
	if err != nil {
		return err
	}
	l.l = ln
	return nil
}

// Accept returns as soon as TCP has connected; the TLS handshake happens
// on the pipe's goroutine (see Conn).
func (l *listener) Accept() (transport.Conn, error) {
	c, err := l.l.Accept()
	if err != nil {
		return transport.Conn{}, err
	}
	tcp.Tune(c, l.o)
	return transport.Conn{Conn: &Conn{Conn: ctls.Server(c, l.cfg), raw: c}, Framing: transport.FramingTCP}, nil
}

func (l *listener) Addr() net.Addr {
	if l.l == nil {
		return nil
	}
	return l.l.Addr()
}

func (l *listener) Close() error {
	if l.l == nil {
		return nil
	}
	return l.l.Close()
}

// Conn is a TLS connection whose handshake is driven by its first Read or
// Write (the SP handshake's), under the deadline the caller set, and whose
// handshake errors wrap transport.ErrHandshake.
type Conn struct {
	*ctls.Conn
	raw    net.Conn    // the TCP connection under Conn
	hsDone atomic.Bool // set once the TLS handshake succeeded
	read1  bool        // reader-owned: a Read has returned data
}

func (c *Conn) handshake() error {
	if c.hsDone.Load() {
		return nil
	}
	if err := c.Conn.Handshake(); err != nil {
		return HandshakeError(c.raw.RemoteAddr(), err)
	}
	c.hsDone.Store(true)
	return nil
}

// HandshakeError wraps a failed TLS handshake with transport.ErrHandshake,
// unless the peer merely went away or the deadline passed.
func HandshakeError(peer net.Addr, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return err
	}
	return fmt.Errorf("%w: tls with %v: %w", transport.ErrHandshake, peer, err)
}

// Read completes the handshake first if needed. In TLS 1.3 a client
// learns that the server refused its certificate only from its first
// read: an alert there is a handshake failure too.
func (c *Conn) Read(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(b)
	if !c.read1 {
		var oe *net.OpError
		if err != nil && errors.As(err, &oe) && oe.Op == "remote error" {
			err = HandshakeError(c.raw.RemoteAddr(), err)
		}
		c.read1 = n > 0
	}
	return n, err
}

// Write completes the handshake first if needed.
func (c *Conn) Write(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// Close closes the TCP connection at once, without close_notify, which
// could wait on a peer that does not read.
func (c *Conn) Close() error { return c.raw.Close() }

// CloseWrite half-closes the TCP connection (a FIN, not close_notify,
// for the same reason as Close: it must not wait). SP frames carry their
// length, so a cut cannot pass for a complete message.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.raw.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
