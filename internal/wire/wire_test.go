package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"testing"
)

func TestParseHeader(t *testing.T) {
	tests := []struct {
		name  string
		in    []byte
		proto uint16
		err   error
	}{
		{"pair1", []byte{0, 'S', 'P', 0, 0, 0x11, 0, 0}, 0x11, nil},
		{"req0", []byte{0, 'S', 'P', 0, 0, 0x30, 0, 0}, 0x30, nil},
		{"magic", []byte{1, 'S', 'P', 0, 0, 0x11, 0, 0}, 0, ErrBadMagic},
		{"magic2", []byte{0, 's', 'P', 0, 0, 0x11, 0, 0}, 0, ErrBadMagic},
		{"version", []byte{0, 'S', 'P', 1, 0, 0x11, 0, 0}, 0, ErrBadVersion},
		{"reserved6", []byte{0, 'S', 'P', 0, 0, 0x11, 1, 0}, 0, ErrBadReserved},
		{"reserved7", []byte{0, 'S', 'P', 0, 0, 0x11, 0, 1}, 0, ErrBadReserved},
		{"short", []byte{0, 'S', 'P'}, 0, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseHeader(tt.in)
			if !errors.Is(err, tt.err) || p != tt.proto {
				t.Fatalf("ParseHeader(%x) = %#x, %v; want %#x, %v", tt.in, p, err, tt.proto, tt.err)
			}
		})
	}
}

func TestAppendHeader(t *testing.T) {
	got := AppendHeader(nil, 0x3031)
	want := []byte{0x00, 0x53, 0x50, 0x00, 0x30, 0x31, 0x00, 0x00}
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendHeader = %x, want %x", got, want)
	}
}

func TestPrefix(t *testing.T) {
	tests := []struct {
		name string
		f    Framing
		in   []byte
		max  uint64
		n    int
		err  error
	}{
		{"tcp 9", TCP, []byte{0, 0, 0, 0, 0, 0, 0, 9}, 100, 9, nil},
		{"tcp zero", TCP, make([]byte, 8), 100, 0, nil},
		{"tcp at limit", TCP, []byte{0, 0, 0, 0, 0, 0, 0, 100}, 100, 100, nil},
		{"tcp over limit", TCP, []byte{0, 0, 0, 0, 0, 0, 0, 101}, 100, 0, ErrTooLarge},
		{"tcp 2^63", TCP, []byte{0x80, 0, 0, 0, 0, 0, 0, 0}, math.MaxInt64, 0, ErrTooLarge},
		{"tcp 2^64-1", TCP, bytes.Repeat([]byte{0xff}, 8), math.MaxInt64, 0, ErrTooLarge},
		{"ipc 5", IPC, []byte{1, 0, 0, 0, 0, 0, 0, 0, 5}, 100, 5, nil},
		{"ipc bad type", IPC, []byte{2, 0, 0, 0, 0, 0, 0, 0, 5}, 100, 0, ErrBadIPCType},
		{"ipc zero type", IPC, []byte{0, 0, 0, 0, 0, 0, 0, 0, 5}, 100, 0, ErrBadIPCType},
		{"short", TCP, []byte{0, 0}, 100, 0, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := tt.f.ParsePrefix(tt.in, tt.max)
			if !errors.Is(err, tt.err) || n != tt.n {
				t.Fatalf("ParsePrefix(%x) = %d, %v; want %d, %v", tt.in, n, err, tt.n, tt.err)
			}
		})
	}
}

// TestWireExample pins the example from the wire notes: REQ sending "hello".
func TestWireExample(t *testing.T) {
	var p [9]byte
	n := TCP.PutPrefix(p[:], 9)
	got := append(p[:n:n], 0xa1, 0x2e, 0x1e, 0x6e, 'h', 'e', 'l', 'l', 'o')
	want := []byte{0, 0, 0, 0, 0, 0, 0, 9, 0xa1, 0x2e, 0x1e, 0x6e, 0x68, 0x65, 0x6c, 0x6c, 0x6f}
	if !bytes.Equal(got, want) {
		t.Fatalf("frame = %x, want %x", got, want)
	}
	n = IPC.PutPrefix(p[:], 9)
	if n != 9 || p[0] != 1 || p[8] != 9 {
		t.Fatalf("ipc prefix = %x", p[:n])
	}
}

func TestReader(t *testing.T) {
	var stream bytes.Buffer
	for _, f := range []Framing{TCP, IPC} {
		stream.Reset()
		var p [9]byte
		for _, s := range []string{"a", "", "hello world"} {
			n := f.PutPrefix(p[:], len(s))
			stream.Write(p[:n])
			stream.WriteString(s)
		}
		stream.Write(p[:f.PrefixSize()-1]) // truncated prefix at the end
		r := NewReader(bufio.NewReader(&stream), f, 64)
		for _, want := range []string{"a", "", "hello world"} {
			n, err := r.Next()
			if err != nil || n != len(want) {
				t.Fatalf("Next = %d, %v", n, err)
			}
			buf := make([]byte, n)
			if err := r.ReadPayload(buf); err != nil || string(buf) != want {
				t.Fatalf("payload %q, %v; want %q", buf, err, want)
			}
		}
		if _, err := r.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("truncated prefix: %v", err)
		}
	}
}

func TestReaderTruncatedPayload(t *testing.T) {
	r := NewReader(bufio.NewReader(bytes.NewReader([]byte{0, 0, 0, 0, 0, 0, 0, 5, 'a', 'b'})), TCP, 64)
	n, err := r.Next()
	if err != nil || n != 5 {
		t.Fatal(n, err)
	}
	if err := r.ReadPayload(make([]byte, n)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated payload: %v", err)
	}
}

type rw struct {
	io.Reader
	io.Writer
}

func TestHandshake(t *testing.T) {
	var out bytes.Buffer
	in := bytes.NewReader([]byte{0, 'S', 'P', 0, 0, 0x30, 0, 0})
	peer, err := Handshake(rw{in, &out}, 0x31)
	if err != nil || peer != 0x30 {
		t.Fatal(peer, err)
	}
	if !bytes.Equal(out.Bytes(), []byte{0, 'S', 'P', 0, 0, 0x31, 0, 0}) {
		t.Fatalf("sent %x", out.Bytes())
	}
}
