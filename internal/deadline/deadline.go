// Package deadline keeps many deadlines on one timer: REQ resends and
// SURVEYOR expiries, where each context has a deadline but no timer of
// its own.
package deadline

import "time"

// Item is embedded in whatever is scheduled.
type Item struct {
	At  time.Time // when it is due; set through Queue.Set
	idx int       // position in the queue + 1; 0 when not queued
}

// Queued reports whether the item is in a queue.
func (it *Item) Queued() bool { return it.idx > 0 }

// Entry is anything with an Item.
type Entry interface{ DeadlineItem() *Item }

// Queue orders entries by deadline and points one timer at the earliest.
// It is not safe for concurrent use: its owner's mutex guards it, and the
// fire function (run on the timer's goroutine) must take that mutex. The
// slot of a removed entry is cleared.
type Queue[T Entry] struct {
	h      []T
	timer  *time.Timer
	armed  time.Time // when the timer was last set to go off
	resets int       // timer calls, for tests
	fire   func()
	stop   bool
}

// Init sets the function the timer runs.
func (q *Queue[T]) Init(fire func()) { q.fire = fire }

// Len is the number of queued entries.
func (q *Queue[T]) Len() int { return len(q.h) }

// First returns the earliest entry, if any.
func (q *Queue[T]) First() (T, bool) {
	if len(q.h) == 0 {
		var zero T
		return zero, false
	}
	return q.h[0], true
}

// Set queues x (or moves it) to be due at at.
func (q *Queue[T]) Set(x T, at time.Time) {
	it := x.DeadlineItem()
	it.At = at
	if it.idx == 0 {
		q.h = append(q.h, x)
		it.idx = len(q.h)
		q.up(len(q.h) - 1)
		return
	}
	q.fix(it.idx - 1)
}

// Remove takes x out of the queue if it is there.
func (q *Queue[T]) Remove(x T) {
	it := x.DeadlineItem()
	if it.idx == 0 {
		return
	}
	i, last := it.idx-1, len(q.h)-1
	q.swap(i, last)
	var zero T
	q.h[last] = zero
	q.h = q.h[:last]
	it.idx = 0
	if i < last {
		q.fix(i)
	}
}

// fix restores the heap order after the entry at i changed.
func (q *Queue[T]) fix(i int) {
	if !q.down(i) {
		q.up(i)
	}
}

// Arm points the timer at the earliest deadline (relative to now), unless
// it is already set to go off in the future no later than that: then it
// is left alone, and fire, finding nothing due, arms it again. A stream
// of requests each pushing the earliest deadline later (one outstanding
// REQ request at a time) so costs no timer call per request.
func (q *Queue[T]) Arm(now time.Time) {
	if len(q.h) == 0 || q.stop {
		return
	}
	at := q.h[0].DeadlineItem().At
	if q.armed.After(now) && !at.Before(q.armed) {
		return // a timer never fires early: it is still pending
	}
	q.armed = at
	q.resets++
	d := at.Sub(now)
	if q.timer == nil {
		q.timer = time.AfterFunc(d, q.fire)
	} else {
		q.timer.Reset(d)
	}
}

// Stop stops the timer for good.
func (q *Queue[T]) Stop() {
	q.stop = true
	if q.timer != nil {
		q.timer.Stop()
	}
}

func (q *Queue[T]) less(i, j int) bool {
	return q.h[i].DeadlineItem().At.Before(q.h[j].DeadlineItem().At)
}

func (q *Queue[T]) swap(i, j int) {
	q.h[i], q.h[j] = q.h[j], q.h[i]
	q.h[i].DeadlineItem().idx = i + 1
	q.h[j].DeadlineItem().idx = j + 1
}

func (q *Queue[T]) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !q.less(i, p) {
			return
		}
		q.swap(i, p)
		i = p
	}
}

// down sifts the entry at i down; it reports whether it moved.
func (q *Queue[T]) down(i int) bool {
	i0 := i
	for {
		l := 2*i + 1
		if l >= len(q.h) {
			break
		}
		m := l
		if r := l + 1; r < len(q.h) && q.less(r, l) {
			m = r
		}
		if !q.less(m, i) {
			break
		}
		q.swap(i, m)
		i = m
	}
	return i > i0
}
