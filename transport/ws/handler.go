package ws

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/transport"
)

// schemeHandler names the listeners NewHandler makes. It is internal: a
// URL of this scheme is only valid while NewHandler builds its listener.
const schemeHandler = "ws+handler"

// mounts holds the listeners NewHandler is building, by id: the socket
// creates a listener from a URL, so NewHandler reserves an id, passes
// "ws+handler://<id>" and picks the listener up from here.
var mounts = struct {
	sync.Mutex
	next uint64
	m    map[uint64]*listener // nil value: reserved, not yet built
}{m: make(map[uint64]*listener)}

// Handler serves SP over WebSocket as an http.Handler, so that a socket
// can listen on an HTTP server the application runs, next to its other
// handlers:
//
//	h, err := ws.NewHandler(sock, ferry.ListenerConfig{})
//	mux.Handle("/sp", h)          // any path; the mux chooses
//	...
//	h.Close()                     // or sock.Close()
//
// Requests must be WebSocket upgrades offering "<self>.sp.nanomsg.org";
// others get HTTP 400, and 503 once the handler is closed. The HTTP
// server's own settings (ReadHeaderTimeout, TLS for wss) apply: the
// handshake is the server's, so ConnConfig.HandshakeTimeout and TLS are
// not used. Browsers' cross-origin upgrades are refused (a request whose
// Origin header names another host).
type Handler struct {
	l  *listener
	fl *ferry.Listener
}

// NewHandler makes a started listener for sock that takes its
// connections from the returned Handler. Its pipes count in sock's Stats
// like any other listener's; closing the socket closes it.
func NewHandler(sock *ferry.Socket, cfg ferry.ListenerConfig) (*Handler, error) {
	mounts.Lock()
	mounts.next++
	id := mounts.next
	mounts.m[id] = nil
	mounts.Unlock()
	defer func() {
		mounts.Lock()
		delete(mounts.m, id)
		mounts.Unlock()
	}()
	fl, err := sock.NewListener(schemeHandler+"://"+strconv.FormatUint(id, 10), cfg)
	if err != nil {
		return nil, err
	}
	mounts.Lock()
	l := mounts.m[id]
	mounts.Unlock()
	if err := fl.Start(); err != nil {
		fl.Close()
		return nil, err
	}
	return &Handler{l: l, fl: fl}, nil
}

// takeMount builds the listener NewHandler reserved under u's id.
func takeMount(u *url.URL, o transport.Options) (transport.Listener, error) {
	id, err := strconv.ParseUint(u.Host, 10, 64)
	mounts.Lock()
	defer mounts.Unlock()
	l, reserved := mounts.m[id]
	if err != nil || !reserved || l != nil {
		return nil, fmt.Errorf("%s: use ws.NewHandler to serve SP on an http.Server", schemeHandler)
	}
	l, err = newListener(schemeHandler, "", "", o)
	if err != nil {
		return nil, err
	}
	l.mounted = true
	mounts.m[id] = l
	return l, nil
}

// ServeHTTP upgrades the request and hands the connection to the socket.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.l.ServeHTTP(w, r) }

// Listener is the socket's listener behind the handler.
func (h *Handler) Listener() *ferry.Listener { return h.fl }

// Close stops the handler (later requests get 503) and closes the pipes
// it accepted.
func (h *Handler) Close() error { return h.fl.Close() }
