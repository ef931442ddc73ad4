package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/stress"
	"github.com/ferrymq/ferry/protocol/bus"
	"github.com/ferrymq/ferry/protocol/pair1"
	"github.com/ferrymq/ferry/protocol/pub"
	"github.com/ferrymq/ferry/protocol/pull"
	"github.com/ferrymq/ferry/protocol/push"
	"github.com/ferrymq/ferry/protocol/rep"
	"github.com/ferrymq/ferry/protocol/req"
	"github.com/ferrymq/ferry/protocol/respondent"
	"github.com/ferrymq/ferry/protocol/sub"
	"github.com/ferrymq/ferry/protocol/surveyor"
)

const demoUsage = `Usage: ferry demo [-n count] [-pair]

A tour on loopback of every pattern: two PAIR1 sockets trade messages over
tcp and print their statistics; then REQ/REP with a Serve server, PUB/SUB
with topics over ipc, PUSH/PULL rotating over two pullers, a survey of
three respondents, and a three-node BUS.

Flags:
  -n count   PAIR1 messages each way (default 3)
  -pair      only the PAIR1 scene

Example:
  ferry demo
  ferry demo -n 10
`

func runDemo(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	n := fs.Int("n", 3, "messages each way")
	only1 := fs.Bool("pair", false, "only the PAIR1 scene")
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
	if *only1 {
		return nil
	}
	return tour(ctx, out)
}

// tour shows every other pattern on loopback, one short scene each.
func tour(ctx context.Context, out io.Writer) error {
	scenes := []struct {
		title string
		run   func(context.Context, io.Writer) error
	}{
		{"REQ/REP over tcp, served by Serve", demoReqRep},
		{"PUB/SUB over ipc, with topics", demoPubSub},
		{"PUSH/PULL over tcp, rotating over two pullers", demoPushPull},
		{"SURVEYOR/RESPONDENT over inproc, three respondents", demoSurvey},
		{"BUS over inproc, three nodes in a mesh", demoBus},
	}
	for _, sc := range scenes {
		fmt.Fprintf(out, "\n== %s ==\n", sc.title)
		if err := sc.run(ctx, out); err != nil {
			return fmt.Errorf("%s: %w", sc.title, err)
		}
	}
	return nil
}

func demoReqRep(ctx context.Context, out io.Writer) error {
	srv, cli, err := stress.Join(ctx, "tcp://127.0.0.1:0", rep.New, req.New, ferry.SocketConfig{})
	if err != nil {
		return err
	}
	defer srv.Close()
	defer cli.Close()
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- srv.Serve(sctx, func(_ context.Context, q, r *ferry.Msg) error {
			r.SetBody(append([]byte("echo: "), q.Body...))
			return nil
		}, ferry.ServeConfig{Workers: 4})
	}()
	for _, q := range []string{"ping", "are you there?"} {
		b, err := cli.Request(ctx, []byte(q))
		if err != nil {
			stop()
			return err
		}
		fmt.Fprintf(out, "request %q -> reply %q\n", q, b)
	}
	stop()
	return <-done
}

func demoPubSub(ctx context.Context, out io.Writer) error {
	dir, err := os.MkdirTemp("", "ferry-demo")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	pb, sb, err := stress.Join(ctx, "ipc://"+filepath.Join(dir, "pubsub.sock"), pub.New, sub.New, ferry.SocketConfig{})
	if err != nil {
		return err
	}
	defer pb.Close()
	defer sb.Close()
	if err := sub.Subscribe(sb, []byte("weather.")); err != nil {
		return err
	}
	// PUB drops what it publishes before the subscriber's pipe is up on
	// its side; wait for it.
	for deadline := time.Now().Add(5 * time.Second); pb.Stats().PipesOpen == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			return errors.New("the subscriber never connected")
		}
	}
	fmt.Fprintln(out, `subscriber takes topic "weather."`)
	for _, m := range []string{"weather.rain", "sports.final", "weather.sun"} {
		if err := pb.SendBytes(ctx, []byte(m)); err != nil {
			return err
		}
		fmt.Fprintf(out, "published %q\n", m)
	}
	for range 2 {
		b, err := sb.RecvBytes(ctx, nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "subscriber got %q\n", b)
	}
	return nil
}

func demoPushPull(ctx context.Context, out io.Writer) error {
	pl1, ps, err := stress.Join(ctx, "tcp://127.0.0.1:0", pull.New, push.New, ferry.SocketConfig{})
	if err != nil {
		return err
	}
	defer pl1.Close()
	defer ps.Close()
	pl2, err := pull.New(ferry.SocketConfig{})
	if err != nil {
		return err
	}
	defer pl2.Close()
	ln, err := pl2.Listen("tcp://127.0.0.1:0")
	if err != nil {
		return err
	}
	if _, err := ps.Dial(ctx, ln.URL()); err != nil {
		return err
	}
	for i := range 4 {
		if err := ps.SendBytes(ctx, fmt.Appendf(nil, "job %d", i)); err != nil {
			return err
		}
	}
	for range 2 {
		for i, p := range []*ferry.Socket{pl1, pl2} {
			b, err := p.RecvBytes(ctx, nil)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "puller %c took %q\n", 'A'+i, b)
		}
	}
	return nil
}

func demoSurvey(ctx context.Context, out io.Writer) error {
	sv, err := surveyor.New(ferry.SocketConfig{SurveyTime: 500 * time.Millisecond})
	if err != nil {
		return err
	}
	defer sv.Close()
	if _, err := sv.Listen("inproc://demo-survey"); err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	var served sync.WaitGroup
	defer served.Wait()
	defer stop()
	for i := range 3 {
		r, err := respondent.New(ferry.SocketConfig{})
		if err != nil {
			return err
		}
		defer r.Close()
		if _, err := r.Dial(ctx, "inproc://demo-survey"); err != nil {
			return err
		}
		served.Go(func() {
			r.Serve(sctx, func(_ context.Context, q, a *ferry.Msg) error {
				a.SetBody(fmt.Appendf(nil, "respondent %d votes yes", i))
				return nil
			}, ferry.ServeConfig{Workers: 1})
		})
	}
	// A dial returns once the respondent's end is up; the surveyor sends
	// only to the pipes it has, so wait for all three of its ends.
	for sv.Stats().PipesOpen < 3 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	if err := sv.SendBytes(ctx, []byte("shall we?")); err != nil {
		return err
	}
	fmt.Fprintln(out, `survey "shall we?" (500 ms to answer)`)
	for {
		b, err := sv.RecvBytes(ctx, nil)
		if errors.Is(err, ferry.ErrTimeout) {
			fmt.Fprintln(out, "survey time is up")
			return nil
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "answer: %q\n", b)
	}
}

func demoBus(ctx context.Context, out io.Writer) error {
	var nodes []*ferry.Socket
	for i := range 3 {
		n, err := bus.New(ferry.SocketConfig{})
		if err != nil {
			return err
		}
		defer n.Close()
		if _, err := n.Listen(fmt.Sprintf("inproc://demo-bus-%d", i)); err != nil {
			return err
		}
		for j := range i {
			if _, err := n.Dial(ctx, fmt.Sprintf("inproc://demo-bus-%d", j)); err != nil {
				return err
			}
		}
		nodes = append(nodes, n)
	}
	// A dial returns once the dialer's end is up; BUS sends only to the
	// pipes its node has, so wait until each node has both of its own.
	for _, n := range nodes {
		for n.Stats().PipesOpen < len(nodes)-1 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Millisecond):
			}
		}
	}
	if err := nodes[0].SendBytes(ctx, []byte("hello from node 0")); err != nil {
		return err
	}
	for i, n := range nodes[1:] {
		b, err := n.RecvBytes(ctx, nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "node %d got %q\n", i+1, b)
	}
	fmt.Fprintln(out, "node 0 gets nothing back: BUS never echoes")
	return nil
}
