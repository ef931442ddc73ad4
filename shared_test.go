package ferry_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/pair"
	"github.com/ferrymq/ferry/protocol/pair1"
	"github.com/ferrymq/ferry/protocol/pull"
	"github.com/ferrymq/ferry/protocol/push"
	"github.com/ferrymq/ferry/protocol/rep"
	"github.com/ferrymq/ferry/protocol/req"
)

// scribble overwrites b, as a receiver that reuses a message's storage
// does.
func scribble(b []byte) {
	for i := range b {
		b[i] = 0xEE
	}
}

// TestSharedBody sends one lent payload (SetBodyShared) again and again,
// per pattern, transport and size, while every receiver overwrites each
// body it gets and the sender appends to its emptied handle after each
// Send: the payload must come through every time and be unchanged at the
// end. A receiver handed the lent slice itself (inproc) or a sent handle
// still pointing into it would overwrite the payload, and the next
// message would arrive scribbled (and -race reports the writes).
func TestSharedBody(t *testing.T) {
	testutil.NoLeaks(t) // here: parallel subtests see each other's goroutines
	cases := []struct {
		name      string
		send, rcv newSock
		reply     bool // rcv answers each message with a shared reply
	}{
		{"pair0", pair.New, pair.New, false},
		{"pair1", pair1.New, pair1.New, false},
		{"pushpull", push.New, pull.New, false},
		{"reqrep", req.New, rep.New, true},
	}
	for _, tc := range cases {
		for _, scheme := range testutil.Transports {
			for _, size := range []int{64, 70000} {
				t.Run(fmt.Sprintf("%s/%s/%d", tc.name, scheme, size), func(t *testing.T) {
					t.Parallel()
					rs, ss := connectWith(t, scheme, tc.rcv, tc.send, ferry.SocketConfig{})
					sharedRun(t, rs, ss, tc.reply, size)
				})
			}
		}
	}
	// Every transport, both ways (the listener answers): TLS, gorilla
	// (whose client masks frames) and quic-go each take the body too.
	for _, ts := range tspecs {
		for _, size := range []int{64, 70000} {
			t.Run(fmt.Sprintf("pair1-both-ways/%s/%d", ts.scheme, size), func(t *testing.T) {
				t.Parallel()
				ls, ds, _ := newTenv(t, ts).pair(t, ferry.SocketConfig{}, ferry.SocketConfig{})
				sharedRun(t, ls, ds, true, size)
			})
		}
	}
}

// sharedRun sends lent payloads from ss to rs (and lent replies back if
// reply) and checks what arrives and what is left of the payloads.
func sharedRun(t *testing.T, rs, ss *ferry.Socket, reply bool, size int) {
	n := 2000
	if size > 1024 {
		n = 300
	}
	ctx := testutil.Ctx(t, 30*time.Second)
	payload := bytes.Repeat([]byte("lent"), size/4)
	answer := bytes.Repeat([]byte("back"), size/4)
	keep := bytes.Clone(payload)
	keepA := bytes.Clone(answer)

	errc := make(chan error, 1)
	go func() {
		var err error
		defer func() { errc <- err }()
		for i := range n {
			var q *ferry.Msg
			if q, err = rs.Recv(ctx); err != nil {
				return
			}
			if !bytes.Equal(q.Body, keep) {
				t.Errorf("message %d: got %.16q... (%d bytes)", i, q.Body, len(q.Body))
			}
			scribble(q.Body)
			if reply {
				q.SetBodyShared(answer)
				if err = rs.Send(ctx, q); err != nil {
					return
				}
				q.Body = append(q.Body[:0], "scribble"...)
			}
			q.Free()
		}
	}()
	m := ferry.NewMsg(0)
	defer m.Free()
	for i := range n {
		m.SetBodyShared(payload)
		if err := ss.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
		// A sent handle is empty; refilling it must not reach the payload.
		m.Body = append(m.Body[:0], "scribble"...)
		if reply {
			if err := ss.RecvMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m.Body, keepA) {
				t.Errorf("reply %d: got %.16q... (%d bytes)", i, m.Body, len(m.Body))
			}
			scribble(m.Body)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// Close waits for the writers: nothing reads the payloads after it.
	ss.Close()
	rs.Close()
	if !bytes.Equal(payload, keep) || !bytes.Equal(answer, keepA) {
		t.Error("a lent payload was written to")
	}
}

// TestSharedBodyHandle: what grows, refills or empties a message with a
// shared body gives it storage of its own and leaves the lent bytes be.
func TestSharedBodyHandle(t *testing.T) {
	keep := []byte("lent bytes, not to be written")
	steps := []struct {
		name string
		do   func(m *ferry.Msg)
	}{
		{"Reset then append", func(m *ferry.Msg) {
			m.Reset()
			m.Body = append(m.Body, "xxxx"...)
		}},
		{"append", func(m *ferry.Msg) { m.Body = append(m.Body, "x"...) }},
		{"Grow then write", func(m *ferry.Msg) {
			m.Grow(8)
			if !bytes.Equal(m.Body, keep) {
				t.Errorf("Grow lost the body: %q", m.Body)
			}
			scribble(m.Body)
		}},
		{"SetBody", func(m *ferry.Msg) { m.SetBody([]byte("other")) }},
		{"Clone then write", func(m *ferry.Msg) {
			c := m.Clone()
			scribble(c.Body)
			c.Free()
		}},
		{"Free", func(m *ferry.Msg) { m.Free() }},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			lent := bytes.Clone(keep)
			m := ferry.NewMsg(64)
			m.SetBodyShared(lent)
			if !bytes.Equal(m.Body, keep) || cap(m.Body) != len(lent) {
				t.Fatalf("SetBodyShared: body %q cap %d", m.Body, cap(m.Body))
			}
			st.do(m)
			m.Free()
			if !bytes.Equal(lent, keep) {
				t.Fatalf("lent bytes changed: %q", lent)
			}
		})
	}
}
