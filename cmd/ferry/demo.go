package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/protocol/pair1"
)

const demoUsage = `Usage: ferry demo [-n count]

A tour on loopback: two PAIR1 sockets, one listening on a free tcp port
and one dialing it, trade messages; then both print their statistics.

Flags:
  -n count   messages each way (default 3)

Example:
  ferry demo
  ferry demo -n 10
`

func runDemo(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	n := fs.Int("n", 3, "messages each way")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%v (see: ferry help demo)", err)
	}
	if *n < 1 || *n > 1000000 {
		return fmt.Errorf("-n %d: must be in 1..1000000", *n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	alice, err := pair1.New(ferry.SocketConfig{})
	if err != nil {
		return err
	}
	defer alice.Close()
	bob, err := pair1.New(ferry.SocketConfig{})
	if err != nil {
		return err
	}
	defer bob.Close()

	l, err := alice.Listen("tcp://127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "== PAIR1 over tcp ==\nalice listens on %s\n", l.URL())
	if _, err := bob.Dial(ctx, l.URL()); err != nil {
		return err
	}
	fmt.Fprintf(out, "bob dialed %s: handshake done (SP header, protocol 0x11 both ways)\n\n", l.URL())

	var m ferry.Msg // one message, reused: steady state allocates nothing
	for i := 1; i <= *n; i++ {
		for _, dir := range []struct {
			from, to         *ferry.Socket
			fromName, toName string
		}{{bob, alice, "bob", "alice"}, {alice, bob, "alice", "bob"}} {
			text := fmt.Sprintf("hello %d from %s", i, dir.fromName)
			m.SetBody([]byte(text))
			start := time.Now()
			if err := dir.from.Send(ctx, &m); err != nil {
				return err
			}
			if err := dir.to.RecvMsg(ctx, &m); err != nil {
				return err
			}
			if string(m.Body) != text {
				return errors.New("message changed on the way")
			}
			fmt.Fprintf(out, "%-5s -> %-5s %q (%d bytes on the wire, %v)\n",
				dir.fromName, dir.toName, m.Body, 8+4+len(m.Body), time.Since(start).Round(time.Microsecond))
		}
	}
	m.Free()

	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "socket\tpipes\tmsgs in\tmsgs out\tbytes in\tbytes out\tdropped\tprotocol errors\t")
	for _, s := range []struct {
		name string
		s    *ferry.Socket
	}{{"alice", alice}, {"bob", bob}} {
		st := s.s.Stats()
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", s.name, st.PipesOpen, st.MsgsIn, st.MsgsOut,
			st.BytesIn, st.BytesOut, st.Dropped, st.ProtocolErrors)
	}
	tw.Flush()
	bob.Close()
	alice.Close()
	fmt.Fprintln(out, "\nboth sockets closed; every goroutine they started has exited.")
	return nil
}
