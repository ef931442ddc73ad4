package pool_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ferrymq/ferry/pool"
)

// A pool of four workers runs a group of tasks and waits for them all.
func Example() {
	p, err := pool.New(4, pool.Config{})
	if err != nil {
		panic(err)
	}
	defer p.StopAndWait(context.Background())

	words := []string{"never", "keep", "what", "you", "have", "finished", "with"}
	g, _ := pool.NewResultGroup[string](p, context.Background())
	for _, w := range words {
		g.Go(func(context.Context) (string, error) { return strings.ToUpper(w), nil })
	}
	upper, err := g.Wait()
	fmt.Println(upper, err)
	// Output: [NEVER KEEP WHAT YOU HAVE FINISHED WITH] <nil>
}

func ExamplePool_Group() {
	p, _ := pool.New(2, pool.Config{})
	defer p.StopAndWait(context.Background())

	g, ctx := p.Group(context.Background())
	for i := range 5 {
		g.Go(func(ctx context.Context) error {
			if i == 3 {
				return fmt.Errorf("task %d failed", i)
			}
			return nil
		})
	}
	err := g.Wait()
	fmt.Println(err, "/", context.Cause(ctx))
	// Output: task 3 failed / task 3 failed
}

func ExampleSubmitValue() {
	p, _ := pool.New(2, pool.Config{})
	defer p.StopAndWait(context.Background())

	r := pool.SubmitValue(p, func() (int, error) { return 6 * 7, nil })
	v, err := r.Wait(context.Background())
	fmt.Println(v, err)
	// Output: 42 <nil>
}

func ExamplePool_Submit() {
	p, _ := pool.New(1, pool.Config{})
	defer p.StopAndWait(context.Background())

	task := p.Submit(func() { panic("oops") })
	err := task.Wait(context.Background())
	var pe *pool.PanicError
	fmt.Println(errors.Is(err, pool.ErrPanic), errors.As(err, &pe) && pe.Value == "oops")
	// Output: true true
}

func ExamplePool_TrySubmit() {
	p, _ := pool.New(1, pool.Config{QueueSize: 1})
	defer p.StopAndWait(context.Background())

	gate := make(chan struct{})
	started := make(chan struct{})
	p.Go(func() { close(started); <-gate }) // the only worker is busy
	<-started
	_, err1 := p.TrySubmit(func() error { return nil }) // fills the queue
	_, err2 := p.TrySubmit(func() error { return nil }) // does not fit
	close(gate)
	fmt.Println(err1, err2)
	// Output: <nil> pool: queue full
}

func ExamplePool_Metrics() {
	p, _ := pool.New(2, pool.Config{})
	for range 3 {
		p.Submit(func() {})
	}
	p.SubmitErr(func() error { return errors.New("no") })
	p.StopAndWait(context.Background())
	m := p.Metrics()
	fmt.Println(m.Submitted, m.Succeeded, m.Failed, m.Waiting, m.RunningWorkers)
	// Output: 4 3 1 0 0
}

func ExamplePool_StopAndWait() {
	p, _ := pool.New(1, pool.Config{})
	for i := range 3 {
		p.Go(func() { fmt.Println("task", i) })
	}
	err := p.StopAndWait(context.Background()) // the queued tasks still run
	fmt.Println(err, p.Go(func() {}))
	// Output:
	// task 0
	// task 1
	// task 2
	// <nil> pool: stopped
}
