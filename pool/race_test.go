package pool

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestResizeRacesSubmission: submitters of every kind, Resize, Metrics
// and idle timeouts all at once (run it with -race). Every accepted task
// runs exactly once and the pool ends with no worker.
func TestResizeRacesSubmission(t *testing.T) {
	for _, cfg := range []Config{
		{IdleTimeout: time.Millisecond},
		{QueueSize: 4, IdleTimeout: time.Millisecond},
	} {
		p := newPool(t, 4, cfg)
		const submitters, perSubmitter = 6, 1500
		var ran atomic.Int64
		var wg sync.WaitGroup
		stopResizing := make(chan struct{})
		resizer := make(chan struct{})
		go func() {
			defer close(resizer)
			r := rand.New(rand.NewPCG(1, 2))
			for {
				select {
				case <-stopResizing:
					return
				default:
				}
				if err := p.Resize(1 + r.IntN(8)); err != nil {
					t.Error(err)
					return
				}
				_ = p.Metrics()
				_ = p.MaxWorkers()
				time.Sleep(time.Duration(r.IntN(100)) * time.Microsecond)
			}
		}()
		for s := range submitters {
			wg.Go(func() {
				work := func() { ran.Add(1) }
				for i := range perSubmitter {
					switch (s + i) % 5 {
					case 0:
						if err := p.Go(work); err != nil {
							t.Error(err)
						}
					case 1:
						p.Submit(work)
					case 2:
						SubmitValue(p, func() (int, error) { work(); return i, nil })
					case 3:
						if i%50 == 3 {
							g, _ := p.Group(context.Background())
							g.Go(func(context.Context) error { work(); return nil })
							g.Go(func(context.Context) error { work(); return nil })
							if err := g.Wait(); err != nil {
								t.Error(err)
							}
							ran.Add(-1) // two tasks counted as one
						} else {
							p.Submit(work)
						}
					case 4:
						if task, err := p.TrySubmit(func() error { work(); return nil }); err == nil {
							task.Wait(context.Background())
						} else {
							ran.Add(1) // refused: counted as run
						}
					}
				}
			})
		}
		wg.Wait()
		close(stopResizing)
		<-resizer
		stopWithin(t, p, 10*time.Second)
		if got := ran.Load(); got != submitters*perSubmitter {
			t.Fatalf("ran %d tasks, want %d", got, submitters*perSubmitter)
		}
		m := p.Metrics()
		if m.Submitted != m.Succeeded || m.Waiting != 0 || m.RunningWorkers != 0 {
			t.Fatalf("Metrics = %+v", m)
		}
	}
}
