// Package ipc is the ipc:// transport: the SP stream protocol over a Unix
// domain stream socket, each frame led by the byte 0x01. The URL is
// ipc:///absolute/path or ipc://relative/path (the part after "ipc://" is
// the socket path, as in NNG). A listener removes a stale socket file left
// by a dead process before binding, and removes its own file on Close. The
// package registers itself when imported; ferry imports it.
package ipc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/ferrymq/ferry/transport"
)

func init() { transport.Register(ipcTransport{}) }

type ipcTransport struct{}

func (ipcTransport) Schemes() []string { return []string{"ipc", "unix"} }

func path(u *url.URL) (string, error) {
	// ipc://foo parses with Host "foo"; ipc:///tmp/x with Path "/tmp/x".
	p := u.Host + u.Path
	if u.Opaque != "" {
		p = u.Opaque
	}
	if p == "" {
		return "", fmt.Errorf("ipc: %q: a socket path is required", u.String())
	}
	if len(p) > 107 {
		return "", fmt.Errorf("ipc: %q: path longer than 107 bytes", u.String())
	}
	return p, nil
}

func (ipcTransport) NewDialer(u *url.URL, o transport.Options) (transport.Dialer, error) {
	p, err := path(u)
	if err != nil {
		return nil, err
	}
	return dialer(p), nil
}

func (ipcTransport) NewListener(u *url.URL, o transport.Options) (transport.Listener, error) {
	p, err := path(u)
	if err != nil {
		return nil, err
	}
	return &listener{path: p}, nil
}

type dialer string

func (d dialer) Dial(ctx context.Context) (transport.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "unix", string(d))
	if err != nil {
		return transport.Conn{}, err
	}
	return transport.Conn{Conn: c, Framing: transport.FramingIPC}, nil
}

type listener struct {
	path string
	l    *net.UnixListener
}

func (l *listener) Listen() error {
	addr := &net.UnixAddr{Name: l.path, Net: "unix"}
	ln, err := net.ListenUnix("unix", addr)
	if errors.Is(err, syscall.EADDRINUSE) && stale(l.path) {
		_ = os.Remove(l.path)
		ln, err = net.ListenUnix("unix", addr)
	}
	if err != nil {
		return err
	}
	ln.SetUnlinkOnClose(true)
	l.l = ln
	return nil
}

// stale reports whether path is a socket nobody listens on.
func stale(path string) bool {
	if strings.HasPrefix(path, "@") {
		return false // abstract socket: no file to remove
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return false
	}
	c, err := net.DialTimeout("unix", path, 100*time.Millisecond)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

func (l *listener) Accept() (transport.Conn, error) {
	c, err := l.l.Accept()
	if err != nil {
		return transport.Conn{}, err
	}
	return transport.Conn{Conn: c, Framing: transport.FramingIPC}, nil
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
