package ferry

import (
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/ferrymq/ferry/transport"
)

// Listener accepts connections for a socket on one address.
type Listener struct {
	s      *Socket
	url    string
	tl     transport.Listener // nil for inproc
	inproc *inprocListener
	cfg    ListenerConfig

	closed    chan struct{}
	closeOnce sync.Once
	mu        sync.Mutex // guards started
	started   bool
}

// Listen binds addr with the default ListenerConfig and starts accepting.
// For tcp, port 0 picks a free port; read it back with Listener.Addr or
// Listener.URL.
func (s *Socket) Listen(addr string) (*Listener, error) {
	l, err := s.NewListener(addr, ListenerConfig{})
	if err != nil {
		return nil, err
	}
	if err := l.Start(); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// NewListener makes a listener for addr; nothing is bound until Start.
func (s *Socket) NewListener(addr string, cfg ListenerConfig) (*Listener, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	u, t, err := parseAddr(addr)
	if err != nil {
		return nil, err
	}
	l := &Listener{s: s, url: addr, cfg: cfg, closed: make(chan struct{})}
	if t == nil {
		l.inproc = &inprocListener{name: inprocName(u)}
	} else if l.tl, err = t.NewListener(u, s.transportOpts(cfg.ConnConfig)); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, ErrClosed
	}
	s.listeners[l] = struct{}{}
	return l, nil
}

// Start binds the address and starts accepting connections.
func (l *Listener) Start() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started {
		return ErrState
	}
	select {
	case <-l.closed:
		return ErrClosed
	default:
	}
	var err error
	if l.inproc != nil {
		err = l.inproc.listen()
	} else {
		err = l.tl.Listen()
	}
	if err != nil {
		return err
	}
	l.started = true
	l.s.mu.Lock()
	ok := l.s.goLocked(l.acceptLoop)
	l.s.mu.Unlock()
	if !ok {
		l.unbind()
		return ErrClosed
	}
	return nil
}

// Addr is the bound address, or nil before Start (and for inproc).
func (l *Listener) Addr() net.Addr {
	if l.tl == nil {
		return nil
	}
	return l.tl.Addr()
}

// URL is the listening address with a port chosen for port 0 filled in.
func (l *Listener) URL() string {
	if u, ok := l.tl.(transport.URLer); ok && l.tl.Addr() != nil {
		return u.URL()
	}
	a, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return l.url
	}
	scheme, _, _ := strings.Cut(l.url, "://")
	return scheme + "://" + a.String()
}

// Close stops accepting, unbinds the address and closes the pipes this
// listener accepted.
func (l *Listener) Close() error {
	l.stop()
	s := l.s
	s.mu.Lock()
	delete(s.listeners, l)
	var mine []*Pipe
	for p := range s.pipes {
		if p.listener == l {
			mine = append(mine, p)
		}
	}
	s.mu.Unlock()
	for _, p := range mine {
		p.closeWith(ReasonListenerClosed, nil)
	}
	return nil
}

func (l *Listener) stop() {
	l.closeOnce.Do(func() {
		close(l.closed)
		l.mu.Lock()
		started := l.started
		l.mu.Unlock()
		if started {
			l.unbind()
		}
	})
}

func (l *Listener) unbind() {
	if l.inproc != nil {
		l.inproc.close()
	} else {
		l.tl.Close()
	}
}

func (l *Listener) acceptLoop() {
	var delay time.Duration
	for {
		var c pipeConn
		var err error
		if l.inproc != nil {
			var ic *inprocConn
			if ic, err = l.inproc.accept(); err == nil {
				c = ic
			}
		} else {
			var tc transport.Conn
			if tc, err = l.tl.Accept(); err == nil {
				c = l.s.newPipeConn(tc)
			}
		}
		if err != nil {
			select {
			case <-l.closed:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors or similar: back off, then try again.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-l.closed:
				t.Stop()
				return
			}
			continue
		}
		delay = 0
		if l.s.startPipe(c, nil, l, l.cfg.HandshakeTimeout) == nil {
			return
		}
	}
}
