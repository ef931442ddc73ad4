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
}

// Conn is an established byte stream and the framing to use on it.
type Conn struct {
	net.Conn
	Framing Framing
}

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
