package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/catfmt"
)

const catUsage = `Usage: ferry cat <proto> <addr>... [<fmt>] [<opts>...] [<src>]

nngcat's command line, over every ferry transport: a script written for
nngcat works unchanged, and prints the same bytes. See docs/cat.md.

<proto> must be one of:
  --req0                 (or alias --req)
  --rep0                 (or alias --rep)
  --pub0                 (or alias --pub)
  --sub0                 (or alias --sub)
  --push0                (or alias --push)
  --pull0                (or alias --pull)
  --surveyor0            (or alias --surveyor)
  --respondent0          (or alias --respondent)
  --pair0
  --pair1
  --pair                 (pair1; pair0 with --compat)
  --bus0                 (or alias --bus)

<addr> must be one or more of:
  --dial <url>           (or alias --connect <url>)
  --listen <url>         (or alias --bind <url>)
  --bind-local <port>    (or alias -L <port>: tcp://127.0.0.1:<port>)
  --connect-local <port> (or alias -l <port>)
  --bind-ipc <path>      (or alias -X <path>: ipc:///<path>)
  --connect-ipc <path>   (or alias -x <path>)

<fmt> may be one or none of (default: print nothing):
  --format <no|ascii|hex|msgpack|quoted|raw>
  --ascii                (or alias -A)  printable bytes, others as '.'
  --quoted               (or alias -Q)  a C string per line
  --hex                                 "\xNN..." per line
  --msgpack                             msgpack bin header, then the bytes
  --raw                                 the bytes as they came

<opts> may be any of:
  --subscribe <topic>    (only with --sub; repeatable; default: everything)
  --silent               (or alias -q)
  --verbose              (or alias -v)  print "Connected to:"/"Listening at:"
  --count <num>          (or alias -C <num>)
  --delay <secs>         (or alias -d <secs>)  wait before the first send
  --interval <secs>      (or alias -i <secs>)  send again every <secs>
  --recv-timeout <secs>
  --send-timeout <secs>
  --recv-maxsz <size>    (or alias -Z <size>; 0: no limit, which is 4 GiB;
                          default: ferry's 16 MiB)
  --compat               (pair0 for --pair, dial in the background, no --count)
  --async                (dial in the background)
  --insecure             (or alias -k)  do not verify the peer's certificate
  --cacert <file>        CA certificates (PEM) to verify the peer with
  --cert <file>          (or alias -E <file>) own certificate (PEM)
  --key <file>           its private key (PEM; default: in the --cert file)

<src> may be one of:
  --file <file>          (or alias -F <file>). Use - for standard input.
  --data <data>          (or alias -D <data>)

Options may be abbreviated to any unique prefix, and take their value as
"--opt value", "--opt=value" or, for short ones, "-Xvalue". Parsing stops
at the first argument that is not an option.

What it does, as nngcat:
  sub, pull             print what arrives
  rep, respondent       print each request; with --data/--file, answer it
  pub, push             send the data (--count times, every --interval)
  req, surveyor         send, print the replies; repeat with --interval
  pair, bus             with data as req; without, as sub
  A round with --interval ends after <secs>; --count stops after <num>
  rounds (receivers: <num> messages). After sending, cat waits 200 ms and
  until everything sent has been written to a peer (bounded by
  --send-timeout), then exits.

Where nngcat hangs or fails, ferry cat differs:
  --count without --interval on req, surveyor, pair and bus: each round
  waits for its answer (REQ: the reply; SURVEYOR: until the survey ends;
  PAIR, BUS: one message), bounded by --recv-timeout. nngcat computes a
  negative receive timeout there, and waits forever or fails with
  "Cannot set recv timeout: Invalid argument".

Errors print one line on standard error and exit 1. --help exits 0.

Examples:
  ferry cat --rep0 --listen tcp://127.0.0.1:5555 --data pong --ascii
  ferry cat --req0 --dial tcp://127.0.0.1:5555 --data ping --ascii
  ferry cat --sub --bind-local 5556 --subscribe weather. --quoted
  ferry cat --pub --connect-local 5556 --data weather.sunny --interval 1
  echo hello | ferry cat --push0 --dial ipc:///tmp/q.sock --file -
  ferry cat --surveyor0 --listen ws://0.0.0.0:8080/s --data who? --hex
`

func runCat(args []string, out io.Writer) error { return catMain(args, os.Stdin, out) }

// catMain runs `ferry cat` with args (the command's name excluded),
// reading --file - from stdin and printing to out.
func catMain(args []string, stdin io.Reader, out io.Writer) error {
	c, err := parseCat(args, stdin)
	switch {
	case errors.Is(err, errCatHelp):
		_, err = io.WriteString(out, catUsage)
		return err
	case errors.Is(err, errCatVersion):
		_, err = fmt.Fprintf(out, "ferry %s\n", ferryVersion())
		return err
	case err != nil:
		return err
	}
	open := catProtocols[c.proto]
	if open == nil {
		return catFail("Protocol not supported.")
	}
	cfg := ferry.SocketConfig{}
	switch {
	case c.recvMax == 0:
		cfg.RecvMaxSize = 1 << 32 // "no limit": ferry's largest
	case c.recvMax > 0:
		cfg.RecvMaxSize = int(c.recvMax)
	}
	s, err := open(cfg)
	if err != nil {
		return failf("Unable to open socket: %s", nngText(err))
	}
	defer s.Close()
	for _, t := range c.topics {
		if err := catSubscribe(s, t); err != nil {
			return failf("Unable to subscribe to topic %s: %s", t, nngText(err))
		}
	}
	w := bufio.NewWriter(out)
	defer w.Flush()
	r := &catRun{c: c, s: s, out: w}
	defer r.msg.Free()
	if err := r.connect(); err != nil {
		return err
	}
	if err := r.loop(); err != nil {
		return err
	}
	w.Flush()
	return r.drain()
}

// catRun is one run of the command; it is used by one goroutine.
type catRun struct {
	c   *catConfig
	s   *ferry.Socket
	out *bufio.Writer
	buf []byte    // formatted output, reused
	msg ferry.Msg // received messages, reused
}

func (r *catRun) connect() error {
	for _, a := range r.c.addrs {
		tc, err := r.tlsConfig(a)
		if err != nil {
			return failf("Unable to configure TLS: %s", err)
		}
		cc := ferry.ConnConfig{TLS: tc}
		if a.listen {
			l, err := r.s.NewListener(a.url, ferry.ListenerConfig{ConnConfig: cc})
			if err != nil {
				return failf("Unable to create listener for %s: %s", a.url, nngText(err))
			}
			if err := l.Start(); err != nil {
				return failf("Unable to listen on %s: %s", a.url, nngText(err))
			}
			if r.c.verbose == optVerbose {
				fmt.Fprintf(r.out, "Listening at: %s\n", boundURL(a.url, l.Addr()))
				r.out.Flush()
			}
			continue
		}
		d, err := r.s.NewDialer(a.url, ferry.DialerConfig{ConnConfig: cc, Background: r.c.async})
		if err != nil {
			return failf("Unable to create dialer for %s: %s", a.url, nngText(err))
		}
		if err := d.Start(context.Background()); err != nil {
			if errors.Is(err, syscall.ENOENT) { // an ipc path nobody listens on
				return failf("Unable to dial on %s: Connection refused", a.url)
			}
			return failf("Unable to dial on %s: %s", a.url, nngText(err))
		}
		if r.c.verbose == optVerbose {
			fmt.Fprintf(r.out, "Connected to: %s\n", a.url)
			r.out.Flush()
		}
	}
	return nil
}

// loop runs what nngcat runs for the protocol.
func (r *catRun) loop() error {
	switch r.c.proto {
	case optSub0, optPull0:
		return r.recvLoop()
	case optRep0, optRespondent0:
		if !r.c.hasData {
			return r.recvLoop()
		}
		return r.respLoop()
	case optPush0, optPub0:
		return r.sendLoop()
	case optBus0, optPair0, optPair1:
		if !r.c.hasData {
			return r.recvLoop()
		}
		return r.sendRecv()
	case optReq0, optSurveyor0:
		return r.sendRecv()
	}
	return catFail("Protocol handling unimplemented.")
}

// drain lets what Send accepted reach a peer before the socket closes:
// nngcat's send returns only once a pipe took the message, ferry's as
// soon as it is queued. --send-timeout bounds the wait.
func (r *catRun) drain() error {
	ctx := context.Background()
	if r.c.sendTO > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.c.sendTO)
		defer cancel()
	}
	if err := r.s.Shutdown(ctx); err != nil && !errors.Is(err, ferry.ErrClosed) {
		return failf("Send error: %s", nngText(err))
	}
	return nil
}

// sockRecvTimeout is the socket's receive timeout: nngcat sets it only
// for a --recv-timeout above 0. Negative: none.
func (r *catRun) sockRecvTimeout() time.Duration {
	if r.c.recvTO > 0 {
		return r.c.recvTO
	}
	return -1
}

// recv waits up to d (negative: no limit) for a message and returns its
// body, valid until the next recv.
func (r *catRun) recv(d time.Duration) ([]byte, error) {
	ctx := context.Background()
	if d >= 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	if err := r.s.RecvMsg(ctx, &r.msg); err != nil {
		return nil, err
	}
	return r.msg.Body, nil
}

func (r *catRun) send() error {
	ctx := context.Background()
	if r.c.sendTO > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.c.sendTO)
		defer cancel()
	}
	err := r.waitPeer(ctx)
	if err == nil {
		err = r.s.SendBytes(ctx, r.c.data)
	}
	if err != nil {
		return failf("Send error: %s", nngText(err))
	}
	return nil
}

// waitPeer waits, for the protocols whose nngcat send blocks until a peer
// takes the message (PAIR, PUSH, REQ), until the socket has a pipe. ferry's
// Send queues at once instead, which would start nngcat's receive and
// interval clocks before any peer is there. ferry has no pipe event to
// wait on, so this polls the socket's statistics.
func (r *catRun) waitPeer(ctx context.Context) error {
	switch r.c.proto {
	case optPair0, optPair1, optPush0, optReq0:
	default:
		return nil
	}
	if r.s.Stats().PipesOpen > 0 {
		return nil
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for r.s.Stats().PipesOpen == 0 {
		select {
		case <-ctx.Done():
			return ferry.CtxErr(ctx)
		case <-tick.C:
		}
	}
	return nil
}

func (r *catRun) print(body []byte) {
	r.buf = catfmt.Append(r.buf[:0], r.c.format, body)
	r.out.Write(r.buf)
	r.out.Flush()
}

// endOfRound: a receive timed out, or the protocol has nothing more to
// give (a REQ got its reply, a survey ended).
func endOfRound(err error) bool {
	return errors.Is(err, ferry.ErrTimeout) || errors.Is(err, ferry.ErrState)
}

func (r *catRun) recvLoop() error {
	for iters := 0; ; {
		if r.c.count > 0 && iters >= r.c.count {
			return nil
		}
		body, err := r.recv(r.sockRecvTimeout())
		iters++
		switch {
		case err == nil:
			r.print(body)
		case endOfRound(err):
			return nil
		default:
			return failf("Receive error: %s", nngText(err))
		}
	}
}

func (r *catRun) respLoop() error {
	for iters := 0; ; {
		body, err := r.recv(r.sockRecvTimeout())
		if err != nil {
			return failf("Receive error: %s", nngText(err))
		}
		r.print(body)
		if err := r.send(); err != nil {
			return err
		}
		iters++
		if r.c.count > 0 && iters >= r.c.count {
			break
		}
	}
	time.Sleep(200 * time.Millisecond)
	return nil
}

func (r *catRun) sendLoop() error {
	if !r.c.hasData {
		return catFail("No data to send (specify with --data or --file)")
	}
	time.Sleep(r.c.delay)
	for iters := 0; ; {
		start := time.Now()
		if err := r.send(); err != nil {
			return err
		}
		delta := time.Since(start)
		iters++
		if (r.c.interval < 0 && r.c.count == 0) || (r.c.count > 0 && iters >= r.c.count) {
			break
		}
		// Keep the interval steady: subtract the time the send took.
		if delta < r.c.interval {
			time.Sleep(r.c.interval - delta)
		}
	}
	time.Sleep(200 * time.Millisecond) // as nngcat: let queues drain
	return nil
}

func (r *catRun) sendRecv() error {
	if !r.c.hasData {
		return catFail("No data to send (specify with --data or --file)")
	}
	time.Sleep(r.c.delay)
	for iters := 0; ; {
		start := time.Now()
		if err := r.send(); err != nil {
			return err
		}
		if r.c.interval < 0 && r.c.count == 0 {
			return r.recvLoop() // one round, no limit but the timeouts
		}
		if err := r.recvRound(start); err != nil {
			return err
		}
		delta := time.Since(start)
		iters++
		if r.c.count > 0 && iters >= r.c.count {
			return nil
		}
		if delta < r.c.interval {
			time.Sleep(r.c.interval - delta)
		}
	}
}

// recvRound prints what arrives in one round of sendRecv. With
// --interval the round lasts the interval (or --recv-timeout if shorter).
// Without it (only --count) nngcat's timeout goes negative; ferry waits
// for the round's answer instead: REQ's reply, the survey's end, or one
// message for PAIR and BUS, each wait bounded by --recv-timeout.
func (r *catRun) recvRound(start time.Time) error {
	for {
		var body []byte
		var err error
		if r.c.interval >= 0 {
			expire := r.c.interval - time.Since(start)
			if r.c.recvTO >= 0 && expire > r.c.recvTO {
				expire = r.c.recvTO
			}
			// A round already over still takes what has arrived: with
			// 1 ms (not 0) a queued message wins the protocol's select.
			body, err = r.recv(max(expire, time.Millisecond))
		} else {
			body, err = r.recv(r.c.recvTO)
		}
		switch {
		case err == nil:
			r.print(body)
			if r.c.interval < 0 && r.c.proto != optReq0 && r.c.proto != optSurveyor0 {
				return nil
			}
		case endOfRound(err):
			return nil
		default:
			return failf("Cannot receive: %s", nngText(err))
		}
	}
}

// tlsConfig builds the TLS settings for a, as nngcat's flags set them,
// for the schemes that use TLS; nil for the others.
func (r *catRun) tlsConfig(a catAddr) (*tls.Config, error) {
	u, err := url.Parse(a.url)
	if err != nil || !usesTLS(u.Scheme) {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if r.c.cert != nil {
		key := r.c.key
		if key == nil {
			key = r.c.cert // nngcat: the key is in the certificate file
		}
		pair, err := tls.X509KeyPair(r.c.cert, key)
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	if r.c.cacert != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(r.c.cacert) {
			return nil, errors.New("no certificate found in --cacert file")
		}
		tc.RootCAs = pool
		tc.ClientCAs = pool
	}
	if a.listen {
		if r.c.cacert != nil && !r.c.insecure {
			tc.ClientAuth = tls.VerifyClientCertIfGiven
		}
	} else {
		tc.ServerName = u.Hostname()
		tc.InsecureSkipVerify = r.c.insecure
	}
	return tc, nil
}

func usesTLS(scheme string) bool {
	return strings.HasPrefix(scheme, "tls+") || strings.HasPrefix(scheme, "wss") || strings.HasPrefix(scheme, "quic")
}

// boundURL is the listening URL with a port 0 replaced by the one bound,
// as nngcat prints it.
func boundURL(addr string, bound net.Addr) string {
	ta, ok := bound.(*net.TCPAddr)
	if !ok {
		return addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Port() != "0" {
		return addr
	}
	u.Host = net.JoinHostPort(u.Hostname(), fmt.Sprint(ta.Port))
	return u.String()
}

// nngText names err as nng_strerror would where the two agree, and
// otherwise gives ferry's own message.
func nngText(err error) string {
	for _, m := range []struct {
		target error
		text   string
	}{
		{ferry.ErrTimeout, "Timed out"},
		{ferry.ErrClosed, "Object closed"},
		{ferry.ErrState, "Incorrect state"},
		{ferry.ErrNotSupported, "Not supported"},
		{ferry.ErrMsgSize, "Message too large"},
		{syscall.ECONNREFUSED, "Connection refused"},
		{syscall.ECONNRESET, "Connection reset"},
		{syscall.ECONNABORTED, "Connection aborted"},
		{syscall.EADDRINUSE, "Address in use"},
		{syscall.EADDRNOTAVAIL, "Address invalid"},
		{syscall.EACCES, "Permission denied"},
		{syscall.EPERM, "Permission denied"},
	} {
		if errors.Is(err, m.target) {
			return m.text
		}
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return "Address invalid"
	}
	return err.Error()
}

func ferryVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
