// Package catfmt prints message bodies the way nngcat does, byte for byte,
// so that scripts reading `ferry cat` output cannot tell it from nngcat's.
//
// Every format works on single bytes; nothing depends on the locale
// (nngcat never calls setlocale, so C's isprint is true for 0x20..0x7e
// only).
package catfmt

// Format is an output format. The zero value prints nothing, as nngcat
// does when no format is given.
type Format int

// The formats. None and the zero value both print nothing.
const (
	None    Format = iota // nothing (--format no, or no format flag)
	Raw                   // the body as is
	ASCII                 // printable bytes as is, others as '.', no separator
	Quoted                // a C string literal, one per line
	Hex                   // a C string literal of \xNN escapes, one per line
	Msgpack               // a msgpack bin 8/16/32 header, then the body
)

var names = [...]string{None: "no", Raw: "raw", ASCII: "ascii", Quoted: "quoted", Hex: "hex", Msgpack: "msgpack"}

// String is the name --format takes.
func (f Format) String() string {
	if f < 0 || int(f) >= len(names) {
		return "invalid"
	}
	return names[f]
}

// Parse returns the format --format name selects.
func Parse(name string) (Format, bool) {
	for f, n := range names {
		if n == name {
			return Format(f), true
		}
	}
	return None, false
}

// Formats lists every format, None first.
func Formats() []Format { return []Format{None, Raw, ASCII, Quoted, Hex, Msgpack} }

// isPrint is C's isprint in the "C" locale.
func isPrint(b byte) bool { return b >= 0x20 && b <= 0x7e }

const hexDigits = "0123456789abcdef"

func appendHexEscape(dst []byte, b byte) []byte {
	return append(dst, '\\', 'x', hexDigits[b>>4], hexDigits[b&0xf])
}

// Append appends body printed in format f to dst.
func Append(dst []byte, f Format, body []byte) []byte {
	switch f {
	case Raw:
		return append(dst, body...)
	case ASCII:
		for _, b := range body {
			if !isPrint(b) {
				b = '.'
			}
			dst = append(dst, b)
		}
		return dst
	case Quoted:
		dst = append(dst, '"')
		for _, b := range body {
			switch b {
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '"', '\\':
				dst = append(dst, '\\', b)
			default:
				if isPrint(b) {
					dst = append(dst, b)
				} else {
					dst = appendHexEscape(dst, b)
				}
			}
		}
		return append(dst, '"', '\n')
	case Hex:
		dst = append(dst, '"')
		for _, b := range body {
			dst = appendHexEscape(dst, b)
		}
		return append(dst, '"', '\n')
	case Msgpack:
		// nngcat writes the low 32 bits of the length for bodies of
		// 4 GiB and more; ferry never receives one (RecvMaxSize caps at
		// 4 GiB including the protocol header).
		n := len(body)
		switch {
		case n < 1<<8:
			dst = append(dst, 0xc4, byte(n))
		case n < 1<<16:
			dst = append(dst, 0xc5, byte(n>>8), byte(n))
		default:
			dst = append(dst, 0xc6, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
		}
		return append(dst, body...)
	}
	return dst
}
