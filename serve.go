package ferry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrymq/ferry/internal/clock"
	"github.com/ferrymq/ferry/pool"
)

// Handler answers one request. req is the request (owned by the server,
// valid until the handler returns); the handler fills reply. An error, or
// a panic, sends no reply: the requester's resend or timeout decides.
type Handler func(ctx context.Context, req *Msg, reply *Msg) error

// ServeConfig configures Socket.Serve. The zero value works.
type ServeConfig struct {
	// Workers is the number of goroutines, each reusing one context for
	// its whole life (no context churn). Default 16; range 1..65536.
	Workers int
	// MaxInFlight caps handlers running at once across workers. Default
	// 0: no cap beyond Workers.
	MaxInFlight int
	// Logger receives handler errors and panics. Default slog.Default().
	Logger *slog.Logger
	// Stats, if set, is updated as requests are served.
	Stats *ServeStats
	// Pool, if set, runs the handlers: its worker limit then applies
	// across every server (and Consume) sharing it. Each request costs
	// one task handle. Default nil: handlers run on the workers.
	Pool *pool.Pool
}

// ServeStats counts what a server did. Read the fields with Load.
type ServeStats struct {
	Handled  atomic.Uint64 // replies sent
	Errors   atomic.Uint64 // handlers that returned an error
	Panics   atomic.Uint64 // handlers that panicked
	Dropped  atomic.Uint64 // replies that could not be sent
	InFlight atomic.Int64  // handlers running now
}

// ErrHandlerPanic wraps a panic recovered from a Handler.
var ErrHandlerPanic = errors.New("ferry: handler panicked")

// Serve answers requests on s (REP or RESPONDENT) with h until ctx ends or
// s closes. Each worker reuses one context and one reply message, so a
// steady stream of requests allocates nothing in the server. When ctx
// ends, workers stop taking requests, handlers already running finish and
// their replies are sent, and Serve returns nil; if the socket closes it
// returns ErrClosed. A handler panic is logged, counted and turned into
// an error wrapping ErrHandlerPanic; the worker carries on.
func (s *Socket) Serve(ctx context.Context, h Handler, cfg ServeConfig) error {
	if cfg.Workers == 0 {
		cfg.Workers = 16
	}
	if cfg.Workers < 1 || cfg.Workers > 65536 {
		return &OptionError{"ServeConfig.Workers", cfg.Workers, "in 1..65536 (0 means 16)"}
	}
	if cfg.MaxInFlight < 0 {
		return &OptionError{"ServeConfig.MaxInFlight", cfg.MaxInFlight, ">= 0 (0 means no cap)"}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Stats == nil {
		cfg.Stats = new(ServeStats)
	}
	var sem chan struct{}
	if cfg.MaxInFlight > 0 && cfg.MaxInFlight < cfg.Workers {
		sem = make(chan struct{}, cfg.MaxInFlight)
	}
	ctxs := make([]*Context, cfg.Workers)
	for i := range ctxs {
		c, err := s.OpenContext()
		if err != nil {
			for _, c := range ctxs[:i] {
				c.Close()
			}
			return err
		}
		ctxs[i] = c
	}
	// Workers receive with a ctx that never ends when every context can
	// stop its receives itself: ctx's end stops them (ErrClosed, then
	// Serve returns nil), and each wait has one case fewer.
	rbase := ctx
	if ctx.Done() != nil {
		stops := make([]func(), 0, len(ctxs))
		for _, c := range ctxs {
			if rs, ok := c.pc.(recvStopper); ok {
				stops = append(stops, rs.RecvStop())
			}
		}
		if len(stops) == len(ctxs) {
			unreg := context.AfterFunc(ctx, func() {
				for _, stop := range stops {
					stop()
				}
			})
			defer unreg()
			rbase = context.WithoutCancel(ctx)
		}
	}
	var wg sync.WaitGroup
	var closed atomic.Bool
	for _, c := range ctxs {
		wg.Go(func() {
			defer c.Close()
			if err := serveOne(ctx, rbase, c, h, sem, &cfg); errors.Is(err, ErrClosed) {
				closed.Store(true)
			}
		})
	}
	wg.Wait()
	if closed.Load() && ctx.Err() == nil {
		return ErrClosed
	}
	return nil
}

// recvStopper is implemented by contexts whose receives can be stopped
// apart from the context (REP and RESPONDENT's): RecvStop, called before
// any Recv, returns the function that makes Recv fail with ErrClosed
// while Send still answers the request taken.
type recvStopper interface {
	RecvStop() func()
}

// serveOne is one worker: it receives on c with rbase (ctx, or a ctx
// that never ends when Serve stops c's receives itself) and handles with
// ctx's values.
func serveOne(ctx, rbase context.Context, c *Context, h Handler, sem chan struct{}, cfg *ServeConfig) error {
	// Handlers and replies outlive ctx: a request taken is answered.
	hctx := context.WithoutCancel(ctx)
	var req, reply Msg
	defer req.Free()
	defer func() { reply.Reset(); reply.Free() }() // Reset: a sent handle is empty, not freeable
	st := cfg.Stats
	// Quick handlers let the worker keep the socket's reading role while
	// it handles (see keepHint).
	kh := newKeepHint()
	rctx := context.WithValue(rbase, keepKey{}, kh)
	var took int64 // clock.Nanos at the request's arrival; 0 for untimed
	for {
		if took != 0 {
			kh.handled(time.Duration(clock.Nanos() - took))
		}
		if err := c.RecvMsg(rctx, &req); err != nil {
			return err
		}
		took = 0
		if c.s.lend.lendp.Load() != nil { // timed only where it matters: reads are lent
			took = clock.Nanos() // monotonic only: half of time.Now's cost
		}
		if sem != nil {
			select {
			case sem <- struct{}{}:
			case <-c.s.Closed():
				return ErrClosed
			}
		}
		reply.Reset()
		st.InFlight.Add(1)
		var err error
		if cfg.Pool == nil {
			err = call(hctx, h, &req, &reply) // no closure: nothing allocated per request
		} else {
			err = run(hctx, cfg.Pool, func() error { return call(hctx, h, &req, &reply) })
		}
		st.InFlight.Add(-1)
		if sem != nil {
			<-sem
		}
		if err != nil {
			if errors.Is(err, ErrHandlerPanic) {
				st.Panics.Add(1)
			} else {
				st.Errors.Add(1)
			}
			cfg.Logger.Error("ferry: handler failed", "err", err)
			continue
		}
		if err := c.Send(hctx, &reply); err != nil {
			st.Dropped.Add(1)
			if errors.Is(err, ErrClosed) {
				return err
			}
			continue
		}
		st.Handled.Add(1)
	}
}

// run runs f here, or on p and waits for it.
func run(ctx context.Context, p *pool.Pool, f func() error) error {
	if p == nil {
		return f()
	}
	return p.SubmitErr(f).Wait(ctx)
}

// ConsumeConfig configures Socket.Consume. The zero value works.
type ConsumeConfig struct {
	// Workers receiving and handling messages. Default 16; range
	// 1..65536.
	Workers int
	// Pool, if set, runs the handlers (see ServeConfig.Pool).
	Pool *pool.Pool
	// Logger receives handler errors and panics. Default slog.Default().
	Logger *slog.Logger
	// Stats, if set, is updated as messages are handled (Handled counts
	// messages whose handler returned nil).
	Stats *ServeStats
}

// Consume receives messages on s (PULL, SUB, PAIR, BUS ...) and hands
// each to h on one of cfg.Workers goroutines (or cfg.Pool) until ctx ends
// (nil) or s closes (ErrClosed). The message is owned by Consume and valid
// until h returns; each worker reuses one Msg. Handler errors and panics
// are logged and counted; consuming goes on.
func (s *Socket) Consume(ctx context.Context, h func(ctx context.Context, m *Msg) error, cfg ConsumeConfig) error {
	if cfg.Workers == 0 {
		cfg.Workers = 16
	}
	if cfg.Workers < 1 || cfg.Workers > 65536 {
		return &OptionError{"ConsumeConfig.Workers", cfg.Workers, "in 1..65536 (0 means 16)"}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Stats == nil {
		cfg.Stats = new(ServeStats)
	}
	hctx := context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	var closed atomic.Bool
	for range cfg.Workers {
		wg.Go(func() {
			var m Msg
			defer m.Free()
			// One closure per worker, not per message.
			handle := func() (err error) {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("%w: %v\n%s", ErrHandlerPanic, r, debug.Stack())
					}
				}()
				return h(hctx, &m)
			}
			for {
				if err := s.RecvMsg(ctx, &m); err != nil {
					if errors.Is(err, ErrClosed) {
						closed.Store(true)
					}
					return
				}
				cfg.Stats.InFlight.Add(1)
				err := run(hctx, cfg.Pool, handle)
				cfg.Stats.InFlight.Add(-1)
				switch {
				case err == nil:
					cfg.Stats.Handled.Add(1)
				case errors.Is(err, ErrHandlerPanic):
					cfg.Stats.Panics.Add(1)
					cfg.Logger.Error("ferry: handler panicked", "err", err)
				default:
					cfg.Stats.Errors.Add(1)
					cfg.Logger.Error("ferry: handler failed", "err", err)
				}
			}
		})
	}
	wg.Wait()
	if closed.Load() && ctx.Err() == nil {
		return ErrClosed
	}
	return nil
}

func call(ctx context.Context, h Handler, req, reply *Msg) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v\n%s", ErrHandlerPanic, r, debug.Stack())
		}
	}()
	return h(ctx, req, reply)
}
