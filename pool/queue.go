package pool

// runner is a queued task: a bare func (funcTask, from Pool.Go) or a
// task with a handle (Submit, SubmitValue, groups).
type runner interface {
	// run executes the task on a worker, counts it in the pool's
	// metrics and completes its handle, even if it panics or calls
	// runtime.Goexit.
	run(p *Pool)
	// cancel completes the handle of a task discarded unrun.
	cancel(err error)
}

// chunkLen is the number of slots in a queue chunk (16 bytes each).
const chunkLen = 128

// chunk is a block of queue slots.
type chunk struct {
	slots [chunkLen]runner
	next  *chunk
}

// maxSpares is the number of empty chunks a queue keeps for reuse, so
// that a queue swinging between full and empty (a bounded queue under
// load) does not allocate: up to 16 KiB of empty slots.
const maxSpares = 8

// queue is a FIFO of runners kept in a linked list of fixed-size
// chunks: pushing never copies, and a chunk is dropped (or kept as a
// spare, empty) as soon as it has been read through. pop clears the
// slot it hands out, so the queue never keeps a task's closure, or
// anything it captured, alive once the task has left it. It is not
// safe for concurrent use.
type queue struct {
	head   *chunk // chunk read from; nil until the first push
	tail   *chunk // chunk written to
	hi     int    // next slot read in head
	ti     int    // next slot written in tail
	n      int    // number of items
	spares *chunk // empty chunks kept for reuse, linked by next
	nspare int    // number of spares
}

func (q *queue) len() int { return q.n }

func (q *queue) push(r runner) {
	switch {
	case q.tail == nil:
		q.head = new(chunk)
		q.tail = q.head
	case q.ti == chunkLen:
		c := q.spares
		if c != nil {
			q.spares, c.next = c.next, nil
			q.nspare--
		} else {
			c = new(chunk)
		}
		q.tail.next = c
		q.tail, q.ti = c, 0
	}
	q.tail.slots[q.ti] = r
	q.ti++
	q.n++
}

// pop removes and returns the oldest item; the queue must not be empty.
func (q *queue) pop() runner {
	r := q.head.slots[q.hi]
	q.head.slots[q.hi] = nil // the slot must not keep the task alive
	q.hi++
	q.n--
	switch {
	case q.n == 0: // then head == tail: reuse the chunk from its start
		q.hi, q.ti = 0, 0
	case q.hi == chunkLen: // read through (every slot now nil): move on
		c := q.head
		q.head, q.hi = c.next, 0
		c.next = nil
		if q.nspare < maxSpares {
			q.spares, c.next = c, q.spares
			q.nspare++
		}
	}
	return r
}
