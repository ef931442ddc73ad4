package deadline

import (
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

type job struct {
	Item
	n int
}

func (j *job) DeadlineItem() *Item { return &j.Item }

// TestQueueOrder: random sets, moves and removals always leave the
// earliest first, and every index right.
func TestQueueOrder(t *testing.T) {
	var q Queue[*job]
	base := time.Unix(0, 0)
	jobs := make([]*job, 200)
	for i := range jobs {
		jobs[i] = &job{n: i}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for step := range 5000 {
		j := jobs[r.IntN(len(jobs))]
		if r.IntN(3) == 0 {
			q.Remove(j)
		} else {
			q.Set(j, base.Add(time.Duration(r.IntN(1000))))
		}
		var in []*job
		for _, j := range jobs {
			if j.Queued() {
				in = append(in, j)
			}
		}
		if len(in) != q.Len() {
			t.Fatalf("step %d: %d queued, Len %d", step, len(in), q.Len())
		}
		for i, x := range q.h {
			if x.idx != i+1 {
				t.Fatalf("step %d: index of %d is %d, want %d", step, x.n, x.idx, i+1)
			}
		}
		if len(in) > 0 {
			sort.Slice(in, func(a, b int) bool { return in[a].At.Before(in[b].At) })
			if f, _ := q.First(); !f.At.Equal(in[0].At) {
				t.Fatalf("step %d: first due %v, earliest is %v", step, f.At, in[0].At)
			}
		}
	}
	// Removing everything clears every slot.
	for _, j := range jobs {
		q.Remove(j)
	}
	if q.Len() != 0 || cap(q.h) > 0 && q.h[:cap(q.h)][0] != nil {
		t.Fatal("a removed entry is still referenced by the queue")
	}
}

// TestArmLazily: Arm leaves a pending timer alone when the earliest
// deadline moved later (fire, finding nothing due, arms it again), and
// resets it when the deadline moved earlier or the timer has gone off.
// Every entry still fires at its own time.
func TestArmLazily(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			mu    sync.Mutex
			q     Queue[*job]
			fired = map[int]time.Duration{}
		)
		start := time.Now()
		q.Init(func() {
			mu.Lock()
			defer mu.Unlock()
			now := time.Now()
			for {
				j, ok := q.First()
				if !ok || j.At.After(now) {
					break
				}
				q.Remove(j)
				fired[j.n] = now.Sub(start)
			}
			q.Arm(now)
		})
		set := func(j *job, after time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			now := time.Now()
			q.Set(j, now.Add(after))
			q.Arm(now)
		}
		resets := func() int { mu.Lock(); defer mu.Unlock(); return q.resets }
		a, b, c, d := &job{n: 1}, &job{n: 2}, &job{n: 3}, &job{n: 4}
		set(a, 10*time.Second)
		mu.Lock()
		q.Remove(a) // answered: the timer stays set for 10 s
		mu.Unlock()
		set(b, 20*time.Second)
		if r := resets(); r != 1 {
			t.Fatalf("%d timer calls, want 1: a later deadline must not reset a pending timer", r)
		}
		set(c, 5*time.Second) // earlier than the pending 10 s: reset
		if r := resets(); r != 2 {
			t.Fatalf("%d timer calls, want 2: an earlier deadline resets the timer", r)
		}
		time.Sleep(25 * time.Second)
		set(d, time.Second) // the timer has gone off since: set again
		time.Sleep(2 * time.Second)
		mu.Lock()
		defer mu.Unlock()
		want := map[int]time.Duration{2: 20 * time.Second, 3: 5 * time.Second, 4: 26 * time.Second}
		for n, at := range want {
			if fired[n] != at {
				t.Errorf("entry %d fired at %v, want %v", n, fired[n], at)
			}
		}
		if _, ok := fired[1]; ok {
			t.Error("a removed entry fired")
		}
		q.Stop()
	})
}
