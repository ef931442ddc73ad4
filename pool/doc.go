// Package pool runs tasks on a bounded number of worker goroutines
// without keeping anything it has finished with.
//
// A [Pool] starts workers on demand up to its limit and lets them exit
// after [Config.IdleTimeout] without work, so an idle pool holds no
// goroutines. Tasks beyond the workers wait in a FIFO queue, unbounded
// unless [Config.QueueSize] is set. Every queue slot, hand-off slot and
// handle drops its reference to a task's function as soon as the task
// is handed out or has run: a payload captured by a finished task is
// never kept alive by the pool.
//
// Tasks are submitted as a plain func ([Pool.Go], no handle, no
// allocation; [Pool.Submit], returning a [*Task]), a func returning an
// error ([Pool.SubmitErr], [Pool.TrySubmit]) or a func returning a value
// ([SubmitValue], returning a [*Result]). Related tasks can be run as a
// [Group] that fails fast on the first error, or a [ResultGroup] that
// returns values in submission order. A panic in a task becomes an
// error matching [ErrPanic], with the stack; the pool goes on.
//
// A minimal use:
//
//	p, err := pool.New(8, pool.Config{})
//	if err != nil {
//		return err
//	}
//	defer p.StopAndWait(context.Background())
//
//	g, _ := p.Group(context.Background())
//	for _, url := range urls {
//		g.Go(func(ctx context.Context) error { return fetch(ctx, url) })
//	}
//	return g.Wait()
package pool
