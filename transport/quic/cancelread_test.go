package quic

import (
	"context"
	"errors"
	"io"
	"net/url"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/ferrymq/ferry/internal/selfsigned"
	"github.com/ferrymq/ferry/transport"
)

// waitFor bounds every blocking step; it is a hang guard, not a speed
// requirement.
const waitFor = 5 * time.Second

// quicPair dials a loopback QUIC pipe and returns both ends. The dialer
// has written "hello" on its stream, so the listener's stream exists
// (QUIC announces a stream only with its first frame) but is not yet
// accepted: that happens on the listener Conn's first Read.
func quicPair(t *testing.T) (dc, lc *Conn) {
	t.Helper()
	srv, cli, err := selfsigned.Configs()
	if err != nil {
		t.Fatal(err)
	}
	lu, _ := url.Parse("quic://127.0.0.1:0")
	tl, err := quicTransport{}.NewListener(lu, transport.Options{TLS: srv, HandshakeTimeout: waitFor})
	if err != nil {
		t.Fatal(err)
	}
	l := tl.(*listener)
	if err := l.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })

	du, _ := url.Parse(l.URL())
	td, err := quicTransport{}.NewDialer(du, transport.Options{TLS: cli, HandshakeTimeout: waitFor})
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan transport.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Errorf("Accept: %v", err)
		}
		accepted <- c
	}()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	d, err := td.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dc = d.Conn.(*Conn)
	t.Cleanup(func() { dc.Close() })
	a := <-accepted
	if a.Conn == nil {
		t.FailNow()
	}
	lc = a.Conn.(*Conn)
	// Close is a no-op once closed is set, so also end the connection
	// itself (the AcceptAfterClose case sets closed by hand).
	t.Cleanup(func() { lc.Close(); lc.qc.CloseWithError(0, "") })

	dc.SetWriteDeadline(time.Now().Add(waitFor))
	if _, err := dc.Write([]byte("hello")); err != nil {
		t.Fatalf("dialer Write: %v", err)
	}
	dc.SetWriteDeadline(time.Time{})
	return dc, lc
}

// wantLocalCancel fails unless err is the error quic-go gives a read
// after our own CancelRead(0): a StreamError with code 0, not Remote.
// Without the CancelRead the read instead returns data, the
// connection's close error, or a deadline.
func wantLocalCancel(t *testing.T, side, fn string, n int, err error) {
	t.Helper()
	var se *quicgo.StreamError
	if !errors.As(err, &se) || se.Remote || se.ErrorCode != 0 {
		t.Fatalf("%s Read after close = %d, %v; want the read side cancelled locally "+
			"(StreamError code 0, Remote false): %s did not CancelRead the stream", side, n, err, fn)
	}
}

// TestCloseCancelsRead pins the CancelRead(0) calls in Conn.Close and
// in Conn.stream (the stream accepted after Close ran), which release
// the stream's receive side and send STOP_SENDING, so that the peer's
// send side does not stay half-open.
func TestCloseCancelsRead(t *testing.T) {
	// Close on either end cancels the stream's read side. Close then
	// closes the connection at once, so whether STOP_SENDING beats
	// CONNECTION_CLOSE onto the wire is a race: assert quic-go's local
	// stream state, which is deterministic.
	for _, side := range []string{"dialer", "listener"} {
		t.Run("Close/"+side, func(t *testing.T) {
			dc, lc := quicPair(t)
			lc.SetReadDeadline(time.Now().Add(waitFor))
			buf := make([]byte, 5)
			if _, err := io.ReadFull(lc, buf); err != nil { // accepts the stream
				t.Fatalf("listener Read: %v", err)
			}
			c := dc
			if side == "listener" {
				c = lc
			}
			if err := c.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			// A read deadline bounds the read should the stream not have
			// been cancelled; it returns the cancel error regardless.
			c.st.Load().SetReadDeadline(time.Now().Add(waitFor))
			n, err := c.st.Load().Read(buf)
			wantLocalCancel(t, side, "Conn.Close", n, err)
		})
	}

	// The listener's stream is accepted after Close ran (the race that
	// Conn.stream handles; here Close's flag is set by hand so the
	// connection stays up). The stream must come back read-cancelled and
	// the peer must be told: its writes fail with STOP_SENDING code 0
	// rather than stalling on flow control with nobody reading.
	t.Run("AcceptAfterClose", func(t *testing.T) {
		dc, lc := quicPair(t)
		lc.closed.Store(true)
		lc.SetReadDeadline(time.Now().Add(waitFor))
		n, err := lc.Read(make([]byte, 5))
		wantLocalCancel(t, "listener", "Conn.stream (accept after Close)", n, err)

		st := dc.st.Load()
		st.SetWriteDeadline(time.Now().Add(waitFor))
		chunk := make([]byte, 64<<10)
		for {
			if _, err = st.Write(chunk); err != nil {
				break
			}
		}
		var se *quicgo.StreamError
		if !errors.As(err, &se) || !se.Remote || se.ErrorCode != 0 {
			t.Fatalf("peer Write = %v; want STOP_SENDING from the closed side "+
				"(StreamError code 0, Remote true): its send side was left half-open", err)
		}
	})
}
