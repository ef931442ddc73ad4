package main

// The command line of `ferry cat`: nngcat's options, parsed by nngcat's
// rules, checked in nngcat's order, with nngcat's error messages.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ferrymq/ferry/internal/catfmt"
)

type catOptID int

const (
	optHelp catOptID = iota + 1
	optVerbose
	optSilent
	optReq0
	optRep0
	optPush0
	optPull0
	optPub0
	optSub0
	optSurveyor0
	optRespondent0
	optPair // pair1, or pair0 with --compat
	optPair0
	optPair1
	optBus0
	optDial
	optListen
	optData
	optFile
	optSubscribe
	optFormat
	optASCII
	optQuoted
	optRaw
	optHex
	optCompat
	optAsync
	optMsgpack
	optRecvMaxSz
	optCount
	optDelay
	optInterval
	optRecvTimeout
	optSendTimeout
	optSocketName
	optListenIPC
	optDialIPC
	optListenLocal
	optDialLocal
	optInsecure
	optCACert
	optKey
	optCert
	optZTHome
	optVersion
)

type catOptSpec struct {
	name  string
	short byte
	id    catOptID
	arg   bool
}

// catOpts is nngcat's option table: the same long names, so that the same
// abbreviations are unique or ambiguous ("--req" is --req0, "--re" is
// ambiguous), and the same short letters.
var catOpts = []catOptSpec{
	{"help", 'h', optHelp, false},
	{"verbose", 'v', optVerbose, false},
	{"silent", 'q', optSilent, false},
	{"req0", 0, optReq0, false},
	{"rep0", 0, optRep0, false},
	{"push0", 0, optPush0, false},
	{"pull0", 0, optPull0, false},
	{"pub0", 0, optPub0, false},
	{"sub", 0, optSub0, false}, // spelled out: "sub" also begins "subscribe"
	{"sub0", 0, optSub0, false},
	{"surveyor0", 0, optSurveyor0, false},
	{"respondent0", 0, optRespondent0, false},
	{"pair", 0, optPair, false},
	{"pair0", 0, optPair0, false},
	{"pair1", 0, optPair1, false},
	{"bus0", 0, optBus0, false},
	{"dial", 0, optDial, true},
	{"listen", 0, optListen, true},
	{"data", 'D', optData, true},
	{"file", 'F', optFile, true},
	{"subscribe", 0, optSubscribe, true},
	{"format", 0, optFormat, true},
	{"ascii", 'A', optASCII, false},
	{"quoted", 'Q', optQuoted, false},
	{"raw", 0, optRaw, false},
	{"hex", 0, optHex, false},
	{"compat", 0, optCompat, false},
	{"async", 0, optAsync, false},
	{"msgpack", 0, optMsgpack, false},
	{"recv-maxsz", 'Z', optRecvMaxSz, true},
	{"count", 'C', optCount, true},
	{"delay", 'd', optDelay, true},
	{"interval", 'i', optInterval, true},
	{"recv-timeout", 0, optRecvTimeout, true},
	{"send-timeout", 0, optSendTimeout, true},
	{"socket-name", 0, optSocketName, true},
	{"bind", 0, optListen, true},
	{"connect", 0, optDial, true},
	{"bind-ipc", 'X', optListenIPC, true},
	{"connect-ipc", 'x', optDialIPC, true},
	{"bind-local", 'L', optListenLocal, true},
	{"connect-local", 'l', optDialLocal, true},
	{"insecure", 'k', optInsecure, false},
	{"cacert", 0, optCACert, true},
	{"key", 0, optKey, true},
	{"cert", 'E', optCert, true},
	{"zt-home", 0, optZTHome, true},
	{"version", 'V', optVersion, false},
}

// catFail is an error printed as is: nngcat's message, one line.
type catFail string

func (e catFail) Error() string { return string(e) }

func failf(format string, a ...any) error { return catFail(fmt.Sprintf(format, a...)) }

// errCatHelp and errCatVersion end parsing early; the caller prints.
var (
	errCatHelp    = errors.New("help")
	errCatVersion = errors.New("version")
)

// nextCatOpt parses the option at args[i], by nng_opts_parse's rules:
//
//   - Parsing ends (done) at the first argument that does not start with
//     '-', and after a lone "-"; whatever follows is ignored.
//   - "--name", "--name=value", "--name:value", "--name value"; a name may
//     be abbreviated to any prefix that is unique (an exact name always
//     wins).
//   - "-x", "-xvalue", "-x value"; no clustering of short options.
func nextCatOpt(args []string, i int) (spec *catOptSpec, val string, next int, done bool, err error) {
	if i >= len(args) {
		return nil, "", i, true, nil
	}
	a := args[i]
	if a == "" || a[0] != '-' {
		return nil, "", i, true, nil
	}
	if a == "-" {
		return nil, "", i + 1, true, nil
	}
	var rest string // what follows the option name in the same argument
	short := a[1] != '-'
	if short {
		rest = a[2:]
		for k := range catOpts {
			if catOpts[k].short != 0 && catOpts[k].short == a[1] {
				spec = &catOpts[k]
				break
			}
		}
	} else {
		body := a[2:]
		n := strings.IndexAny(body, "=:")
		if n < 0 {
			n = len(body)
		}
		name := body[:n]
		rest = body[n:]
		matches := 0
		for k := range catOpts {
			if !strings.HasPrefix(catOpts[k].name, name) {
				continue
			}
			matches++
			spec = &catOpts[k]
			if len(catOpts[k].name) == len(name) {
				matches = 1
				break
			}
		}
		if matches > 1 {
			return nil, "", i, false, failf("Option %s is ambiguous (specify in full).", a)
		}
		if matches == 0 {
			spec = nil
		}
	}
	if spec == nil {
		return nil, "", i, false, failf("Option %s is invalid.", a)
	}
	if !spec.arg {
		if rest != "" {
			return nil, "", i, false, failf("Option %s is invalid.", a)
		}
		return spec, "", i + 1, false, nil
	}
	if rest != "" {
		if short {
			return spec, rest, i + 1, false, nil
		}
		return spec, rest[1:], i + 1, false, nil // skip the '=' or ':'
	}
	if i+1 >= len(args) {
		return nil, "", i, false, failf("Option %s requires argument.", a)
	}
	return spec, args[i+1], i + 2, false, nil
}

// catIntArg is nngcat's intarg: decimal digits only, at most maxv.
func catIntArg(s string, maxv int64) (int64, error) {
	if s == "" {
		return 0, catFail("Empty integer argument.")
	}
	var v int64
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, catFail("Integer argument expected.")
		}
		v = v*10 + int64(c-'0')
		if v > maxv {
			return 0, catFail("Integer argument too large.")
		}
	}
	return v, nil
}

type catAddr struct {
	listen bool
	url    string
}

// catConfig is a parsed command line.
type catConfig struct {
	proto    catOptID // 0: none given
	addrs    []catAddr
	format   catfmt.Format
	formatOK bool // a format was given (even --format no)
	verbose  catOptID
	count    int
	delay    time.Duration
	interval time.Duration // < 0: none
	sendTO   time.Duration // < 0: none given
	recvTO   time.Duration // < 0: none given
	recvMax  int64         // < 0: none given; 0 was mapped to no limit
	data     []byte
	hasData  bool
	topics   [][]byte
	compat   bool
	async    bool
	insecure bool
	cacert   []byte
	key      []byte
	cert     []byte
}

const catDay = 86400 // the largest delay, interval and timeout, in seconds

// parseCat parses args as nngcat does, checking as it goes (a repeated
// protocol or format, a bad integer, an unreadable file fail at once).
func parseCat(args []string, stdin io.Reader) (*catConfig, error) {
	c := &catConfig{count: 0, interval: -1, sendTO: -1, recvTO: -1, recvMax: -1}
	seconds := func(s string) (time.Duration, error) {
		v, err := catIntArg(s, catDay)
		return time.Duration(v) * time.Second, err
	}
	setFormat := func(f catfmt.Format) error {
		if c.formatOK {
			return catFail("Format may be specified only once.")
		}
		c.format, c.formatOK = f, true
		return nil
	}
	for i := 0; ; {
		spec, val, next, done, err := nextCatOpt(args, i)
		if err != nil {
			return nil, err
		}
		if done {
			break
		}
		i = next
		switch id := spec.id; id {
		case optHelp:
			return nil, errCatHelp
		case optVersion:
			return nil, errCatVersion
		case optReq0, optRep0, optSub0, optPub0, optBus0, optSurveyor0, optRespondent0,
			optPair, optPair0, optPair1, optPush0, optPull0:
			if c.proto != 0 {
				return nil, catFail("Only one protocol may be specified.")
			}
			c.proto = id
		case optDial, optListen:
			c.addrs = append(c.addrs, catAddr{id == optListen, val})
		case optDialLocal, optListenLocal:
			port, err := catIntArg(val, 65536)
			if err != nil {
				return nil, err
			}
			c.addrs = append(c.addrs, catAddr{id == optListenLocal, fmt.Sprintf("tcp://127.0.0.1:%d", port)})
		case optDialIPC, optListenIPC:
			c.addrs = append(c.addrs, catAddr{id == optListenIPC, "ipc:///" + val})
		case optCount:
			v, err := catIntArg(val, 0x7fffffff)
			if err != nil {
				return nil, err
			}
			c.count = int(v)
		case optSubscribe:
			c.topics = append(c.topics, []byte(val))
		case optVerbose, optSilent:
			c.verbose = id
		case optDelay:
			if c.delay, err = seconds(val); err != nil {
				return nil, err
			}
		case optInterval:
			if c.interval, err = seconds(val); err != nil {
				return nil, err
			}
		case optSendTimeout:
			if c.sendTO, err = seconds(val); err != nil {
				return nil, err
			}
		case optRecvTimeout:
			if c.recvTO, err = seconds(val); err != nil {
				return nil, err
			}
		case optRecvMaxSz:
			if c.recvMax, err = catIntArg(val, 0x7fffffff); err != nil {
				return nil, err
			}
		case optCompat:
			c.compat = true
		case optAsync:
			c.async = true
		case optASCII, optRaw, optQuoted, optMsgpack, optHex:
			if err := setFormat(map[catOptID]catfmt.Format{optASCII: catfmt.ASCII, optRaw: catfmt.Raw,
				optQuoted: catfmt.Quoted, optMsgpack: catfmt.Msgpack, optHex: catfmt.Hex}[id]); err != nil {
				return nil, err
			}
		case optFormat:
			if c.formatOK {
				return nil, catFail("Format may be specified only once.")
			}
			f, ok := catfmt.Parse(val)
			if !ok {
				return nil, catFail("Invalid format specified.")
			}
			if err := setFormat(f); err != nil {
				return nil, err
			}
		case optFile, optData:
			if c.hasData {
				return nil, catFail("Data (--file, --data) may be specified only once.")
			}
			if id == optData {
				c.data = []byte(val)
			} else if c.data, err = catLoadFile(val, stdin); err != nil {
				return nil, err
			}
			c.hasData = true
		case optCACert:
			if c.cacert != nil {
				return nil, catFail("CA Certificate (--cacert) may be specified only once.")
			}
			if c.cacert, err = catLoadFile(val, stdin); err != nil {
				return nil, err
			}
		case optKey:
			if c.key != nil {
				return nil, catFail("Key (--key) may be specified only once.")
			}
			if c.key, err = catLoadFile(val, stdin); err != nil {
				return nil, err
			}
		case optCert:
			if c.cert != nil {
				return nil, catFail("Cert (--cert) may be specified only once.")
			}
			if c.cert, err = catLoadFile(val, stdin); err != nil {
				return nil, err
			}
		case optInsecure:
			c.insecure = true
		case optSocketName, optZTHome:
			// Accepted and ignored, as nngcat ignores --socket-name;
			// ferry has no ZeroTier transport.
		}
	}
	return c, c.check()
}

// check applies nngcat's checks after parsing, in nngcat's order. The
// protocol itself is checked when the socket is opened.
func (c *catConfig) check() error {
	if len(c.addrs) == 0 {
		return catFail("No address specified.")
	}
	if c.compat {
		if c.async {
			return catFail("Options --async and --compat are incompatible.")
		}
		if c.count != 0 {
			return catFail("Options --count and --compat are incompatible.")
		}
		if c.proto == optPair {
			c.proto = optPair0
		}
		if c.proto == optPair1 {
			return catFail("Protocol does not support --compat.")
		}
		c.async = true
	} else if c.proto == optPair {
		c.proto = optPair1
	}
	if c.proto == optSub0 {
		if len(c.topics) == 0 {
			c.topics = [][]byte{{}} // everything
		}
	} else if len(c.topics) > 0 {
		return catFail("Protocol does not support --subscribe.")
	}
	switch c.proto {
	case optPull0, optSub0:
		if c.hasData {
			return catFail("Protocol does not support --file or --data.")
		}
		if c.interval >= 0 {
			return catFail("Protocol does not support --interval.")
		}
	case optPush0, optPub0:
		if c.formatOK {
			return catFail("Protocol does not support --format options.")
		}
		if !c.hasData {
			return catFail("Protocol requires either --file or --data.")
		}
	case optSurveyor0, optReq0:
		if !c.hasData {
			return catFail("Protocol requires either --file or --data.")
		}
	case optRep0, optRespondent0:
		if c.interval >= 0 {
			return catFail("Protocol does not support --interval.")
		}
	case optPair0, optPair1, optBus0:
		if c.interval >= 0 && !c.hasData {
			return catFail("Option --interval requires either --file or --data.")
		}
	}
	if c.proto == 0 {
		return catFail("No protocol specified.")
	}
	return nil
}

// catLoadFile reads a whole file; "-" is standard input.
func catLoadFile(path string, stdin io.Reader) ([]byte, error) {
	if path == "-" {
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, failf("Read from %s failed: %s", path, errText(err))
		}
		return b, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, failf("Cannot open file %s: %s", path, errText(err))
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, failf("Read from %s failed: %s", path, errText(err))
	}
	return b, nil
}

// errText is the innermost message of an OS error, capitalised as C's
// strerror writes it ("No such file or directory").
func errText(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			break
		}
		err = u
	}
	s := err.Error()
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}
