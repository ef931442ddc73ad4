package main

// The protocols and transports `ferry cat` can use. A protocol whose
// package does not exist yet maps to nil: cat then fails with nngcat's
// "Protocol not supported." Transports register themselves when their
// package is imported; add a blank import here for each new one.

import (
	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/protocol/bus"
	"github.com/ferrymq/ferry/protocol/pair"
	"github.com/ferrymq/ferry/protocol/pair1"
	"github.com/ferrymq/ferry/protocol/pub"
	"github.com/ferrymq/ferry/protocol/pull"
	"github.com/ferrymq/ferry/protocol/push"
	"github.com/ferrymq/ferry/protocol/rep"
	"github.com/ferrymq/ferry/protocol/req"
	"github.com/ferrymq/ferry/protocol/respondent"
	"github.com/ferrymq/ferry/protocol/sub"
	"github.com/ferrymq/ferry/protocol/surveyor"
)

type catOpener func(ferry.SocketConfig) (*ferry.Socket, error)

var catProtocols = map[catOptID]catOpener{
	optPair0:       pair.New,
	optPair1:       pair1.New,
	optReq0:        req.New,
	optRep0:        rep.New,
	optSurveyor0:   surveyor.New,
	optRespondent0: respondent.New,
	optPub0:        pub.New,
	optSub0:        sub.New,
	optPush0:       push.New,
	optPull0:       pull.New,
	optBus0:        bus.New,
}

// catSubscribe subscribes a SUB socket to topic.
func catSubscribe(s *ferry.Socket, topic []byte) error { return sub.Subscribe(s, topic) }
