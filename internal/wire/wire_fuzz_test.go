package wire

import (
	"bufio"
	"bytes"
	"testing"
)

// FuzzParseHeader: any 8 bytes either parse to the protocol number in bytes
// 4..5 and re-encode to themselves, or are refused.
func FuzzParseHeader(f *testing.F) {
	f.Add([]byte{0, 'S', 'P', 0, 0, 0x11, 0, 0})
	f.Add([]byte{0, 'S', 'P', 0, 0, 0x30, 0, 1})
	f.Add([]byte{0, 'S', 'P', 1, 0xff, 0xff, 0, 0})
	f.Add([]byte("GET / HTTP/1.1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseHeader(b)
		if err != nil {
			return
		}
		if got := AppendHeader(nil, p); !bytes.Equal(got, b[:HeaderSize]) {
			t.Fatalf("header %x parsed to %#x, re-encodes to %x", b[:HeaderSize], p, got)
		}
	})
}

// FuzzReader decodes a stream of frames. No input may panic, announce a
// length over the limit, or make the decoder ask for more memory than the
// limit; every decoded frame re-encodes to the bytes it came from.
func FuzzReader(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 9, 0xa1, 0x2e, 0x1e, 0x6e, 'h', 'e', 'l', 'l', 'o'}, false)
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 2, 'h', 'i', 1, 0, 0, 0, 0, 0, 0, 0, 0}, true)
	f.Add([]byte{0x80, 0, 0, 0, 0, 0, 0, 0}, false)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, false)
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 0, 1, 'x'}, true)
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 5, 'a'}, false)
	f.Fuzz(func(t *testing.T, b []byte, ipc bool) {
		fr := TCP
		if ipc {
			fr = IPC
		}
		const max = 1 << 10
		r := NewReader(bufio.NewReaderSize(bytes.NewReader(b), 16), fr, max)
		var re []byte
		for {
			n, err := r.Next()
			if err != nil {
				break
			}
			if n < 0 || n > max {
				t.Fatalf("length %d escapes the limit %d", n, max)
			}
			buf := make([]byte, n)
			if err := r.ReadPayload(buf); err != nil {
				break
			}
			var p [9]byte
			k := fr.PutPrefix(p[:], n)
			re = append(append(re, p[:k]...), buf...)
		}
		if !bytes.HasPrefix(b, re) {
			t.Fatalf("decoded frames re-encode to %x, not a prefix of the input %x", re, b)
		}
	})
}
