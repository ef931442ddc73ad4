// Package tcp is the tcp:// transport: the SP stream protocol over TCP.
// URLs are tcp://host:port (IPv4 or IPv6 in brackets, or a host name);
// tcp4:// and tcp6:// pin the address family. Listening on port 0 picks a
// free port, readable back from the listener's address. The package
// registers itself when imported; ferry imports it, so tcp is always there.
package tcp

import (
	"context"
	"fmt"
	"net"
	"net/url"

	"github.com/ferrymq/ferry/transport"
)

func init() { transport.Register(tcpTransport{}) }

type tcpTransport struct{}

func (tcpTransport) Schemes() []string { return []string{"tcp", "tcp4", "tcp6"} }

// HostPort validates a tcp-style URL and returns its network and address.
// It is shared with transports that layer on TCP (tls+tcp).
func HostPort(u *url.URL, needPort bool) (string, error) {
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
		return "", fmt.Errorf("tcp: %q: only host:port may follow the scheme", u.String())
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return "", fmt.Errorf("tcp: %q: %w", u.String(), err)
	}
	if port == "" || (needPort && port == "0") {
		return "", fmt.Errorf("tcp: %q: a port is required", u.String())
	}
	if host == "*" {
		host = ""
	}
	return net.JoinHostPort(host, port), nil
}

func network(u *url.URL) string {
	switch u.Scheme {
	case "tcp4", "tls+tcp4":
		return "tcp4"
	case "tcp6", "tls+tcp6":
		return "tcp6"
	}
	return "tcp"
}

func (tcpTransport) NewDialer(u *url.URL, o transport.Options) (transport.Dialer, error) {
	addr, err := HostPort(u, true)
	if err != nil {
		return nil, err
	}
	return &dialer{net: network(u), addr: addr, o: o}, nil
}

func (tcpTransport) NewListener(u *url.URL, o transport.Options) (transport.Listener, error) {
	addr, err := HostPort(u, false)
	if err != nil {
		return nil, err
	}
	return &listener{net: network(u), addr: addr, o: o}, nil
}

type dialer struct {
	net, addr string
	o         transport.Options
}

func (d *dialer) Dial(ctx context.Context) (transport.Conn, error) {
	nd := net.Dialer{KeepAlive: d.o.KeepAlive}
	c, err := nd.DialContext(ctx, d.net, d.addr)
	if err != nil {
		return transport.Conn{}, err
	}
	Tune(c, d.o)
	return transport.Conn{Conn: c, Framing: transport.FramingTCP}, nil
}

// Tune applies the TCP options to a fresh connection.
func Tune(c net.Conn, o transport.Options) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(o.NoDelay)
	}
}

type listener struct {
	net, addr string
	o         transport.Options
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

func (l *listener) Accept() (transport.Conn, error) {
	c, err := l.l.Accept()
	if err != nil {
		return transport.Conn{}, err
	}
	Tune(c, l.o)
	return transport.Conn{Conn: c, Framing: transport.FramingTCP}, nil
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
