package catfmt

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// all256 is every byte value once, in order.
func all256() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// The expectations below are written independently of the code under
// test: from nngcat's printmsg rules, one byte at a time with fmt.
func wantASCII(body []byte) string {
	var sb strings.Builder
	for _, b := range body {
		if b >= ' ' && b <= '~' {
			sb.WriteByte(b)
		} else {
			sb.WriteByte('.')
		}
	}
	return sb.String()
}

func wantQuoted(body []byte) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for _, b := range body {
		switch {
		case b == '\n':
			sb.WriteString(`\n`)
		case b == '\r':
			sb.WriteString(`\r`)
		case b == '\t':
			sb.WriteString(`\t`)
		case b == '"' || b == '\\':
			sb.WriteByte('\\')
			sb.WriteByte(b)
		case b >= ' ' && b <= '~':
			sb.WriteByte(b)
		default:
			fmt.Fprintf(&sb, `\x%02x`, b)
		}
	}
	sb.WriteString("\"\n")
	return sb.String()
}

func wantHex(body []byte) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for _, b := range body {
		fmt.Fprintf(&sb, `\x%02x`, b)
	}
	sb.WriteString("\"\n")
	return sb.String()
}

func wantMsgpack(body []byte) string {
	n := len(body)
	var h []byte
	switch {
	case n <= 0xff:
		h = []byte{0xc4, byte(n)}
	case n <= 0xffff:
		h = []byte{0xc5, byte(n >> 8), byte(n)}
	default:
		h = []byte{0xc6, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
	return string(h) + string(body)
}

func TestAppend(t *testing.T) {
	t.Parallel()
	bodies := map[string][]byte{
		"empty":   {},
		"all256":  all256(),
		"text":    []byte("hello, world\n"),
		"escapes": []byte("a\"b\\c\td\re\nf\x00\x7f\x80\xff "),
		"255":     bytes.Repeat([]byte{'x'}, 255),
		"256":     bytes.Repeat([]byte{'y'}, 256),
		"65535":   bytes.Repeat([]byte{0}, 65535),
		"65536":   bytes.Repeat([]byte{1}, 65536),
		"70000":   bytes.Repeat([]byte{0xfe}, 70000),
	}
	for name, body := range bodies {
		for _, tt := range []struct {
			f    Format
			want string
		}{
			{None, ""},
			{Raw, string(body)},
			{ASCII, wantASCII(body)},
			{Quoted, wantQuoted(body)},
			{Hex, wantHex(body)},
			{Msgpack, wantMsgpack(body)},
		} {
			got := Append([]byte("prefix"), tt.f, body)
			if !bytes.HasPrefix(got, []byte("prefix")) {
				t.Fatalf("%s/%v: prefix lost", name, tt.f)
			}
			if g := string(got[len("prefix"):]); g != tt.want {
				t.Errorf("%s/%v:\n got %q\nwant %q", name, tt.f, trunc(g), trunc(tt.want))
			}
		}
	}
}

func trunc(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// TestLiterals pins a few outputs as literal bytes, as nngcat 1.5.2
// printed them, so a shared mistake in the helpers above cannot hide.
func TestLiterals(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		f    Format
		body string
		want string
	}{
		{ASCII, "a\x00b\xffc ~\x7f", "a.b.c ~."},
		{ASCII, "", ""},
		{Quoted, "", "\"\"\n"},
		{Quoted, "say \"hi\"\\\n\r\t\x01\x7f\xff", `"say \"hi\"\\\n\r\t\x01\x7f\xff"` + "\n"},
		{Quoted, "'?", "\"'?\"\n"},
		{Hex, "", "\"\"\n"},
		{Hex, "A\x00\xff", `"\x41\x00\xff"` + "\n"},
		{Msgpack, "", "\xc4\x00"},
		{Msgpack, "ab", "\xc4\x02ab"},
		{Raw, "\x00\xff", "\x00\xff"},
		{None, "anything", ""},
	} {
		if got := string(Append(nil, tt.f, []byte(tt.body))); got != tt.want {
			t.Errorf("%v %q: got %q, want %q", tt.f, tt.body, got, tt.want)
		}
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	for _, f := range Formats() {
		g, ok := Parse(f.String())
		if !ok || g != f {
			t.Errorf("Parse(%q) = %v, %v", f.String(), g, ok)
		}
	}
	for _, bad := range []string{"", "ASCII", "none", "text", "msgpack "} {
		if _, ok := Parse(bad); ok {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	if Format(99).String() != "invalid" {
		t.Error("out-of-range Format has a name")
	}
}

func BenchmarkAppend(b *testing.B) {
	body := all256()
	for _, f := range Formats() {
		b.Run(f.String(), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			buf := make([]byte, 0, 4096)
			for b.Loop() {
				buf = Append(buf[:0], f, body)
			}
		})
	}
}
