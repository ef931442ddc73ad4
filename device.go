package ferry

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Device forwards messages between two raw sockets in both directions,
// headers included, as nng_device does: a REP-side socket and a REQ-side
// socket make a request/reply hop, a SUB and a PUB a fan-out hop. A
// direction whose source cannot receive (PUB) is skipped. Device returns
// when ctx ends (ctx's error) or either socket closes (ErrClosed). It
// starts no goroutine that outlives it; each direction reuses one Msg, so
// forwarding allocates nothing per message.
func Device(ctx context.Context, a, b *Socket) error {
	if !a.cfg.Raw || !b.cfg.Raw {
		return fmt.Errorf("%w: device sockets must be raw (SocketConfig.Raw)", ErrState)
	}
	if a.info.Self != b.info.Peer || a.info.Peer != b.info.Self {
		return fmt.Errorf("%w: device between %s and %s: each must be the other's peer", ErrState, a.info.SelfName, b.info.SelfName)
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, dir := range [][2]*Socket{{a, b}, {b, a}} {
		wg.Go(func() {
			errs[i] = forward(ctx, dir[0], dir[1])
			if !errors.Is(errs[i], ErrNotSupported) {
				cancel() // one direction ended: stop the other
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if errors.Is(err, ErrClosed) {
			return ErrClosed
		}
	}
	for _, err := range errs { // a failure other than our own cancel
		if err != nil && !errors.Is(err, ErrNotSupported) && !errors.Is(err, ErrCanceled) {
			return err
		}
	}
	if parent.Err() != nil {
		return ctxErr(parent)
	}
	return nil
}

func forward(ctx context.Context, from, to *Socket) error {
	var m Msg
	defer func() { m.Reset(); m.Free() }() // Reset: after a Send the handle is empty, not freeable
	for {
		if err := from.RecvMsg(ctx, &m); err != nil {
			return err
		}
		if err := to.Send(ctx, &m); err != nil {
			return err
		}
	}
}
