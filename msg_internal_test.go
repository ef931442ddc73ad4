package ferry

import (
	"errors"
	"runtime"
	"strings"
	"testing"
)

func TestBlockGeneration(t *testing.T) {
	b, gen := getBlock(100)
	if !b.release(gen) {
		t.Fatal("first release refused")
	}
	if b.release(gen) {
		t.Fatal("second release with the same generation accepted")
	}
	// Whoever gets the block next holds a new generation; the stale one
	// can never release it from under them.
	b2, gen2 := getBlock(100)
	if b2 == b && gen2 == gen {
		t.Fatal("reused block kept its generation")
	}
	if b2 == b && b2.release(gen) {
		t.Fatal("stale generation released a reused block")
	}
	if !b2.release(gen2) {
		t.Fatal("owner's release refused")
	}
}

func TestClassOf(t *testing.T) {
	tests := []struct{ n, class int }{
		{0, 0}, {1, 0}, {64, 0}, {65, 1}, {128, 1}, {129, 2}, {4 << 20, numClasses - 1}, {4<<20 + 1, -1},
	}
	for _, tt := range tests {
		if c := classOf(tt.n); c != tt.class {
			t.Errorf("classOf(%d) = %d, want %d", tt.n, c, tt.class)
		}
		if b, _ := getBlock(tt.n); len(b.buf) < tt.n {
			t.Errorf("getBlock(%d) has %d bytes", tt.n, len(b.buf))
		}
	}
}

// TestStaleHandle: a copy of a handle (what a bug in user code or ours
// would produce) cannot free the block after its owner freed it and
// someone else took it.
func TestStaleHandle(t *testing.T) {
	m := NewMsg(100)
	m.SetBody([]byte("first owner"))
	staleBlk, staleGen := m.blk, m.gen
	m.Free()
	// Drain the pool until we get the same block back, as a new owner.
	var owner *Msg
	for range 1000 {
		o := NewMsg(100)
		if o.blk == staleBlk {
			owner = o
			break
		}
	}
	if owner == nil {
		// The pool dropped it (GC, or -race's random drops): the stale
		// release must still be refused.
		if staleBlk.release(staleGen) {
			t.Fatal("stale handle released a freed block again")
		}
		return
	}
	owner.SetBody([]byte("second owner"))
	if staleBlk.release(staleGen) {
		t.Fatal("stale handle released a block that has a new owner")
	}
	if string(owner.Body) != "second owner" {
		t.Fatalf("owner's body changed: %q", owner.Body)
	}
	owner.Free()
}

func TestFreeIdempotent(t *testing.T) {
	m := NewMsg(10)
	m.SetBody([]byte("x"))
	blk, gen := m.blk, m.gen
	m.Free()
	m.Free()
	m.Free()
	if blk.gen.Load() != gen+1 {
		t.Fatalf("block released %d times", blk.gen.Load()-gen)
	}
}

func TestSendMovesContent(t *testing.T) {
	m := NewMsg(10)
	m.SetBody([]byte("payload"))
	m.SetHeader([]byte{1, 2, 3, 4})
	im, err := m.takeForSend()
	if err != nil {
		t.Fatal(err)
	}
	if m.Body != nil || m.Header != nil || m.blk != nil {
		t.Fatal("handle still holds content after send")
	}
	if string(im.Body) != "payload" || string(im.Header) != "\x01\x02\x03\x04" {
		t.Fatalf("moved content %q %x", im.Body, im.Header)
	}
	if &im.Header[0] != &im.hbuf[0] {
		t.Fatal("header still points into the sender's handle")
	}
	m.Free() // free after send: a no-op
	if string(im.Body) != "payload" {
		t.Fatal("free after send touched the sent content")
	}
	if _, err := m.takeForSend(); !errors.Is(err, ErrState) {
		t.Fatalf("send of an empty sent handle = %v", err)
	}
	m.giveBack(im) // a failed send returns the content
	if string(m.Body) != "payload" || string(m.Header) != "\x01\x02\x03\x04" {
		t.Fatal("giveBack lost content")
	}
	m.Free()
}

func TestJoinHeader(t *testing.T) {
	m := NewMsg(10)
	m.SetBody([]byte("body"))
	m.AppendHeaderU32(0x01020304)
	blk := m.blk
	m.joinHeader()
	if string(m.Body) != "\x01\x02\x03\x04body" || len(m.Header) != 0 {
		t.Fatalf("joined %q header %x", m.Body, m.Header)
	}
	if m.blk != blk {
		t.Fatal("join copied although headroom was there")
	}
	// A user slice with no headroom is copied.
	u := &Msg{Body: []byte("plain")}
	u.SetHeader([]byte{9})
	u.joinHeader()
	if string(u.Body) != "\x09plain" {
		t.Fatalf("joined %q", u.Body)
	}
	m.Free()
	u.Free()
}

func mustPanic(t *testing.T, wantOp, wantEarlier string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		e, ok := r.(*MisuseError)
		if !ok {
			t.Fatalf("want a *MisuseError panic, got %v", r)
		}
		if e.Op != wantOp || e.Earlier != wantEarlier {
			t.Fatalf("misuse %q after %q, want %q after %q", e.Op, e.Earlier, wantOp, wantEarlier)
		}
		// Both places are named: the earlier call and this one.
		if !strings.Contains(e.First, "msg_internal_test.go") || !strings.Contains(e.Now, "msg_internal_test.go") {
			t.Fatalf("stacks do not name both places:\nfirst:\n%s\nnow:\n%s", e.First, e.Now)
		}
		if !strings.Contains(e.Error(), wantEarlier+" at:") {
			t.Fatalf("message: %s", e.Error())
		}
	}()
	f()
}

func TestDebugMode(t *testing.T) {
	debugMsgs.Store(true)
	defer debugMsgs.Store(false)
	t.Run("double free", func(t *testing.T) {
		m := NewMsg(1)
		m.Free()
		mustPanic(t, "Free", "freed", m.Free)
	})
	t.Run("use after free", func(t *testing.T) {
		m := NewMsg(1)
		m.Free()
		mustPanic(t, "use", "freed", func() { m.SetBody([]byte("x")) })
	})
	t.Run("send after free", func(t *testing.T) {
		m := NewMsg(1)
		m.Free()
		mustPanic(t, "Send", "freed", func() { m.takeForSend() })
	})
	t.Run("free after send", func(t *testing.T) {
		m := NewMsg(1)
		im, _ := m.takeForSend()
		defer recycle(im)
		mustPanic(t, "Free", "sent", m.Free)
	})
	t.Run("reuse after send is fine", func(t *testing.T) {
		m := NewMsg(1)
		im, _ := m.takeForSend()
		recycle(im)
		m.SetBody([]byte("again"))
		m.Free()
	})
}

// TestLargeBlocksLIFO: a large block released is the next one handed out
// (it is still in the caches), a stack holds at most lifoBytes, small
// classes have none, and what a stack holds is freed by a garbage
// collection.
func TestLargeBlocksLIFO(t *testing.T) {
	const size = 64 << 10
	c := classOf(size)
	st := stackOf(c)
	if st == nil || stackOf(classOf(1<<(lifoMinShift-1))) != nil || stackOf(classOf(1<<lifoMinShift)) == nil {
		t.Fatal("stacks for the wrong classes")
	}
	for st.pop() != nil { // start empty
	}
	var held []*block
	for range 2 * lifoBytes / size {
		b, _ := getBlock(size)
		held = append(held, b)
	}
	for _, b := range held {
		b.release(b.gen.Load())
	}
	st.mu.Lock()
	n := len(st.s)
	st.mu.Unlock()
	if n != lifoBytes/size {
		t.Errorf("stack holds %d blocks, want %d (lifoBytes)", n, lifoBytes/size)
	}
	for i := range 3 {
		want := held[lifoBytes/size-1-i] // the last ones that fit, newest first
		if b, _ := getBlock(size); b != want {
			t.Fatalf("take %d: not the block released last", i)
		}
	}
	b, _ := getBlock(size)
	b.release(b.gen.Load())
	if b2, _ := getBlock(size); b2 != b {
		t.Fatal("a block released and taken again is not the same one")
	}
	b.release(b.gen.Load())
	held, b = nil, nil
	runtime.GC()
	st.mu.Lock()
	live := 0
	for _, w := range st.s {
		if w.Value() != nil {
			live++
		}
	}
	st.mu.Unlock()
	if live > 0 {
		t.Errorf("%d blocks in the stack survived a collection", live)
	}
	if st.pop() != nil {
		t.Error("pop after a collection handed out a block")
	}
}
