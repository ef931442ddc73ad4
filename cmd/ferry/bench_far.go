package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/selfsigned"
	"github.com/ferrymq/ferry/protocol/pair1"
	"github.com/ferrymq/ferry/protocol/pub"
	"github.com/ferrymq/ferry/protocol/pull"
	"github.com/ferrymq/ferry/protocol/push"
	"github.com/ferrymq/ferry/protocol/rep"
	"github.com/ferrymq/ferry/protocol/req"
	"github.com/ferrymq/ferry/protocol/sub"
)

// Every measurement has a far side, which listens, and a near side, which
// dials and measures. The far side runs in this process (--procs 1) or in
// a child process, `ferry bench-peer` (--procs 2); the near side is the
// same code either way.
//
// Far-side roles:
//
//	echo    pair: PAIR1 sends back what it gets; reqrep: a REP Serve echo
//	        with 8 workers; pushpull: PULL (url 0) -> PUSH (url 1);
//	        pubsub: SUB (url 0) -> PUB (url 1); raw: frames echoed
//	source  pair (PAIR1), pushpull (PUSH), pubsub and fanout (PUB), raw:
//	        sends size-byte messages as fast as it can
//	dialers one REQ socket that opens --n pipes to --url and sends
//	        nothing (the idle-pipe memory measurement)

// benchFar is a running far side.
type benchFar struct {
	urls []string
	cert []byte // the far side's certificate (DER) when the transport has TLS
	stop func()
}

// benchReqrepWorkers serves the reqrep throughput's contexts in flight.
const benchReqrepWorkers = 8

// benchStartFar starts a far side in this process.
func benchStartFar(ctx context.Context, o *benchOpts, pattern, role, tr string, size int) (*benchFar, error) {
	ctx, cancel := context.WithCancel(ctx)
	var (
		wg      sync.WaitGroup
		sockets []*ferry.Socket
		closers []io.Closer
	)
	f := &benchFar{}
	f.stop = func() {
		cancel()
		for _, s := range sockets {
			s.Close()
		}
		for _, c := range closers {
			c.Close()
		}
		wg.Wait()
	}
	fail := func(err error) (*benchFar, error) {
		f.stop()
		return nil, err
	}
	payload := make([]byte, size)
	if pattern == "raw" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fail(err)
		}
		closers = append(closers, ln)
		f.urls = []string{"tcp://" + ln.Addr().String()}
		var mu sync.Mutex
		serve := func(c net.Conn) {
			switch {
			case role == "echo":
				benchRawEcho(c, size)
			case size >= benchRawVecMin:
				// Large frames: 16 at a time (1 MiB at 64 KiB) in one
				// writev, headers and payloads uncopied, as ferry's writer
				// batches them: a sound floor.
				var h [8]byte
				binary.BigEndian.PutUint64(h[:], uint64(len(payload)))
				const batch = 16
				for {
					b := make(net.Buffers, 0, 2*batch)
					for range batch {
						b = append(b, h[:], payload)
					}
					if _, err := b.WriteTo(c); err != nil {
						break
					}
				}
			default:
				w := bufio.NewWriterSize(c, 64<<10)
				for benchRawWrite(w, payload) == nil {
				}
			}
		}
		// Each connection is served on its own goroutine: the raw
		// fan-out floor dials --fanout of them.
		wg.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				closers = append(closers, c)
				mu.Unlock()
				wg.Go(func() { <-ctx.Done(); c.Close() }) // even if stop ran before the accept
				wg.Go(func() { serve(c) })
			}
		})
		// stop closes the listener; the conn closes when ctx ends.
		f.stop = func() {
			cancel()
			ln.Close()
			mu.Lock()
			for _, c := range closers {
				c.Close()
			}
			mu.Unlock()
			wg.Wait()
		}
		return f, nil
	}
	cfg := benchCfg(size, ferry.DefaultSendQueueLen)
	var lc ferry.ListenerConfig
	if benchHasTLS(tr) {
		srv, _, err := selfsigned.Configs()
		if err != nil {
			return fail(err)
		}
		lc.TLS = srv
		f.cert = srv.Certificates[0].Certificate[0]
	}
	listen := func(mk func(ferry.SocketConfig) (*ferry.Socket, error)) (*ferry.Socket, error) {
		s, err := mk(cfg)
		if err != nil {
			return nil, err
		}
		sockets = append(sockets, s)
		l, err := s.NewListener(benchAddr(o, tr), lc)
		if err == nil {
			err = l.Start()
		}
		if err != nil {
			return nil, err
		}
		f.urls = append(f.urls, l.URL())
		return s, nil
	}
	mks := map[string][2]func(ferry.SocketConfig) (*ferry.Socket, error){
		"pair/echo":       {pair1.New, nil},
		"reqrep/echo":     {rep.New, nil},
		"pushpull/echo":   {pull.New, push.New},
		"pubsub/echo":     {benchNewSub, pub.New},
		"pair/source":     {pair1.New, nil},
		"pushpull/source": {push.New, nil},
		"pubsub/source":   {pub.New, nil},
		"fanout/source":   {pub.New, nil},
	}
	mk, ok := mks[pattern+"/"+role]
	if !ok {
		return fail(fmt.Errorf("no far side %q for %s", role, pattern))
	}
	in, err := listen(mk[0])
	if err != nil {
		return fail(err)
	}
	out := in
	if mk[1] != nil {
		if out, err = listen(mk[1]); err != nil {
			return fail(err)
		}
	}
	switch {
	case pattern == "reqrep":
		wg.Go(func() { benchServe(ctx, in, benchReqrepWorkers) })
	case role == "echo":
		wg.Go(func() { benchEcho(ctx, in, out) })
	default:
		wg.Go(func() { benchStream(ctx, in, payload, o.copySends, nil) })
	}
	return f, nil
}

func benchNewSub(c ferry.SocketConfig) (*ferry.Socket, error) {
	s, err := sub.New(c)
	if err == nil {
		err = sub.Subscribe(s, nil)
	}
	return s, err
}

func benchHasTLS(tr string) bool { return tr == "tls+tcp" || tr == "wss" || tr == "quic" }

// benchStream sends payload from one reused Msg until a send fails or
// wait says stop: lent (SetBodyShared), as the raw floor writes one
// buffer, or copied into the message each time with copySends.
func benchStream(ctx context.Context, s *ferry.Socket, payload []byte, copySends bool, wait func(sent int64) bool) {
	m := ferry.NewMsg(len(payload))
	defer m.Free()
	for sent := int64(1); ; sent++ {
		if copySends {
			m.SetBody(payload)
		} else {
			m.SetBodyShared(payload)
		}
		if s.Send(ctx, m) != nil {
			return
		}
		if wait != nil && !wait(sent) {
			return
		}
	}
}

// benchRawVecMin: the raw source writes frames this large with writev,
// many per call, instead of one per flush of its 64 KiB buffer (which
// copied each payload once more than ferry does and wrote one frame per
// system call, so ferry outran the floor at 64 KiB); the raw reader
// reads them through a small buffer, straight into its frame buffer.
const benchRawVecMin = 16 << 10

func benchRawEcho(c net.Conn, size int) {
	rd, w := bufio.NewReaderSize(c, 64<<10), bufio.NewWriterSize(c, 64<<10)
	buf := make([]byte, size)
	for {
		var err error
		if buf, err = benchRawRead(rd, buf); err != nil {
			return
		}
		if benchRawWrite(w, buf) != nil || w.Flush() != nil {
			return
		}
	}
}

// benchPeerEnv marks a child started as the far side: the test binary
// runs the bench-peer command when it sees it (see main_test.go).
const benchPeerEnv = "FERRY_BENCH_PEER"

// benchPeerExe is the program started as the far side: this one.
var benchPeerExe = os.Executable

// benchStartPeer starts the far side in a child process, `ferry
// bench-peer`, and waits for its ready line.
func benchStartPeer(ctx context.Context, pattern, role, tr string, size int, extra ...string) (*benchFar, error) {
	exe, err := benchPeerExe()
	if err != nil {
		return nil, err
	}
	args := append([]string{"bench-peer", "--pattern", pattern, "--role", role, "--transport", tr,
		"--size", fmt.Sprint(size)}, extra...)
	line, stop, err := benchStartChild(ctx, exe, args, []string{benchPeerEnv + "=1"})
	if err != nil {
		return nil, err
	}
	f := &benchFar{stop: stop}
	fields := strings.Fields(line)
	if len(fields) < 2 || fields[0] != "ready" {
		stop()
		return nil, fmt.Errorf("bench-peer said %q", line)
	}
	if fields[1] != "-" {
		if f.cert, err = base64.StdEncoding.DecodeString(fields[1]); err != nil {
			stop()
			return nil, fmt.Errorf("bench-peer certificate: %v", err)
		}
	}
	f.urls = fields[2:]
	return f, nil
}

// benchStartChild starts exe, waits (15 s at most) for the first line it
// prints and returns it with a stop function: stop closes the child's
// stdin, which tells it to end, and kills it if it has not within 5 s.
func benchStartChild(ctx context.Context, exe string, args, env []string) (string, func(), error) {
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &benchLockedBuf{b: &stderr}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	exited := make(chan struct{})
	var waitErr error
	lines := make(chan string, 1)
	go func() {
		rd := bufio.NewReader(stdout)
		l, _ := rd.ReadString('\n')
		lines <- strings.TrimSpace(l)
		io.Copy(io.Discard, rd)
		waitErr = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	select {
	case l := <-lines:
		if l != "" {
			return l, stop, nil
		}
		<-exited
		return "", nil, fmt.Errorf("%s %s: %v: %s", exe, args[0], waitErr, strings.TrimSpace(stderr.String()))
	case <-time.After(15 * time.Second):
		stop()
		return "", nil, fmt.Errorf("%s %s: not ready after 15s: %s", exe, args[0], strings.TrimSpace(stderr.String()))
	case <-ctx.Done():
		stop()
		return "", nil, ctx.Err()
	}
}

type benchLockedBuf struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (w *benchLockedBuf) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.b.Len() > 64<<10 {
		return len(p), nil
	}
	return w.b.Write(p)
}

// runBenchPeer is `ferry bench-peer`, the far side in its own process:
// it prints "ready <certificate|-> <url>..." and runs until its stdin
// ends. Not listed in help: ferry bench starts it.
func runBenchPeer(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bench-peer", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	pattern := fs.String("pattern", "pair", "")
	role := fs.String("role", "echo", "")
	tr := fs.String("transport", "tcp", "")
	size := fs.Int("size", 64, "")
	n := fs.Int("n", 0, "")
	url := fs.String("url", "", "")
	copySends := fs.Bool("copy", false, "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *size < 1 || *size > benchMaxSize {
		return fmt.Errorf("--size %d: want 1..%d", *size, benchMaxSize)
	}
	if prefix := os.Getenv("FERRY_BENCH_PEER_CPUPROFILE"); prefix != "" { // for profiling the far side
		stop, err := benchProfile(fmt.Sprintf("%s.%s-%s-%d.%d", prefix, *pattern, *role, *size, os.Getpid()))
		if err != nil {
			return err
		}
		defer stop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var f *benchFar
	var err error
	if *role == "dialers" {
		f, err = benchStartDialers(ctx, *url, *n)
	} else {
		o := &benchOpts{copySends: *copySends}
		if *tr == "ipc" {
			d, err := os.MkdirTemp("", "ferrybench")
			if err != nil {
				return err
			}
			defer os.RemoveAll(d)
			o.tmpDir = d
		}
		f, err = benchStartFar(ctx, o, *pattern, *role, *tr, *size)
	}
	if err != nil {
		return err
	}
	defer f.stop()
	cert := "-"
	if f.cert != nil {
		cert = base64.StdEncoding.EncodeToString(f.cert)
	}
	fmt.Fprintf(out, "ready %s %s\n", cert, strings.Join(f.urls, " "))
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// benchStartDialers opens n idle pipes from one REQ socket to url.
func benchStartDialers(ctx context.Context, url string, n int) (*benchFar, error) {
	if n < 1 || url == "" {
		return nil, errors.New("dialers: want --n >= 1 and --url")
	}
	s, err := req.New(ferry.SocketConfig{})
	if err != nil {
		return nil, err
	}
	for i := range n {
		d, err := s.NewDialer(url, ferry.DialerConfig{Background: true})
		if err == nil {
			err = d.Start(ctx)
		}
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("dialer %d: %v", i, err)
		}
	}
	return &benchFar{stop: func() { s.Close() }}, nil
}
