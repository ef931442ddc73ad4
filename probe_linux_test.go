//go:build linux

package ferry

import (
	"testing"
	"time"

	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/transport"
)

// TestPeek: kernelInput and peerGone look at a tcp connection's kernel
// side without consuming: nothing, a byte, the byte read, the peer gone.
func TestPeek(t *testing.T) {
	testutil.NoLeaks(t)
	a, b := tcpPair(t)
	p := &Pipe{sc: newStreamConn(transport.Conn{Conn: b}, 0)}
	steps := []struct {
		name        string
		do          func()
		input, gone bool
	}{
		{"idle", func() {}, false, false},
		{"a byte sent", func() { a.Write([]byte{1}) }, true, false},
		{"the byte read", func() { b.Read(make([]byte, 1)) }, false, false},
		{"peer closed", func() { a.Close() }, true, true},
	}
	for _, st := range steps {
		st.do()
		// The kernel delivers loopback bytes at once, but allow for a
		// slow machine before calling a "yes" missing.
		deadline := time.Now().Add(2 * time.Second)
		for st.input && !p.kernelInput() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if got := p.kernelInput(); got != st.input {
			t.Errorf("%s: kernelInput = %v, want %v", st.name, got, st.input)
		}
		if got := p.peerGone(); got != st.gone {
			t.Errorf("%s: peerGone = %v, want %v", st.name, got, st.gone)
		}
	}
	if p := (&Pipe{sc: &streamConn{}}); p.kernelInput() || p.peerGone() {
		t.Error("a connection it cannot peek at reports input or its end")
	}
}
