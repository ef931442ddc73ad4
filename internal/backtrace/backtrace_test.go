package backtrace

import (
	"errors"
	"testing"
)

func TestLen(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		ttl  int
		n    int
		err  error
	}{
		{"id only", []byte{0x80, 0, 0, 1, 'x'}, 8, 4, nil},
		{"two hops", []byte{0, 0, 0, 7, 0, 0, 0, 9, 0x80, 0, 0, 1}, 8, 12, nil},
		{"at ttl", []byte{0, 0, 0, 7, 0x80, 0, 0, 1}, 2, 8, nil},
		{"over ttl", []byte{0, 0, 0, 7, 0, 0, 0, 9, 0x80, 0, 0, 1}, 2, 0, ErrTooDeep},
		{"short", []byte{0x80, 0}, 8, 0, ErrNoID},
		{"no id", []byte{0, 0, 0, 1}, 8, 0, ErrNoID},
		{"empty", nil, 8, 0, ErrNoID},
	}
	for _, tt := range tests {
		n, err := Len(tt.in, tt.ttl)
		if n != tt.n || !errors.Is(err, tt.err) {
			t.Errorf("%s: Len = %d, %v; want %d, %v", tt.name, n, err, tt.n, tt.err)
		}
	}
}

func FuzzLen(f *testing.F) {
	f.Add([]byte{0x80, 0, 0, 1}, 8)
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 2, 0x80, 0, 0, 0}, 1)
	f.Fuzz(func(t *testing.T, b []byte, ttl int) {
		n, err := Len(b, ttl)
		if err == nil && (n < 4 || n > len(b) || n%4 != 0 || b[n-4]&0x80 == 0) {
			t.Fatalf("Len(%x, %d) = %d", b, ttl, n)
		}
	})
}
