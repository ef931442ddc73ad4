package pool

import (
	"runtime"
	"testing"
	"weak"
)

// seqTask is a runner that records its number.
type seqTask struct {
	n       int
	payload []byte
}

func (*seqTask) run(*Pool)    {}
func (*seqTask) cancel(error) {}

// TestQueueFIFO: items come out in the order they went in, across chunk
// boundaries and with pushes and pops interleaved.
func TestQueueFIFO(t *testing.T) {
	for _, tc := range []struct {
		name        string
		push, batch int // push items in total, popping batch after each batch of pushes
	}{
		{"one", 1, 1},
		{"chunk", chunkLen, chunkLen},
		{"chunk+1", chunkLen + 1, chunkLen + 1},
		{"many", 10 * chunkLen, 10 * chunkLen},
		{"interleaved-3", 5 * chunkLen, 3},
		{"interleaved-chunk-1", 5 * chunkLen, chunkLen - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var q queue
			next := 0
			for i := 0; i < tc.push; {
				for j := 0; j < tc.batch && i < tc.push; j++ {
					q.push(&seqTask{n: i})
					i++
				}
				for q.len() > 1 { // leave one to carry over
					if got := q.pop().(*seqTask).n; got != next {
						t.Fatalf("pop = %d, want %d", got, next)
					}
					next++
				}
			}
			for q.len() > 0 {
				if got := q.pop().(*seqTask).n; got != next {
					t.Fatalf("pop = %d, want %d", got, next)
				}
				next++
			}
			if next != tc.push {
				t.Fatalf("popped %d, want %d", next, tc.push)
			}
		})
	}
}

// TestQueueClearsSlots: once popped, no slot of the queue (its chunks and
// its spares) refers to the item any more.
func TestQueueClearsSlots(t *testing.T) {
	for _, n := range []int{1, 5, chunkLen - 1, chunkLen, chunkLen + 3, 3 * chunkLen} {
		var q queue
		for i := range n {
			q.push(&seqTask{n: i})
		}
		for range n - 1 {
			q.pop()
		}
		last := q.pop() // leaves the queue empty
		q.push(&seqTask{n: -1})
		q.pop()
		for c := q.head; c != nil; c = c.next {
			checkChunkEmpty(t, n, c)
		}
		for c := q.spares; c != nil; c = c.next {
			checkChunkEmpty(t, n, c)
		}
		runtime.KeepAlive(last)
	}
}

func checkChunkEmpty(t *testing.T, n int, c *chunk) {
	t.Helper()
	for i, s := range c.slots {
		if s != nil {
			t.Fatalf("after %d pushes and pops, slot %d still holds %v", n, i, s)
		}
	}
}

// TestQueueReleasesPayload: a payload captured by a queued task becomes
// collectable as soon as the task is popped and run, while the queue
// itself stays alive. A queue that kept popped items in its slots (the
// pond v2.2–2.3.2 shape) fails here.
func TestQueueReleasesPayload(t *testing.T) {
	var q queue
	var weaks []weak.Pointer[[]byte]
	for i := range 3 * chunkLen / 2 {
		payload := make([]byte, 1<<10)
		weaks = append(weaks, weak.Make(&payload))
		q.push(funcTask(func() { payload[i%len(payload)]++ }))
	}
	for q.len() > 0 {
		r := q.pop()
		r.run(&Pool{}) // runs like a worker would, then drops it
	}
	runtime.GC()
	runtime.GC()
	for i, w := range weaks {
		if w.Value() != nil {
			t.Fatalf("payload %d still reachable after its task left the queue", i)
		}
	}
	runtime.KeepAlive(&q)
}

// TestHandOffSlotCleared: a parked worker's hand-off slot and the idle
// stack do not keep a task once it has been handed out.
func TestHandOffSlotCleared(t *testing.T) {
	p := newPool(t, 1, Config{})
	for range 3 {
		payload := make([]byte, 1<<10)
		wp := weak.Make(&payload)
		if err := p.SubmitErr(func() error { payload[0]++; return nil }).Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		payload = nil
		// The worker parks after the task: wait for it to be on the stack.
		for {
			p.mu.Lock()
			n := len(p.idle)
			p.mu.Unlock()
			if n == 1 {
				break
			}
			runtime.Gosched()
		}
		runtime.GC()
		runtime.GC()
		if wp.Value() != nil {
			t.Fatal("payload still reachable after its task ran")
		}
		p.mu.Lock()
		for _, w := range p.idle[:cap(p.idle)] {
			if w != nil && w.next != nil {
				t.Error("parked worker still holds a task")
			}
		}
		p.mu.Unlock()
	}
}
