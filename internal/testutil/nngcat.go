package testutil

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// NNGCat returns the path of the nngcat binary (NNG's reference peer).
// Without it the test fails when CI is set and is skipped otherwise, with a
// message naming the package to install.
func NNGCat(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("nngcat")
	if err == nil {
		return p
	}
	const msg = "nngcat not found: install Debian's nng-utils (apt-get install -y nng-utils)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg + "; CI is set, so interop tests may not be skipped")
	}
	t.Skip(msg)
	return ""
}

// Proc is a running nngcat.
type Proc struct {
	cmd    *exec.Cmd
	Stdout *bufio.Reader
	stderr *strings.Builder
	once   sync.Once
	waited chan struct{}
}

// StartNNGCat runs nngcat with args. The process is killed when the test
// ends, if it has not exited.
func StartNNGCat(t testing.TB, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(NNGCat(t), args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &Proc{cmd: cmd, Stdout: bufio.NewReaderSize(out, 1<<16), stderr: new(strings.Builder), waited: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(p.waited) }()
	t.Cleanup(p.Kill)
	return p
}

// Kill ends the process and waits for it.
func (p *Proc) Kill() {
	p.once.Do(func() { p.cmd.Process.Kill() })
	<-p.waited
}

// Wait waits for the process to exit by itself.
func (p *Proc) Wait() { <-p.waited }

// Exited is closed when the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.waited }

// Stderr is what the process wrote to its standard error so far; read it
// only after the process exited.
func (p *Proc) Stderr() string { return p.stderr.String() }

// ReadMsgpack reads one message in nngcat's --msgpack output format: a
// msgpack bin 8, 16 or 32 header and the bytes.
func ReadMsgpack(r *bufio.Reader) ([]byte, error) {
	tag, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	var n int
	switch tag {
	case 0xc4:
		b, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		n = int(b)
	case 0xc5, 0xc6:
		w := 2
		if tag == 0xc6 {
			w = 4
		}
		var h [4]byte
		if _, err := io.ReadFull(r, h[4-w:]); err != nil {
			return nil, err
		}
		n = int(binary.BigEndian.Uint32(h[:]))
	default:
		return nil, fmt.Errorf("msgpack: unexpected tag %#x", tag)
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return b, err
}
