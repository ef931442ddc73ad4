//go:build race

package testutil

// Race is true when the race detector is on. It slows goroutine wake-ups
// roughly tenfold, so bounds on mass wake-ups are scaled by RaceFactor.
const Race = true
