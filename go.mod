module github.com/ferrymq/ferry

go 1.25.0

require (
	github.com/gorilla/websocket v1.5.3
	github.com/quic-go/quic-go v0.61.0
	go.uber.org/goleak v1.3.0
)

require (
	golang.org/x/crypto v0.54.0 // indirect
	golang.org/x/net v0.56.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
)
