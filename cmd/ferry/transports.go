package main

// Every transport ferry has, so that cat (and the other commands) take
// any URL ferry can speak: tls+tcp://, ws://, wss://, quic:// besides
// the built-in inproc://, ipc:// and tcp://.
import (
	_ "github.com/ferrymq/ferry/transport/quic"
	_ "github.com/ferrymq/ferry/transport/tls"
	_ "github.com/ferrymq/ferry/transport/ws"
)
