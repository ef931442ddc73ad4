package pool

import (
	"context"
	"runtime"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// TestNoRetention is the shape of the pond v2.2–2.3.2 incident: more
// tasks than workers, each round's tasks capturing a fresh 1 MiB
// payload. Heap in use must stay bounded while it runs and come back to
// the baseline (within 10% + 512 KiB) once the last round has been
// waited for, even though the handles of the last rounds are still held.
// It checks plain submissions, value handles, Go, groups and result
// groups, with unbounded and bounded queues.
func TestNoRetention(t *testing.T) {
	defer goleak.VerifyNone(t)
	const (
		workers    = 10
		perRound   = 14
		rounds     = 2000
		payload    = 1 << 20
		sampleEach = 100
		maxHeap    = 64 << 20
		slack      = 512 << 10
		keptRounds = 8 // rounds of handles kept alive until the end
	)
	// A round submits perRound tasks reading data; each task first waits
	// for gate, which opens once the pool is full (workers busy, bounded
	// queue full), so that tasks do wait in the queue. It waits for them,
	// storing what they read in sum, and leaves their handles in kept.
	type round func(p *Pool, data []byte, gate chan struct{}, openAt int, sum *[perRound]byte, kept []any) error
	opener := func(gate chan struct{}, openAt int) func(i int) {
		return func(i int) {
			if i+1 == openAt {
				close(gate)
			}
		}
	}
	ctx := context.Background()
	submit := func(p *Pool, data []byte, gate chan struct{}, openAt int, sum *[perRound]byte, kept []any) error {
		open := opener(gate, openAt)
		tasks := make([]*Task, perRound)
		for i := range tasks {
			tasks[i] = p.Submit(func() { <-gate; sum[i] = data[i*1000] })
			kept[i] = tasks[i]
			open(i)
		}
		for _, task := range tasks {
			if err := task.Wait(ctx); err != nil {
				return err
			}
		}
		return nil
	}
	value := func(p *Pool, data []byte, gate chan struct{}, openAt int, sum *[perRound]byte, kept []any) error {
		open := opener(gate, openAt)
		results := make([]*Result[byte], perRound)
		for i := range results {
			results[i] = SubmitValue(p, func() (byte, error) { <-gate; return data[i*1000], nil })
			kept[i] = results[i]
			open(i)
		}
		for i, r := range results {
			v, err := r.Wait(ctx)
			if err != nil {
				return err
			}
			sum[i] = v
		}
		return nil
	}
	goFunc := func(p *Pool, data []byte, gate chan struct{}, openAt int, sum *[perRound]byte, kept []any) error {
		open := opener(gate, openAt)
		var wg sync.WaitGroup
		wg.Add(perRound)
		for i := range perRound {
			if err := p.Go(func() { <-gate; sum[i] = data[i*1000]; wg.Done() }); err != nil {
				return err
			}
			open(i)
		}
		wg.Wait()
		return nil
	}
	group := func(p *Pool, data []byte, gate chan struct{}, openAt int, sum *[perRound]byte, kept []any) error {
		open := opener(gate, openAt)
		g, _ := p.Group(ctx)
		for i := range perRound {
			g.Go(func(context.Context) error { <-gate; sum[i] = data[i*1000]; return nil })
			open(i)
		}
		kept[0] = g
		return g.Wait()
	}
	resultGroup := func(p *Pool, data []byte, gate chan struct{}, openAt int, sum *[perRound]byte, kept []any) error {
		open := opener(gate, openAt)
		g, _ := NewResultGroup[byte](p, ctx)
		for i := range perRound {
			g.Go(func(context.Context) (byte, error) { <-gate; return data[i*1000], nil })
			open(i)
		}
		kept[0] = g
		vals, err := g.Wait()
		copy(sum[:], vals)
		return err
	}
	for _, tc := range []struct {
		name  string
		queue int
		round round
	}{
		{"submit/unbounded", 0, submit},
		{"submit/bounded", 2, submit},
		{"value/unbounded", 0, value},
		{"go/bounded", 4, goFunc},
		{"group/unbounded", 0, group},
		{"group/bounded", 2, group},
		{"resultgroup/bounded", 3, resultGroup},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPool(t, workers, Config{QueueSize: tc.queue})
			openAt := perRound
			if tc.queue > 0 {
				openAt = min(perRound, workers+tc.queue)
			}
			var kept [keptRounds][perRound]any
			var sum [perRound]byte
			baseline := heapInUse()
			peak := baseline
			for r := range rounds {
				// Each round allocates its own payload: none of it may
				// survive the round.
				gate := make(chan struct{})
				if err := tc.round(p, newPayload(payload, r), gate, openAt, &sum, kept[r%keptRounds][:]); err != nil {
					t.Fatalf("round %d: %v", r, err)
				}
				if sum[perRound-1] != byte(r) {
					t.Fatalf("round %d: task saw %d", r, sum[perRound-1])
				}
				if r%sampleEach == sampleEach-1 {
					h := heapInUse()
					peak = max(peak, h)
					if h > maxHeap {
						t.Fatalf("round %d: heap in use %d MiB > %d MiB", r, h>>20, maxHeap>>20)
					}
				}
			}
			end := heapInUse()
			t.Logf("heap in use: baseline %.2f MiB, peak sample %.2f MiB, end %.2f MiB",
				mib(baseline), mib(peak), mib(end))
			if limit := baseline + baseline/10 + slack; end > limit {
				t.Fatalf("heap in use after the last round %.2f MiB > baseline %.2f MiB + 10%% + %d KiB",
					mib(end), mib(baseline), slack>>10)
			}
			runtime.KeepAlive(&kept)
		})
	}
}

// newPayload returns a fresh payload, marking the bytes the tasks read
// (only those: touching every page is slow under the race detector).
func newPayload(n, round int) []byte {
	b := make([]byte, n)
	for i := range 14 {
		b[i*1000] = byte(round)
	}
	return b
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }
