package ferry

import (
	"crypto/tls"
	"time"
)

// Defaults for the configuration structs. A zero field takes these values.
const (
	DefaultRecvMaxSize      = 16 << 20 // 16 MiB
	DefaultSendQueueLen     = 128
	DefaultRecvQueueLen     = 128
	DefaultWriteTimeout     = 30 * time.Second
	DefaultMaxTTL           = 8
	DefaultResendTime       = 60 * time.Second
	DefaultSurveyTime       = time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultReconnectMin     = 100 * time.Millisecond
	DefaultReconnectMax     = 10 * time.Second

	maxRecvMaxSize = 1 << 32
	maxQueueLen    = 1 << 20
)

// SocketConfig configures a socket. The zero value is ready to use; every
// field states its default. Values out of range make the constructor
// return an *OptionError naming the field.
type SocketConfig struct {
	// RecvMaxSize is the largest message, in bytes, accepted from a peer
	// (protocol header included). A frame announcing more is refused
	// before anything is allocated and its pipe is closed.
	// Default 16 MiB; range 1..4 GiB.
	RecvMaxSize int

	// SendQueueLen is the number of messages a socket (or a pipe, for
	// protocols that queue per pipe) holds before Send waits or, for
	// protocols that never block such as PUB, drops. Default 128; range
	// 1..1048576.
	SendQueueLen int

	// RecvQueueLen is the number of received messages held for Recv
	// before the socket stops reading from its pipes. Default 128; range
	// 1..1048576.
	RecvQueueLen int

	// SendTimeout and RecvTimeout bound Send and Recv calls whose ctx has
	// no deadline. Default 0: no bound, the ctx alone decides. A ctx
	// deadline costs nothing extra; these cost one timer per call that
	// has to wait. Range >= 0.
	SendTimeout time.Duration
	RecvTimeout time.Duration

	// WriteTimeout closes a pipe whose writes make no progress for this
	// long: a peer that stops reading cannot hold a pipe forever.
	// Default 30 s; negative disables it.
	WriteTimeout time.Duration

	// MaxTTL is the most hops (devices) a message may have crossed:
	// PAIR1's hop count, the backtrace depth of REQ/REP and
	// SURVEYOR/RESPONDENT. Messages over it are dropped and counted.
	// Default 8; range 1..15.
	MaxTTL int

	// ResendTime is how long a REQ context waits for a reply before it
	// sends its request again (with the same id). A request is also sent
	// again at once when the pipe that carried it closes. Default 60 s,
	// as in NNG; negative: never resend on a timer. Other protocols
	// ignore it.
	ResendTime time.Duration

	// SurveyTime is how long a SURVEYOR context collects responses to a
	// survey. Responses after it are dropped and counted; a Recv waiting
	// when it passes fails with ErrTimeout, a Recv after it with
	// ErrState. Default 1 s, as in NNG; range > 0. Other protocols
	// ignore it.
	SurveyTime time.Duration

	// Raw opens the socket in raw mode (for devices): protocol headers
	// are passed to and from the caller untouched.
	Raw bool
}

func (c SocketConfig) withDefaults() (SocketConfig, error) {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.RecvMaxSize, DefaultRecvMaxSize)
	def(&c.SendQueueLen, DefaultSendQueueLen)
	def(&c.RecvQueueLen, DefaultRecvQueueLen)
	def(&c.MaxTTL, DefaultMaxTTL)
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.ResendTime == 0 {
		c.ResendTime = DefaultResendTime
	}
	if c.SurveyTime == 0 {
		c.SurveyTime = DefaultSurveyTime
	}
	switch {
	case c.RecvMaxSize < 1 || c.RecvMaxSize > maxRecvMaxSize:
		return c, &OptionError{"SocketConfig.RecvMaxSize", c.RecvMaxSize, "in 1..4294967296 (0 means 16 MiB)"}
	case c.SendQueueLen < 1 || c.SendQueueLen > maxQueueLen:
		return c, &OptionError{"SocketConfig.SendQueueLen", c.SendQueueLen, "in 1..1048576 (0 means 128)"}
	case c.RecvQueueLen < 1 || c.RecvQueueLen > maxQueueLen:
		return c, &OptionError{"SocketConfig.RecvQueueLen", c.RecvQueueLen, "in 1..1048576 (0 means 128)"}
	case c.SendTimeout < 0:
		return c, &OptionError{"SocketConfig.SendTimeout", c.SendTimeout, ">= 0"}
	case c.RecvTimeout < 0:
		return c, &OptionError{"SocketConfig.RecvTimeout", c.RecvTimeout, ">= 0"}
	case c.SurveyTime < 0:
		return c, &OptionError{"SocketConfig.SurveyTime", c.SurveyTime, "> 0 (0 means 1s)"}
	case c.MaxTTL < 1 || c.MaxTTL > 15:
		return c, &OptionError{"SocketConfig.MaxTTL", c.MaxTTL, "in 1..15 (0 means 8)"}
	}
	return c, nil
}

// ConnConfig holds the connection settings dialers and listeners share.
type ConnConfig struct {
	// HandshakeTimeout bounds the SP handshake of a new connection; a
	// peer that sends nothing is dropped after it. Default 10 s; range
	// 1 ms..1 h.
	HandshakeTimeout time.Duration

	// TCPNagle leaves Nagle's algorithm on. Default false: TCP_NODELAY is
	// set, as NNG does.
	TCPNagle bool

	// TCPKeepAlive is the TCP keep-alive period. Default 0: off, as in
	// NNG. Range >= 0.
	TCPKeepAlive time.Duration

	// TLS configures tls+tcp, wss and quic. For a dialer it needs at least
	// a ServerName or InsecureSkipVerify; for a listener, a certificate.
	// Ignored by other transports. Default nil.
	TLS *tls.Config

	// IdleTimeout closes a quic connection that has heard nothing from
	// its peer for this long; keep-alives go out at a third of it, so
	// only a peer that vanished trips it. Default 0: 30 s. Range 0 or
	// 10 ms..1 h. Other transports ignore it.
	IdleTimeout time.Duration
}

func (c ConnConfig) withDefaults(layer string) (ConnConfig, error) {
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	switch {
	case c.HandshakeTimeout < time.Millisecond || c.HandshakeTimeout > time.Hour:
		return c, &OptionError{layer + ".HandshakeTimeout", c.HandshakeTimeout, "in 1ms..1h (0 means 10s)"}
	case c.TCPKeepAlive < 0:
		return c, &OptionError{layer + ".TCPKeepAlive", c.TCPKeepAlive, ">= 0 (0 means off)"}
	case c.IdleTimeout != 0 && (c.IdleTimeout < 10*time.Millisecond || c.IdleTimeout > time.Hour):
		return c, &OptionError{layer + ".IdleTimeout", c.IdleTimeout, "0 or in 10ms..1h (0 means 30s)"}
	}
	return c, nil
}

// DialerConfig configures a dialer. The zero value is ready to use.
type DialerConfig struct {
	ConnConfig

	// ReconnectMin is the first wait before redialing after a failed
	// dial or a lost pipe; each further failure doubles it up to
	// ReconnectMax, with up to 25% random jitter. A pipe that stayed up
	// longer than ReconnectMax resets it. Default 100 ms; range
	// 1 ms..1 h.
	ReconnectMin time.Duration
	// ReconnectMax caps the wait between redials. Default 10 s; range
	// ReconnectMin..1 h.
	ReconnectMax time.Duration

	// Background makes Start return at once and dial in the background,
	// retrying until it connects. Default false: Start makes the first
	// connection itself and returns its error, as nng_dial does.
	Background bool
}

func (c DialerConfig) withDefaults() (DialerConfig, error) {
	var err error
	if c.ConnConfig, err = c.ConnConfig.withDefaults("DialerConfig"); err != nil {
		return c, err
	}
	if c.ReconnectMin == 0 {
		c.ReconnectMin = DefaultReconnectMin
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = max(DefaultReconnectMax, c.ReconnectMin)
	}
	switch {
	case c.ReconnectMin < time.Millisecond || c.ReconnectMin > time.Hour:
		return c, &OptionError{"DialerConfig.ReconnectMin", c.ReconnectMin, "in 1ms..1h (0 means 100ms)"}
	case c.ReconnectMax < c.ReconnectMin || c.ReconnectMax > time.Hour:
		return c, &OptionError{"DialerConfig.ReconnectMax", c.ReconnectMax, "in ReconnectMin..1h (0 means 10s)"}
	}
	return c, nil
}

// ListenerConfig configures a listener. The zero value is ready to use.
type ListenerConfig struct {
	ConnConfig
}

func (c ListenerConfig) withDefaults() (ListenerConfig, error) {
	var err error
	c.ConnConfig, err = c.ConnConfig.withDefaults("ListenerConfig")
	return c, err
}
