package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrymq/ferry/internal/catfmt"
	"github.com/ferrymq/ferry/internal/testutil"
)

// buildFerry builds this command into a temporary directory, with -race
// when the tests run with it: scripts run cat as a separate process, and
// so does this test.
func buildFerry(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ferry")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	args := []string{"build", "-o", bin}
	if testutil.Race {
		args = append(args, "-race")
	}
	if out, err := exec.Command(gobin, append(args, ".")...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// catExchange is one scenario: a listening side and a dialing side, each
// given the address and its format flags (nil: no format flag).
type catExchange struct {
	name   string
	proto  catOptID // skipped if ferry lacks it
	listen func(addr string, fmtFlags []string) []string
	dial   func(addr string, fmtFlags []string) []string
	// dataL and dataD are what each side sends (file contents).
	dataL, dataD []byte
	// wantL and wantD: does that side print the other's message?
	wantL, wantD bool
	// times is how often the listener gets the message (default once).
	times int
}

func catArgs(parts ...any) []string {
	var out []string
	for _, p := range parts {
		switch v := p.(type) {
		case string:
			out = append(out, v)
		case []string:
			out = append(out, v...)
		}
	}
	return out
}

func catExchanges(fileL, fileD, empty string) []catExchange {
	all := make([]byte, 256)
	rev := make([]byte, 256)
	for i := range all {
		all[i], rev[255-i] = byte(i), byte(i)
	}
	pair := func(p string, id catOptID) catExchange {
		// Both send, both print the other's message; each side's receive
		// ends after a second of silence.
		return catExchange{name: p, proto: id,
			listen: func(a string, f []string) []string {
				return catArgs("--"+p, "--listen", a, "-F", fileL, "--recv-timeout", "1", f)
			},
			dial: func(a string, f []string) []string {
				return catArgs("--"+p, "--dial", a, "--file="+fileD, "--recv-timeout=1", f)
			},
			dataL: all, dataD: rev, wantL: true, wantD: true}
	}
	return []catExchange{
		pair("pair0", optPair0),
		pair("pair1", optPair1),
		{name: "reqrep", proto: optReq0,
			listen: func(a string, f []string) []string {
				return catArgs("--rep0", "--listen", a, "--file", fileL, "--count", "1", f)
			},
			dial: func(a string, f []string) []string {
				return catArgs("--req", "--connect", a, "-F", fileD, f)
			},
			dataL: all, dataD: rev, wantL: true, wantD: true},
		{name: "reqrep-empty", proto: optReq0,
			listen: func(a string, f []string) []string {
				return catArgs("--rep", "--bind", a, "-F", empty, "-C1", f)
			},
			dial: func(a string, f []string) []string {
				return catArgs("--req0", "--dial", a, "--data=", f)
			},
			dataL: nil, dataD: nil, wantL: true, wantD: true},
		{name: "survey", proto: optSurveyor0,
			listen: func(a string, f []string) []string {
				return catArgs("--respondent", "--listen", a, "-F", fileL, "--count=1", f)
			},
			dial: func(a string, f []string) []string {
				return catArgs("--surveyor0", "--dial", a, "-F", fileD, f)
			},
			dataL: all, dataD: rev, wantL: true, wantD: true},
		{name: "pubsub", proto: optPub0,
			listen: func(a string, f []string) []string {
				return catArgs("--sub", "--listen", a, "--count", "1", f)
			},
			dial: func(a string, _ []string) []string {
				return catArgs("--pub", "--dial", a, "-F", fileD)
			},
			dataD: rev, wantL: true},
		{name: "pushpull", proto: optPush0,
			listen: func(a string, f []string) []string {
				return catArgs("--pull0", "--listen", a, "--count", "1", f)
			},
			dial: func(a string, _ []string) []string {
				return catArgs("--push0", "--dial", a, "-F", fileD)
			},
			dataD: rev, wantL: true},
		{name: "pushpull-count", proto: optPush0,
			listen: func(a string, f []string) []string {
				return catArgs("--pull0", "--listen", a, "--count", "3", f)
			},
			dial: func(a string, _ []string) []string {
				return catArgs("--push0", "--dial", a, "-F", fileD, "--count", "3")
			},
			dataD: rev, wantL: true, times: 3},
		{name: "bus", proto: optBus0,
			listen: func(a string, f []string) []string {
				return catArgs("--bus0", "--listen", a, "--count", "1", f)
			},
			dial: func(a string, f []string) []string {
				return catArgs("--bus", "--dial", a, "-F", fileD, "--recv-timeout", "1", f)
			},
			dataD: rev, wantL: true},
	}
}

// catFormats are the format flags tried, in their several spellings.
var catFormats = []struct {
	f     catfmt.Format
	flags []string
}{
	{catfmt.None, nil},
	{catfmt.None, []string{"--format", "no"}},
	{catfmt.ASCII, []string{"-A"}},
	{catfmt.Quoted, []string{"--quoted"}},
	{catfmt.Hex, []string{"--hex"}},
	{catfmt.Msgpack, []string{"--format=msgpack"}},
	{catfmt.Raw, []string{"--raw"}},
}

type catSide struct {
	out, errOut bytes.Buffer
	err         error
}

// runExchange runs the listening side with cmdL, waits until it accepts
// connections, runs the dialing side with cmdD, and waits for both.
func runExchange(t *testing.T, cmdL, cmdD []string, addr string) (l, d *catSide) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	l, d = new(catSide), new(catSide)
	start := func(cmd []string, s *catSide) *exec.Cmd {
		c := exec.CommandContext(ctx, cmd[0], cmd[1:]...)
		c.Stdout, c.Stderr = &s.out, &s.errOut
		if s.err = c.Start(); s.err != nil {
			return nil
		}
		return c
	}
	cl := start(cmdL, l)
	if cl == nil {
		return l, d
	}
	if err := waitListening(ctx, addr); err != nil {
		cancel()
		l.err = cl.Wait()
		t.Errorf("%v never listened: %v (exit: %v, stderr %q)", cmdL, err, l.err, l.errOut.String())
		return l, d
	}
	if cd := start(cmdD, d); cd != nil {
		d.err = cd.Wait()
	}
	l.err = cl.Wait()
	return l, d
}

// waitListening waits until addr accepts connections. For tcp it dials
// until it answers (the probe closes before the SP handshake). For ipc it
// waits for the socket file instead: NNG 1.5.2's ipc listener stops
// accepting, spinning a core, after a connection that closes before its
// handshake.
func waitListening(ctx context.Context, addr string) error {
	path, ipc := strings.CutPrefix(addr, "ipc://")
	for {
		var err error
		if ipc {
			if _, err = os.Stat(path); err == nil {
				time.Sleep(20 * time.Millisecond) // bind comes just before listen
				return nil
			}
		} else {
			var c net.Conn
			if c, err = net.DialTimeout("tcp", strings.TrimPrefix(addr, "tcp://"), time.Second); err == nil {
				c.Close()
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(5 * time.Millisecond):
		}
	}
}

var nextCatPort atomic.Int32

// catPort returns a free tcp port below the kernel's ephemeral range
// (32768 and up on Linux), so that no dialer's local port can take it
// between this check and nngcat's bind, as happens with port 0 ports when
// dozens of exchanges run at once.
func catPort(t *testing.T) int {
	nextCatPort.CompareAndSwap(0, int32(20000+rand.IntN(10000)))
	for range 1000 {
		p := int(nextCatPort.Add(1))
		if p >= 32000 {
			nextCatPort.Store(20000)
			continue
		}
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			l.Close()
			return p
		}
	}
	t.Fatal("no free tcp port in 20000..32000")
	return 0
}

// short abbreviates an output for an error message.
func short(b []byte) string {
	if len(b) > 48 {
		return fmt.Sprintf("%q... (%d bytes)", b[:48], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// TestCatInterop runs each exchange with nngcat on both sides (the
// reference), then with ferry cat on either side and on both, and
// requires every side's output to equal the reference byte for byte,
// and the reference to equal what catfmt prints for the data sent.
func TestCatInterop(t *testing.T) {
	nngcat := testutil.NNGCat(t)
	ferry := buildFerry(t)
	dir := testutil.SockDir(t)
	all := make([]byte, 256)
	rev := make([]byte, 256)
	for i := range all {
		all[i], rev[255-i] = byte(i), byte(i)
	}
	fileL, fileD, empty := filepath.Join(dir, "l.bin"), filepath.Join(dir, "d.bin"), filepath.Join(dir, "empty")
	for name, b := range map[string][]byte{fileL: all, fileD: rev, empty: nil} {
		if err := os.WriteFile(name, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	impls := map[string][]string{"nngcat": {nngcat}, "ferry": {ferry, "cat"}}
	combos := [][2]string{{"nngcat", "nngcat"}, {"ferry", "nngcat"}, {"nngcat", "ferry"}, {"ferry", "ferry"}}
	for ei, ex := range catExchanges(fileL, fileD, empty) {
		t.Run(ex.name, func(t *testing.T) {
			if catProtocols[ex.proto] == nil {
				t.Skipf("ferry has no %s yet", ex.name)
			}
			t.Parallel()
			// Every format and combination at once: the exchanges mostly
			// wait (receive timeouts, surveys), so they overlap well.
			type result struct {
				addrs [4]string
				outs  [4][2]*catSide
			}
			res := make([]result, len(catFormats))
			var wg sync.WaitGroup
			for fi, fm := range catFormats {
				for ci, combo := range combos {
					addr := "ipc://" + filepath.Join(dir, fmt.Sprintf("%s-%d-%d.sock", ex.name, fi, ci))
					if (ei+fi+ci)%2 == 0 { // half the exchanges over tcp, half over ipc
						addr = fmt.Sprintf("tcp://127.0.0.1:%d", catPort(t))
					}
					res[fi].addrs[ci] = addr
					cmdL := append(append([]string{}, impls[combo[0]]...), ex.listen(addr, fm.flags)...)
					cmdD := append(append([]string{}, impls[combo[1]]...), ex.dial(addr, fm.flags)...)
					wg.Add(1)
					go func() {
						defer wg.Done()
						l, d := runExchange(t, cmdL, cmdD, addr)
						res[fi].outs[ci] = [2]*catSide{l, d}
					}()
				}
			}
			wg.Wait()
			for fi, fm := range catFormats {
				t.Run(fmt.Sprintf("%d-%v", fi, fm.f), func(t *testing.T) {
					outs, addrs := res[fi].outs, res[fi].addrs
					for ci, combo := range combos {
						for side, s := range outs[ci] {
							role := [2]string{"listener", "dialer"}[side]
							if s.err != nil || s.errOut.Len() > 0 {
								t.Errorf("%s (%s) of %s<->%s on %s: %v, stderr %q", combo[side], role, combo[0], combo[1], addrs[ci], s.err, s.errOut.String())
							}
						}
					}
					// The reference must be what the formatter prints.
					want := [2][]byte{}
					if ex.wantL {
						for range max(ex.times, 1) {
							want[0] = catfmt.Append(want[0], fm.f, ex.dataD)
						}
					}
					if ex.wantD {
						want[1] = catfmt.Append(nil, fm.f, ex.dataL)
					}
					for side := range 2 {
						if got := outs[0][side].out.Bytes(); !bytes.Equal(got, want[side]) {
							t.Errorf("nngcat<->nngcat, side %d printed %s, catfmt %s", side, short(got), short(want[side]))
						}
					}
					for ci := 1; ci < len(combos); ci++ {
						for side := range 2 {
							ref, got := outs[0][side].out.Bytes(), outs[ci][side].out.Bytes()
							if !bytes.Equal(ref, got) {
								t.Errorf("%s<->%s on %s: %s side printed %s, nngcat<->nngcat %s",
									combos[ci][0], combos[ci][1], addrs[ci], [2]string{"listening", "dialing"}[side], short(got), short(ref))
							}
						}
					}
				})
			}
		})
	}
}
