// Package transport is the seam between ferry's sockets and the ways bytes
// move between them. A transport turns a URL into connections; the socket
// does the SP handshake and framing on top. Importing a transport package
// registers its schemes; tcp and ipc are registered by ferry itself, and
// inproc is built into ferry because it passes messages by reference.
//
// This package depends on the standard library only, so transport packages
// do not import ferry.
package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/ferrymq/ferry/internal/wire"
)

// Framing says how SP frames are delimited on a stream connection.
type Framing = wire.Framing

// The framings stream transports use.
const (
	FramingTCP = wire.TCP // uint64 length prefix (tcp, tls+tcp)
	FramingIPC = wire.IPC // 0x01 then uint64 length prefix (ipc)
)

// Options are the connection settings a dialer or listener passes down.
// The socket fills in defaults before calling a transport; a transport
// ignores fields that do not apply to it.
type Options struct {
	// NoDelay sets TCP_NODELAY on tcp connections.
	NoDelay bool
	// KeepAlive is the TCP keep-alive period; negative disables it.
	KeepAlive time.Duration
	// TLS is the TLS configuration for secure transports.
	TLS *tls.Config
	// HandshakeTimeout bounds a transport's own handshake where it runs
	// outside the pipe (a WebSocket upgrade, a QUIC handshake).
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection that heard nothing from its peer for
	// this long (quic); 0 means the transport's default.
	IdleTimeout time.Duration
	// SelfName and PeerName are the SP protocol names of the socket and of
	// the peer it expects ("req", "rep" ...), for transports that
	// negotiate protocols by name (ws subprotocols).
	SelfName, PeerName string
}

// Conn is an established connection. A stream connection sets Conn and
// Framing: the socket exchanges the SP header and frames messages on it. A
// message connection (WebSocket) sets Msgs instead: it has no SP header
// (the transport matched protocols in its own handshake) and no length
// prefix.
type Conn struct {
	net.Conn
	Framing Framing
	Msgs    MsgConn
}

// MsgConn is a connection that carries whole messages. The socket calls
// NextReader only from a pipe's reader goroutine and WriteMsg only from
// its writer goroutine; Close may come from anywhere, at any time, and must
// unblock both.
type MsgConn interface {
	// NextReader returns a reader of the next message, which returns
	// io.EOF at the message's end. A message longer than limit fails with
	// an error matching wire.ErrTooLarge before more than limit bytes of
	// it are buffered anywhere. The reader is valid until the next call.
	NextReader(limit int) (io.Reader, error)
	// WriteMsg writes one message whose bytes are hdr then body.
	WriteMsg(hdr, body []byte) error
	// SetWriteDeadline bounds WriteMsg calls, as net.Conn's does.
	SetWriteDeadline(t time.Time) error
	// CloseWrite tells the peer that nothing more will be sent, without
	// blocking.
	CloseWrite() error
	// Close closes the connection at once.
	Close() error
	LocalAddr() net.Addr
	RemoteAddr() net.Addr
}

// URLer is implemented by listeners whose URL is not just the scheme and
// bound address (a WebSocket path, a QUIC port chosen for port 0).
type URLer interface {
	// URL is the listening address with the bound port filled in.
	URL() string
}

// Errors a transport wraps so the socket can tell why a pipe closed.
var (
	// ErrHandshake: the transport's own handshake failed (TLS
	// certificate or protocol mismatch, WebSocket upgrade refused). The
	// pipe closes as a bad handshake.
	ErrHandshake = errors.New("transport: handshake failed")
	// ErrProtocol: the peer broke the transport's protocol (a WebSocket
	// text or malformed frame). The pipe closes as a protocol error.
	ErrProtocol = errors.New("transport: protocol error")
)

// Transport creates dialers and listeners for the URL schemes it serves.
type Transport interface {
	// Schemes lists the URL schemes served, for example "tcp", "tcp4".
	Schemes() []string
	// NewDialer validates u and returns a dialer for it. Nothing is
	// dialed yet.
	NewDialer(u *url.URL, o Options) (Dialer, error)
	// NewListener validates u and returns a listener for it. Nothing is
	// bound until Listen.
	NewListener(u *url.URL, o Options) (Listener, error)
}

// Dialer makes connections to one address.
type Dialer interface {
	// Dial connects, or fails when ctx ends.
	Dial(ctx context.Context) (Conn, error)
}

// Listener accepts connections on one address.
type Listener interface {
	// Listen binds the address.
	Listen() error
	// Accept waits for the next connection. After Close it returns an
	// error wrapping net.ErrClosed.
	Accept() (Conn, error)
	// Addr is the bound address (with the port chosen for port 0).
	Addr() net.Addr
	// Close unbinds the address and wakes Accept.
	Close() error
}

var (
	mu         sync.RWMutex
	transports = map[string]Transport{}
)

// ErrUnknownScheme is returned for a URL whose scheme no imported transport
// serves.
var ErrUnknownScheme = errors.New("transport: unknown URL scheme")

// Register makes t available for its schemes. Registering a scheme twice
// panics: two packages claiming one scheme is a build mistake.
func Register(t Transport) {
	mu.Lock()
	defer mu.Unlock()
	for _, s := range t.Schemes() {
		if _, dup := transports[s]; dup {
			panic("transport: scheme registered twice: " + s)
		}
		transports[s] = t
	}
}

// Lookup returns the transport for a scheme.
func Lookup(scheme string) (Transport, error) {
	mu.RLock()
	t := transports[scheme]
	mu.RUnlock()
	if t == nil {
		return nil, fmt.Errorf("%w %q (registered: %v)", ErrUnknownScheme, scheme, Schemes())
	}
	return t, nil
}

// Schemes lists every registered scheme, sorted.
func Schemes() []string {
	mu.RLock()
	defer mu.RUnlock()
	s := make([]string, 0, len(transports))
	for k := range transports {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}
