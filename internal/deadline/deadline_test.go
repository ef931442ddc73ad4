package deadline

import (
	"math/rand/v2"
	"sort"
	"testing"
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
