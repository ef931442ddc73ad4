package ferry_test

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/pair"
)

// fill writes a message: sequence number, random bytes, CRC of both.
func fill(m *ferry.Msg, seq uint64, r *rand.Rand) {
	n := 12 + r.IntN(200)
	m.Grow(n)
	b := m.Body[:n]
	binary.BigEndian.PutUint64(b, seq)
	for i := 8; i < n-4; i++ {
		b[i] = byte(r.Uint32())
	}
	binary.BigEndian.PutUint32(b[n-4:], crc32.ChecksumIEEE(b[:n-4]))
	m.Body = b
}

func check(t *testing.T, b []byte, seq uint64) bool {
	if len(b) < 12 || binary.BigEndian.Uint64(b) != seq ||
		binary.BigEndian.Uint32(b[len(b)-4:]) != crc32.ChecksumIEEE(b[:len(b)-4]) {
		t.Errorf("message %d corrupted: % x", seq, b[:min(len(b), 16)])
		return false
	}
	return true
}

// TestDoubleReleaseConcurrent is the nbio #445 scenario: messages freed
// twice, freed after a successful send and freed through stale handles,
// at random, while 1,000,000 messages flow over 4 socket pairs. If a
// buffer ever reached the pool twice, two messages would share it and a
// checksum would break.
func TestDoubleReleaseConcurrent(t *testing.T) {
	testutil.NoLeaks(t)
	const pairsN, perPair = 4, 250000
	var wg sync.WaitGroup
	for p := range pairsN {
		ls, ds := connect(t, "inproc", pair.New, ferry.SocketConfig{})
		ctx := testutil.Ctx(t, 5*time.Minute)
		wg.Go(func() { // sender
			r := rand.New(rand.NewPCG(uint64(p), 1))
			m := ferry.NewMsg(256)
			for seq := range uint64(perPair) {
				if m.Body == nil && r.IntN(4) == 0 {
					m = ferry.NewMsg(256) // sometimes a fresh handle
				}
				fill(m, seq, r)
				if err := ds.Send(ctx, m); err != nil {
					t.Error(err)
					return
				}
				if r.IntN(8) == 0 {
					m.Free() // free after a successful send: must be a no-op
				}
			}
		})
		// Two freers release the same messages at the same moment, as a
		// user and a framework both closing one object would.
		a, b := make(chan *ferry.Msg, 64), make(chan *ferry.Msg, 64)
		for _, c := range []chan *ferry.Msg{a, b} {
			wg.Go(func() {
				for m := range c {
					m.Free()
				}
			})
		}
		wg.Go(func() { // receiver
			defer close(a)
			defer close(b)
			r := rand.New(rand.NewPCG(uint64(p), 2))
			var stale []*ferry.Msg
			for seq := range uint64(perPair) {
				m, err := ls.Recv(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if !check(t, m.Body, seq) {
					ls.Close() // unblock the sender
					ds.Close()
					return
				}
				switch r.IntN(8) {
				case 0:
					a <- m // concurrent double free
					b <- m
					continue
				case 1:
					m.Free()
					m.Free() // double free
				case 2:
					stale = append(stale, staleCopy(m)) // a second handle to the same buffer
					m.Free()
				default:
					m.Free()
				}
				if len(stale) > 16 {
					for _, s := range stale {
						s.Free() // free through handles whose buffers were reused
					}
					stale = stale[:0]
				}
			}
		})
	}
	wg.Wait()
}

// staleCopy copies a handle, as buggy code holding a Msg by value would,
// so that two handles name one buffer.
func staleCopy(m *ferry.Msg) *ferry.Msg {
	c := new(ferry.Msg)
	reflect.ValueOf(c).Elem().Set(reflect.ValueOf(m).Elem())
	return c
}

// TestFreeAfterSendKeepsPayload: the bytes that reach the peer are the
// ones sent, however the sender abuses its handle afterwards.
func TestFreeAfterSendKeepsPayload(t *testing.T) {
	testutil.NoLeaks(t)
	for _, scheme := range testutil.Transports {
		t.Run(scheme, func(t *testing.T) {
			ls, ds := connect(t, scheme, pair.New, ferry.SocketConfig{})
			ctx := testutil.Ctx(t, 10*time.Second)
			m := ferry.NewMsg(10)
			for i := range 100 {
				m.SetBody([]byte{byte(i), 1, 2, 3})
				if err := ds.Send(ctx, m); err != nil {
					t.Fatal(err)
				}
				m.Free()
				m.Free()
				junk := ferry.NewMsg(10) // likely gets the freed block back
				junk.SetBody([]byte{0xff, 0xff, 0xff, 0xff})
				defer junk.Free()
			}
			for i := range 100 {
				got, err := ls.Recv(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if string(got.Body) != string([]byte{byte(i), 1, 2, 3}) {
					t.Fatalf("message %d = %x", i, got.Body)
				}
				got.Free()
			}
		})
	}
}

// TestSendFailureLeavesMessage: a send that fails leaves the content with
// the caller.
func TestSendFailureLeavesMessage(t *testing.T) {
	testutil.NoLeaks(t)
	s, _ := pair.New(ferry.SocketConfig{SendQueueLen: 1})
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	s.SendBytes(ctx, []byte("fills the queue"))
	m := ferry.NewMsg(5)
	m.SetBody([]byte("mine"))
	if err := s.Send(ctx, m); err == nil {
		t.Fatal("send with no peer and a full queue succeeded")
	}
	if string(m.Body) != "mine" {
		t.Fatalf("body after failed send = %q", m.Body)
	}
	m.Free()
}
