package ferry

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/ferrymq/ferry/transport"
)

// Dialer connects a socket to one address and keeps it connected: when
// its pipe closes, or a dial fails, it redials with exponential back-off.
type Dialer struct {
	s      *Socket
	url    string
	td     transport.Dialer // nil for inproc
	inproc string
	cfg    DialerConfig

	closed    chan struct{}
	closeOnce sync.Once

	mu      sync.Mutex // guards the fields below
	started bool
	cancel  context.CancelFunc // cancels a dial in progress
	pipe    *Pipe              // current pipe, if any
}

// Dial connects to addr with the default DialerConfig: it returns once the
// first connection is established (or failed), then keeps redialing in
// the background whenever the connection is lost.
func (s *Socket) Dial(ctx context.Context, addr string) (*Dialer, error) {
	d, err := s.NewDialer(addr, DialerConfig{})
	if err != nil {
		return nil, err
	}
	return d, d.Start(ctx)
}

// NewDialer makes a dialer for addr; nothing is dialed until Start.
func (s *Socket) NewDialer(addr string, cfg DialerConfig) (*Dialer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	u, t, err := parseAddr(addr)
	if err != nil {
		return nil, err
	}
	d := &Dialer{s: s, url: addr, cfg: cfg, closed: make(chan struct{})}
	if t == nil {
		d.inproc = inprocName(u)
	} else if d.td, err = t.NewDialer(u, s.transportOpts(cfg.ConnConfig)); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, ErrClosed
	}
	s.dialers[d] = struct{}{}
	return d, nil
}

// URL is the address the dialer connects to.
func (d *Dialer) URL() string { return d.url }

// Start begins dialing. Without DialerConfig.Background it waits for the
// first connection and returns its error (the dialer is then closed, as
// with nng_dial); ctx bounds that wait. With Background it returns at once.
func (d *Dialer) Start(ctx context.Context) error {
	d.mu.Lock()
	if d.started {
		d.mu.Unlock()
		return ErrState
	}
	d.started = true
	dctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.mu.Unlock()

	var first chan error
	if !d.cfg.Background {
		first = make(chan error, 1)
	}
	d.s.mu.Lock()
	ok := d.s.goLocked(func() { d.loop(dctx, first) })
	d.s.mu.Unlock()
	if !ok {
		cancel()
		return ErrClosed
	}
	if first == nil {
		return nil
	}
	select {
	case err := <-first:
		if err != nil {
			d.Close()
		}
		return err
	case <-ctx.Done():
		d.Close()
		return ctxErr(ctx)
	}
}

// Close stops the dialer and closes its pipe. It does not wait for the
// dialer's goroutine; the socket's Close does.
func (d *Dialer) Close() error {
	d.stop()
	d.s.mu.Lock()
	delete(d.s.dialers, d)
	d.s.mu.Unlock()
	return nil
}

func (d *Dialer) stop() {
	d.closeOnce.Do(func() {
		close(d.closed)
		d.mu.Lock()
		if d.cancel != nil {
			d.cancel()
		}
		p := d.pipe
		d.mu.Unlock()
		if p != nil {
			p.closeWith(ReasonDialerClosed, nil)
		}
	})
}

func (d *Dialer) loop(ctx context.Context, first chan<- error) {
	wait := d.cfg.ReconnectMin
	var timer *time.Timer
	for {
		p, err := d.connect(ctx)
		if first != nil {
			first <- err
			if err != nil {
				return
			}
			first = nil
		}
		if p != nil {
			up := time.Now()
			select {
			case <-p.done:
			case <-d.closed:
				return
			}
			if time.Since(up) > d.cfg.ReconnectMax {
				wait = d.cfg.ReconnectMin
			}
		}
		jitter := time.Duration(rand.Int64N(int64(wait)/4 + 1))
		if timer == nil {
			timer = time.NewTimer(wait + jitter)
		} else {
			timer.Reset(wait + jitter)
		}
		select {
		case <-timer.C:
		case <-d.closed:
			timer.Stop()
			return
		}
		wait = min(wait*2, d.cfg.ReconnectMax)
	}
}

// connect dials once and waits until the pipe is admitted or fails.
func (d *Dialer) connect(ctx context.Context) (*Pipe, error) {
	var c pipeConn
	if d.td == nil {
		ic, err := inprocDial(ctx, d.inproc)
		if err != nil {
			return nil, err
		}
		c = ic
	} else {
		tc, err := d.td.Dial(ctx)
		if err != nil {
			select {
			case <-d.closed:
				return nil, ErrClosed
			default:
			}
			return nil, err
		}
		c = d.s.newPipeConn(tc)
	}
	p := d.s.startPipe(c, d, nil, d.cfg.HandshakeTimeout)
	if p == nil {
		return nil, ErrClosed
	}
	d.mu.Lock()
	d.pipe = p
	d.mu.Unlock()
	select {
	case <-d.closed: // stop may have missed p
		p.closeWith(ReasonDialerClosed, nil)
	default:
	}
	select {
	case <-p.ready:
		return p, nil
	case <-p.done:
		// Admitted and closed at once (a PAIR peer refusing a second
		// pipe): both may be ready by now; admitted, the dial succeeded.
		select {
		case <-p.ready:
			return p, nil
		default:
		}
		return nil, p.closeErr()
	}
}
