package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/catfmt"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/pair1"
	"github.com/ferrymq/ferry/protocol/pub"
	"github.com/ferrymq/ferry/protocol/req"
)

// tokens runs nextCatOpt over args and lists "name=value" per option, or
// the error.
func tokens(args []string) ([]string, error) {
	var out []string
	for i := 0; ; {
		spec, val, next, done, err := nextCatOpt(args, i)
		if err != nil {
			return out, err
		}
		if done {
			return out, nil
		}
		if spec.arg {
			out = append(out, spec.name+"="+val)
		} else {
			out = append(out, spec.name)
		}
		i = next
	}
}

func TestCatOptionParser(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want []string // canonical option names, "name=value" with arguments
		err  string
	}{
		{[]string{"--req0"}, []string{"req0"}, ""},
		{[]string{"--req"}, []string{"req0"}, ""},  // unique prefix
		{[]string{"--sub"}, []string{"sub"}, ""},   // exact beats sub0, subscribe
		{[]string{"--pair"}, []string{"pair"}, ""}, // exact beats pair0, pair1
		{[]string{"--surv", "--resp"}, []string{"surveyor0", "respondent0"}, ""},
		{[]string{"--dial", "tcp://h:1"}, []string{"dial=tcp://h:1"}, ""},
		{[]string{"--dial=tcp://h:1"}, []string{"dial=tcp://h:1"}, ""},
		{[]string{"--dial:tcp://h:1"}, []string{"dial=tcp://h:1"}, ""},
		{[]string{"--di=x"}, []string{"dial=x"}, ""},
		{[]string{"--data="}, []string{"data="}, ""},
		{[]string{"--data", "-h"}, []string{"data=-h"}, ""}, // a value may start with '-'
		{[]string{"-D", "x", "-Dy", "-F-"}, []string{"data=x", "data=y", "file=-"}, ""},
		{[]string{"-C1", "-C", "2", "-Z0"}, []string{"count=1", "count=2", "recv-maxsz=0"}, ""},
		{[]string{"-L", "80", "-l80", "-X", "p", "-xp"}, []string{"bind-local=80", "connect-local=80", "bind-ipc=p", "connect-ipc=p"}, ""},
		{[]string{"-A", "-Q", "-v", "-q", "-k", "-V", "-h"}, []string{"ascii", "quoted", "verbose", "silent", "insecure", "version", "help"}, ""},
		{[]string{"--recv-t", "1", "--send-t=2"}, []string{"recv-timeout=1", "send-timeout=2"}, ""},
		{[]string{"--bind-l", "5", "--connect-i", "q"}, []string{"bind-local=5", "connect-ipc=q"}, ""},
		{[]string{"--req0", "stop", "--bogus"}, []string{"req0"}, ""}, // parsing stops at a non-option
		{[]string{"--req0", "-", "--bogus"}, []string{"req0"}, ""},    // and after a lone "-"
		{[]string{""}, nil, ""},
		{[]string{"--re"}, nil, "Option --re is ambiguous (specify in full)."},
		{[]string{"--su"}, nil, "Option --su is ambiguous (specify in full)."},
		{[]string{"--pai"}, nil, "Option --pai is ambiguous (specify in full)."},
		{[]string{"--"}, nil, "Option -- is ambiguous (specify in full)."},
		{[]string{"--h"}, nil, "Option --h is ambiguous (specify in full)."}, // help, hex
		{[]string{"--bogus"}, nil, "Option --bogus is invalid."},
		{[]string{"--req00"}, nil, "Option --req00 is invalid."},
		{[]string{"--ascii=1"}, nil, "Option --ascii=1 is invalid."},
		{[]string{"-y"}, nil, "Option -y is invalid."},
		{[]string{"-vq"}, nil, "Option -vq is invalid."}, // no clustering
		{[]string{"--dial"}, nil, "Option --dial requires argument."},
		{[]string{"-req0"}, nil, "Option -req0 is invalid."},
		{[]string{"--req0", "-Z"}, []string{"req0"}, "Option -Z requires argument."},
	}
	for _, tt := range tests {
		got, err := tokens(tt.args)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("%q: error %v, want %q", tt.args, err, tt.err)
			}
		} else if err != nil {
			t.Errorf("%q: %v", tt.args, err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: parsed %q, want %q", tt.args, got, tt.want)
		}
	}
}

// TestCatConfig checks what parseCat makes of whole command lines.
func TestCatConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "data")
	if err := os.WriteFile(file, []byte("from\x00file"), 0o600); err != nil {
		t.Fatal(err)
	}
	parse := func(stdin string, args ...string) *catConfig {
		t.Helper()
		c, err := parseCat(args, strings.NewReader(stdin))
		if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		return c
	}
	c := parse("", "--pair", "-L", "5555", "--connect-ipc", "tmp/x.sock", "--bind=inproc://a", "-F", file,
		"--count=3", "-i", "2", "-d1", "--send-timeout", "4", "--recv-timeout=5", "-Z", "0", "-Q", "-v")
	want := &catConfig{
		proto:  optPair1,
		addrs:  []catAddr{{true, "tcp://127.0.0.1:5555"}, {false, "ipc:///tmp/x.sock"}, {true, "inproc://a"}},
		format: catfmt.Quoted, formatOK: true, verbose: optVerbose, count: 3,
		delay: time.Second, interval: 2 * time.Second, sendTO: 4 * time.Second, recvTO: 5 * time.Second,
		recvMax: 0, data: []byte("from\x00file"), hasData: true,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	if c := parse("", "--pair", "--compat", "--dial", "tcp://h:1"); c.proto != optPair0 || !c.async {
		t.Errorf("--pair --compat: proto %v async %v, want pair0 and async", c.proto, c.async)
	}
	if c := parse("", "--sub", "--dial", "tcp://h:1"); len(c.topics) != 1 || len(c.topics[0]) != 0 {
		t.Errorf("--sub without --subscribe: topics %q, want one empty topic", c.topics)
	}
	if c := parse("", "--sub", "--subscribe", "a", "--subscribe=b", "--dial", "tcp://h:1"); !reflect.DeepEqual(c.topics, [][]byte{[]byte("a"), []byte("b")}) {
		t.Errorf("topics %q", c.topics)
	}
	if c := parse("piped\x00in", "--push", "--dial", "tcp://h:1", "--file", "-"); string(c.data) != "piped\x00in" {
		t.Errorf("--file -: data %q", c.data)
	}
	if c := parse("", "--rep", "-x", "s", "--format", "no"); c.format != catfmt.None || !c.formatOK {
		t.Errorf("--format no: %v %v", c.format, c.formatOK)
	}
	if c := parse("", "--req", "-l", "1", "--data", ""); !c.hasData || len(c.data) != 0 {
		t.Errorf("--data '': hasData %v", c.hasData)
	}
	if c := parse("", "--rep", "-l", "1"); c.interval != -1 || c.recvTO != -1 || c.sendTO != -1 || c.recvMax != -1 || c.format != catfmt.None || c.formatOK {
		t.Errorf("defaults: %+v", c)
	}
	for _, a := range [][]string{{"--help"}, {"-h"}, {"--hel"}, {"--req0", "--help", "--bogus"}} {
		if _, err := parseCat(a, nil); !errors.Is(err, errCatHelp) {
			t.Errorf("%q: %v, want help", a, err)
		}
	}
	if _, err := parseCat([]string{"-V"}, nil); !errors.Is(err, errCatVersion) {
		t.Errorf("-V: %v", err)
	}
}

// TestCatErrors: bad command lines and unreachable addresses end with one
// line on stderr and exit 1, before anything is printed on stdout. The
// messages are nngcat's.
func TestCatErrors(t *testing.T) {
	t.Parallel()
	refused := fmt.Sprintf("tcp://127.0.0.1:%d", testutil.FreePort(t)) // nobody listens
	nosock := "ipc://" + filepath.Join(testutil.SockDir(t), "none.sock")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{}, "No address specified."},
		{[]string{"--dial", refused}, "No protocol specified."},
		{[]string{"--bogus"}, "Option --bogus is invalid."},
		{[]string{"--re", "--dial", refused}, "Option --re is ambiguous (specify in full)."},
		{[]string{"--req0", "--dial"}, "Option --dial requires argument."},
		{[]string{"--req0", "--rep0"}, "Only one protocol may be specified."},
		{[]string{"--pair", "--pair1"}, "Only one protocol may be specified."},
		{[]string{"-A", "--hex"}, "Format may be specified only once."},
		{[]string{"--format", "text"}, "Invalid format specified."},
		{[]string{"-D", "a", "-F", "b"}, "Data (--file, --data) may be specified only once."},
		{[]string{"-F", "/nonexistent/file"}, "Cannot open file /nonexistent/file: No such file or directory"},
		{[]string{"--cert", "/nonexistent/c"}, "Cannot open file /nonexistent/c: No such file or directory"},
		{[]string{"-C", "x"}, "Integer argument expected."},
		{[]string{"-C", ""}, "Empty integer argument."},
		{[]string{"-C", "2147483648"}, "Integer argument too large."},
		{[]string{"-C", "99999999999999999999999"}, "Integer argument too large."},
		{[]string{"-i", "86401"}, "Integer argument too large."},
		{[]string{"-L", "65537"}, "Integer argument too large."},
		{[]string{"--pair1", "--compat", "-l", "1"}, "Protocol does not support --compat."},
		{[]string{"--pair0", "--compat", "--async", "-l", "1"}, "Options --async and --compat are incompatible."},
		{[]string{"--pair0", "--compat", "-C", "1", "-l", "1"}, "Options --count and --compat are incompatible."},
		{[]string{"--req0", "--subscribe", "a", "-l", "1"}, "Protocol does not support --subscribe."},
		{[]string{"--sub0", "-D", "a", "-l", "1"}, "Protocol does not support --file or --data."},
		{[]string{"--pull0", "-i", "1", "-l", "1"}, "Protocol does not support --interval."},
		{[]string{"--push0", "-A", "-D", "a", "-l", "1"}, "Protocol does not support --format options."},
		{[]string{"--pub0", "-l", "1"}, "Protocol requires either --file or --data."},
		{[]string{"--surveyor0", "-l", "1"}, "Protocol requires either --file or --data."},
		{[]string{"--rep0", "-i", "1", "-l", "1"}, "Protocol does not support --interval."},
		{[]string{"--bus0", "-i", "1", "-l", "1"}, "Option --interval requires either --file or --data."},
		{[]string{"--req0", "-D", "x", "--dial", refused}, "Unable to dial on " + refused + ": Connection refused"},
		{[]string{"--pair1", "--dial", nosock}, "Unable to dial on " + nosock + ": Connection refused"},
		{[]string{"--pair1", "--dial", "nope://x"}, "Unable to create dialer for nope://x: "},
		{[]string{"--pair1", "--listen", "tcp://127.0.0.1"}, "Unable to create listener for tcp://127.0.0.1: "},
		// Unknown scheme until transport/tls registers; refused after.
		{[]string{"--pair1", "--dial", "tls+tcp://127.0.0.1:1", "-k"}, "Unable to "},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		code := run(append([]string{"cat"}, tt.args...), &out, &errOut)
		if code != 1 || !strings.HasPrefix(errOut.String(), "ferry cat: "+tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want 1, %q", tt.args, code, errOut.String(), tt.want)
		}
		if strings.Count(errOut.String(), "\n") != 1 || out.Len() != 0 {
			t.Errorf("%q: stderr %q is not one line, or stdout %q not empty", tt.args, errOut.String(), out.String())
		}
	}
}

func TestCatHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"help", "cat"}, {"cat", "--help"}, {"cat", "-h"}, {"cat", "--req0", "--hel"}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 0 || out.String() != catUsage || errOut.Len() != 0 {
			t.Errorf("%q: exit %d, stdout %d bytes, stderr %q", args, code, out.Len(), errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"cat", "-V"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "ferry ") {
		t.Errorf("-V: exit %d, %q %q", code, out.String(), errOut.String())
	}
	for _, want := range []string{"--req0", "--bus0", "--recv-maxsz", "--count", "Examples:", "nngcat"} {
		if !strings.Contains(catUsage, want) {
			t.Errorf("usage lacks %q", want)
		}
	}
}

// catInProc runs catMain in a goroutine; the returned func waits for it.
func catInProc(t *testing.T, stdin string, args ...string) func() (string, error) {
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- catMain(args, strings.NewReader(stdin), &out) }()
	return func() (string, error) {
		select {
		case err := <-done:
			return out.String(), err
		case <-time.After(20 * time.Second):
			t.Fatalf("cat %q did not finish", args)
			return "", nil
		}
	}
}

// TestCatCountWithoutInterval: where nngcat's receive timeout goes
// negative (--count without --interval), ferry cat waits for one answer
// per round; three rounds print three answers and exit 0.
func TestCatCountWithoutInterval(t *testing.T) {
	t.Parallel()
	ctx := testutil.Ctx(t, 20*time.Second)
	peer, err := pair1.New(ferry.SocketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	l, err := peer.Listen(testutil.Addr(t, "ipc"))
	if err != nil {
		t.Fatal(err)
	}
	wait := catInProc(t, "", "--pair1", "--dial", l.URL(), "--data", "ping", "--count", "3", "-Q", "-v")
	for i := range 3 {
		b, err := peer.RecvBytes(ctx, nil)
		if err != nil || string(b) != "ping" {
			t.Fatalf("round %d: %q, %v", i, b, err)
		}
		if err := peer.SendBytes(ctx, fmt.Appendf(nil, "pong %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	out, err := wait()
	want := "Connected to: " + l.URL() + "\n\"pong 0\"\n\"pong 1\"\n\"pong 2\"\n"
	if err != nil || out != want {
		t.Errorf("got %q, %v; want %q", out, err, want)
	}
}

// TestCatServe: a REP cat answers --count requests with --file - (stdin)
// and prints each request; a SUB cat prints only its topics.
func TestCatServe(t *testing.T) {
	t.Parallel()
	ctx := testutil.Ctx(t, 20*time.Second)
	addr := testutil.Addr(t, "ipc")
	wait := catInProc(t, "answer\n", "--rep", "--bind", addr, "-F", "-", "-C", "2", "-A")
	cli, err := req.New(ferry.SocketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	d, err := cli.NewDialer(addr, ferry.DialerConfig{Background: true, ReconnectMin: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"q1\x00", "q2\n"} {
		if b, err := cli.Request(ctx, []byte(q)); err != nil || string(b) != "answer\n" {
			t.Fatalf("request %q: %q, %v", q, b, err)
		}
	}
	if out, err := wait(); err != nil || out != "q1.q2." {
		t.Errorf("rep printed %q, %v", out, err)
	}

	addr = testutil.Addr(t, "ipc")
	wait = catInProc(t, "", "--sub", "--listen", addr, "--subscribe", "a", "--subscribe=c", "-C", "3", "--quoted")
	p, err := pub.New(ferry.SocketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if d, err = p.NewDialer(addr, ferry.DialerConfig{Background: true, ReconnectMin: 5 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for p.Stats().PipesOpen == 0 { // PUB drops what it sends with no peer
		time.Sleep(5 * time.Millisecond)
	}
	for _, m := range []string{"a1", "b1", "c1", "b2", "a2", "a3"} {
		if err := p.SendBytes(ctx, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := wait(); err != nil || out != "\"a1\"\n\"c1\"\n\"a2\"\n" {
		t.Errorf("sub printed %q, %v", out, err)
	}
}

// FuzzCatOptions: the option tokenizer never panics, always moves
// forward, and accepts only known options.
func FuzzCatOptions(f *testing.F) {
	for _, s := range []string{"--req0\x00--dial\x00tcp://h:1", "-D\x00-h", "--\x00-", "--d=x\x00-Zq", "-\x00--re", "--data:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args := strings.Split(s, "\x00")
		for i := 0; ; {
			spec, _, next, done, err := nextCatOpt(args, i)
			if err != nil || done {
				return
			}
			if next <= i || next > len(args) || spec == nil {
				t.Fatalf("%q at %d: next %d, spec %v", args, i, next, spec)
			}
			i = next
		}
	})
}
